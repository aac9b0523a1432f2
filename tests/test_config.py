"""Config validation: the shipped config is valid at every scale; bad values stop with a message
that names the key and what is allowed, before any job runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from lorarepro.config import (
    ConfigError,
    check_settings,
    deep_merge,
    experiment_settings,
    format_setting,
    seeds_of,
    validate_config,
)


@pytest.fixture()
def config(repo_root):
    return yaml.safe_load((repo_root / "config.yaml").read_text())


@pytest.mark.parametrize("scale", ["smoke", "default", "paper"])
def test_shipped_config_is_valid_at_every_scale(config, scale):
    config["scale"] = scale
    validated = validate_config(config)
    assert validated["data"]["source"] == "auto"
    assert validated["report"]["figure_formats"] == ["pdf", "png"]


def test_defaults_are_filled(config):
    del config["device"], config["report"], config["data"]
    validate_config(config)
    assert config["device"] == "auto"
    assert config["data"] == {"source": "auto", "split_seed": 0}
    assert config["report"]["dpi"] == 150


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update(scale="smok"), ["scale", "'smok'", "smoke", "default", "paper"]),
        (lambda c: c.update(colour="blue"), ["unknown key", "colour", "allowed keys", "scale"]),
        (lambda c: c["data"].update(source="internet"), ["data.source", "internet", "bundled", "hub"]),
        (lambda c: c["data"].update(split_seed=-1), ["data.split_seed", "minimum"]),
        (lambda c: c["data"].update(split_seed="zero"), ["data.split_seed", "'zero'", "integer"]),
        (lambda c: c.update(papers=["nora", "lora_two"]), ["papers.1", "lora_two", "allowed values"]),
        (lambda c: c["report"].update(figure_formats=["gif"]), ["report.figure_formats.0", "gif"]),
        (lambda c: c["nora"].update(plots={}), ["nora", "plots", "allowed keys"]),
        (lambda c: c["lora_one"]["experiments"]["fig3"]["common"].update(g_forms=["gradient", "hessian"]),
         ["lora_one.experiments.fig3.common.g_forms.1", "'hessian' is not allowed", "squared_targets"]),
        (lambda c: c["lora_one"]["experiments"]["fig2"]["common"].update(r=-8),
         ["lora_one.experiments.fig2.common.r", "-8 is less than the minimum of 1"]),
        (lambda c: c["lora_one"]["experiments"]["fig2"]["smoke"].update(lr=0),
         ["lora_one.experiments.fig2.smoke.lr", "less than or equal to the minimum of 0"]),
        (lambda c: c["lora_one"]["experiments"]["prec_gd"]["common"].update(tols=[-1e-6]),
         ["lora_one.experiments.prec_gd.common.tols.0"]),
        (lambda c: c["lora_one"]["experiments"]["fig1c"]["common"].update(dataset="cifar10"),
         ["lora_one.experiments.fig1c.common.dataset", "mnist5k"]),
        (lambda c: c["lora_one"]["experiments"]["fig3"]["common"].update(seeds="three"),
         ["lora_one.experiments.fig3.common.seeds"]),
    ],
)
def test_bad_config_names_the_key(config, mutate, expected):
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    message = str(err.value)
    assert "nothing was run" in message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_all_problems_are_reported_together(config):
    config.update(scale="huge", device="tpu")
    with pytest.raises(ConfigError, match=r"2 problem\(s\)"):
        validate_config(config)


def test_experiment_settings_merge_common_with_the_scale():
    config = {"scale": "smoke", "p": {"experiments": {"e": {"common": {"m": 10, "opt": {"lr": 1, "wd": 0}},
                                                              "smoke": {"m": 3, "opt": {"lr": 2}}}}}}
    assert experiment_settings(config, "p", "e") == {"m": 3, "opt": {"lr": 2, "wd": 0}}
    assert experiment_settings(config, "p", "e", scale="paper") == {"m": 10, "opt": {"lr": 1, "wd": 0}}
    with pytest.raises(ConfigError, match="p.experiments.f"):
        experiment_settings(config, "p", "f")


def test_deep_merge_does_not_alias_its_inputs():
    base = {"a": {"b": [1]}}
    merged = deep_merge(base, {})
    merged["a"]["b"].append(2)
    assert base == {"a": {"b": [1]}}


def test_seeds_and_setting_names():
    assert seeds_of({"seeds": 3}) == [0, 1, 2]
    assert seeds_of({"seeds": [4, 7]}) == [4, 7]
    assert seeds_of({}) == [0]
    assert format_setting({"xi": 1.0, "eta": 0.5}) == "eta=0.5_xi=1"
    assert format_setting({}) == "base"


def test_rank_above_the_dimension_in_config_is_an_error(config):
    config["lora_one"]["experiments"]["prec_gd"]["common"].update(d=6, r=8)
    with pytest.raises(ConfigError, match="lora_one.experiments.prec_gd: rank r=8 exceeds the matrix dimension 6"):
        validate_config(config)


def test_rank_above_the_dimension_is_an_error():
    with pytest.raises(ConfigError, match="rank r=30 exceeds the matrix dimension 20"):
        check_settings({"m": 20, "r": 30}, "x.y")
    with pytest.raises(ConfigError, match="rank 64 exceeds"):
        check_settings({"d": 50, "ranks": [8, 64]}, "x.y")
    check_settings({"m": 20, "r": 20}, "x.y")


def test_schema_rejects_wrong_types_in_shared_definitions(config, tmp_path, repo_root):
    """The shared $defs (seeds, rank, resources) are enforced wherever a paper schema uses them."""
    import shutil

    schemas = tmp_path / "schemas"
    shutil.copytree(repo_root / "workflow" / "schemas", schemas)
    (schemas / "papers" / "nora.schema.yaml").write_text(yaml.safe_dump({
        "type": "object", "additionalProperties": False,
        "properties": {"experiments": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "properties": {s: {"type": "object", "additionalProperties": False, "properties": {
                "r": {"$ref": "../common.schema.yaml#/$defs/rank"},
                "seeds": {"$ref": "../common.schema.yaml#/$defs/seeds"},
                "method": {"enum": ["gd", "scaledgd"]},
                "resources": {"$ref": "../common.schema.yaml#/$defs/resources"}}}
                for s in ("common", "smoke", "default", "paper")}}}}}))
    good = copy.deepcopy(config)
    good["nora"] = {"experiments": {"fig": {"common": {"r": 4, "seeds": 3, "method": "gd"}}}}
    validate_config(good, schemas)
    for bad, fragment in [({"r": -1}, "nora.experiments.fig.common.r: -1 is less than the minimum of 1"),
                          ({"method": "adam"}, "'adam' is not allowed; allowed values are ['gd', 'scaledgd']"),
                          ({"seeds": 0}, "nora.experiments.fig.common.seeds"),
                          ({"resources": {"mem_mb": "lots"}}, "resources.mem_mb")]:
        broken = copy.deepcopy(config)
        broken["nora"] = {"experiments": {"fig": {"common": bad}}}
        with pytest.raises(ConfigError) as err:
            validate_config(broken, schemas)
        assert fragment in str(err.value), str(err.value)
