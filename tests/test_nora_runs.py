"""The NoRA experiment scripts on tiny instances: the run grid, records written per seed, the metrics
every claim reads, and the tables built from them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lorarepro.config import experiment_settings, seeds_of, validate_config
from lorarepro.experiments.nora import run, tables
from lorarepro.experiments.nora.grid import runs
from lorarepro.records import load_records, load_traces
from lorarepro.report.claims import check_claims, load_claims

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["fig1a", "fig1b", "fig1c", "asymmetric"]


@pytest.fixture(scope="module")
def config():
    return validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))


def tiny(settings: dict) -> dict:
    """The smoke settings cut further: m = 50, 2 seeds, 40 steps per run."""
    settings = copy.deepcopy(settings)
    settings.update(m=50, n=45, seeds=2, scale="smoke", device="cpu")
    for values in settings["methods"].values():
        values["iters"] = min(values["iters"], 40)
    return settings


def record_paths(root: Path, experiment: str, settings: dict) -> list[str]:
    return [str(root / experiment / m / s / f"seed={seed}" / "metrics.json")
            for m, s, _ in runs(settings) for seed in seeds_of(settings)]


@pytest.fixture(scope="module")
def records(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("nora")
    threads = torch.get_num_threads()
    paths = []
    for experiment in EXPERIMENTS:
        settings = tiny(experiment_settings(config, "nora", experiment, "smoke"))
        out = record_paths(root, experiment, settings)
        run.main(["--params", json.dumps(settings), "--experiment", experiment, "--records", *out])
        paths += out
    torch.set_num_threads(threads)
    return paths


def test_grid_sweeps_list_valued_keys_and_names_folders():
    settings = {"m": 10, "methods": {"gd_small": {"eta": 0.01, "iters": 5},
                                     "scaledgd_nystrom": {"eta": [0.5, 0.1], "xi": 1.0, "spectrum": ["ep", "up"]}}}
    grid = runs(settings)
    assert [(m, s) for m, s, _ in grid] == [
        ("gd_small", "base"), ("scaledgd_nystrom", "eta=0.5_spectrum=ep"), ("scaledgd_nystrom", "eta=0.5_spectrum=up"),
        ("scaledgd_nystrom", "eta=0.1_spectrum=ep"), ("scaledgd_nystrom", "eta=0.1_spectrum=up")]
    assert grid[2][2] == {"eta": 0.5, "xi": 1.0, "spectrum": "up"}


def test_every_scale_has_the_experiments_the_rules_expect(config):
    for scale in ("smoke", "default", "paper"):
        for experiment in EXPERIMENTS:
            settings = experiment_settings(config, "nora", experiment, scale)
            assert runs(settings) and all(v["iters"] >= 1 for _, _, v in runs(settings))


def test_one_record_and_trace_per_run_and_seed(records):
    frame = load_records(records)
    assert len(frame) == len(records) and set(frame["status"]) == {"ok"}
    assert frame["params.dtype"].eq("float64").all()
    traces = load_traces(records[:3])
    assert {"step", "error", "weak_error", "residual", "relative_residual"} <= set(traces.columns)
    fig1c = load_traces([r for r in records if "/fig1c/" in r][:1])
    assert "gap" in fig1c.columns


def test_every_claim_reads_a_metric_the_runs_write(records):
    frame = load_records(records)
    claims = [  # the matrix-factorization claims (the fine-tuning ones read test_nora_lm's records)
        claim for claim in load_claims(ROOT / "workflow" / "claims" / "nora.yaml")
        if claim["quantity"]["runs"]["experiment"] in EXPERIMENTS
    ]
    assert claims
    # A metric no run writes raises KeyError; a query no run matches reads "no matching runs".
    card = check_claims("nora", claims, frame.assign(scale="default"), "default")
    assert len(card) == len(claims) and not card["note"].str.contains("no matching runs").any()


def test_a_diverging_run_is_recorded_not_raised(config, tmp_path):
    settings = tiny(experiment_settings(config, "nora", "fig1a", "smoke"))
    settings["methods"] = {"gd_small": {"eta": 50.0, "zeta": 1.0, "iters": 40}}
    out = record_paths(tmp_path, "fig1a", settings)
    run.main(["--params", json.dumps(settings), "--experiment", "fig1a", "--records", *out])
    frame = load_records(out)
    assert set(frame["status"]) == {"diverged"} and frame["diverged_at"].notna().all()


def test_tables_are_built_from_the_records(records, tmp_path):
    out = [tmp_path / "table_1.csv", tmp_path / "table_asym_one_step.csv"]
    tables.main(["--records", *records, "--out", *map(str, out)])
    table_1 = pd.read_csv(out[0])
    assert len(table_1) == len(tables.TABLE_1) and (table_1["seeds"] > 0).sum() == 9
    one_step = pd.read_csv(out[1])
    assert len(one_step) == 4 and (out[1].with_suffix(".md")).exists()
