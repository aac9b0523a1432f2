"""The leaderboard's workflow: its config checks, its dry-runs at every scale, and the smoke-scale DAG
from the bundled assets to a table with one row per configured method × task."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_workflow, snakemake
from lorarepro.config import ConfigError, seeds_of, validate_config
from lorarepro.experiments.leaderboard.grid import leaderboard_settings, run_records, task_methods

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def config_at(scale: str, **changes) -> dict:
    config = copy.deepcopy(CONFIG)
    config["scale"] = scale
    for key, value in changes.items():
        config["leaderboard"]["common"][key] = value
    return validate_config(config)


@pytest.mark.parametrize("scale", ["smoke", "default", "paper"])
def test_every_method_runs_every_task_with_its_sweep_and_seeds(scale):
    settings = leaderboard_settings(config_at(scale))
    assert settings["tasks"], f"no leaderboard task at scale {scale}"
    for task in settings["tasks"]:
        records = run_records(settings, task)
        for method in task_methods(settings, task):
            grid = settings["methods"][method].get("lr_grid", settings["lr_grid"])
            assert sum(f"/{method}/lr=" in r for r in records) == len(grid)
            assert sum(f"/{method}/selected/" in r for r in records) == len(seeds_of(settings))
    if scale != "smoke":
        assert len(seeds_of(settings)) >= 3
        assert all(task_methods(settings, t) == list(settings["methods"]) for t in settings["tasks"])


@pytest.mark.parametrize("change, message", [
    ({"methods": {"x": {"init": "deep", "optimizer": {"name": "loraplus"}}}}, "needs a LoRA"),
    ({"methods": {"x": {"init": "nope"}}}, "not allowed"),
    ({"lr_grid": [0.0]}, "lr_grid"),
    ({"sweep_seed": 7}, "sweep_seed"),
])
def test_bad_leaderboard_config_is_stopped(change, message):
    with pytest.raises(ConfigError, match=message):
        leaderboard_settings(config_at("default", **change))


@pytest.mark.workflow
@pytest.mark.parametrize("scale", ["default", "paper"])
def test_leaderboard_target_resolves(tmp_path_factory, scale):
    workdir = copy_workflow(tmp_path_factory.mktemp("dry") / "workflow")
    proc = snakemake(workdir, "-n", "--config", f"scale={scale}", "--", "leaderboard")
    assert "leaderboard_tables" in proc.stdout and "leaderboard_figure" in proc.stdout


@pytest.mark.workflow
def test_smoke_leaderboard_has_a_row_per_method_and_task(smoke_run):
    """The smoke DAG (`all`) builds the leaderboard and the index report shows it."""
    workdir = smoke_run
    settings = leaderboard_settings(config_at("smoke"))
    table = pd.read_csv(workdir / "results" / "leaderboard" / "leaderboard.csv")
    expected = {(m, t) for t in settings["tasks"] for m in task_methods(settings, t)}
    assert set(zip(table["method"], table["task"])) == expected and len(table) == len(expected)
    assert (table["seeds"] + table["diverged"] == len(seeds_of(settings))).all()
    assert set(table["verdict"]) <= {"best", "significant", "noise", "untested"}
    assert (table.groupby("task")["rank"].min() == 1).all()
    for stem in ("leaderboard.png", "leaderboard.pdf"):
        assert (workdir / "results" / "leaderboard" / "figures" / stem).stat().st_size > 0
    index = (workdir / "reports" / "index.html").read_text()
    assert 'id="table-leaderboard"' in index and 'data-figure="leaderboard"' in index
