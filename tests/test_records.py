"""Run records: atomic writes, the record's contents, bitwise-repeatable CPU runs, and clear errors
for truncated records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lorarepro.io import atomic_dir, atomic_path, write_json
from lorarepro.records import (
    RECORD_FILE,
    TIMING_FIELDS,
    TRACE_FILE,
    Stopwatch,
    first_nonfinite,
    is_machine_metric,
    load_records,
    load_traces,
    read_record,
    run_dir,
    write_run,
)
from lorarepro.seeding import seed_everything


def tiny_experiment(out, seed: int):
    """A seeded least-squares GD run, recorded the way every experiment records itself."""
    _, gen = seed_everything(seed, threads=1)
    a = torch.randn(40, 10, generator=gen, dtype=torch.float64)
    b = torch.randn(40, generator=gen, dtype=torch.float64)
    x = torch.zeros(10, dtype=torch.float64)
    losses = []
    with Stopwatch() as sw:
        for _ in range(50):
            r = a @ x - b
            losses.append(0.5 * float(r @ r))
            x -= 0.01 * a.T @ r
    return write_run(out, paper="nora", experiment="toy", method="gd", seed=seed, scale="smoke",
                     params={"lr": 0.01, "steps": 50}, metrics={"final_loss": losses[-1]},
                     runtime=sw.runtime(), trace={"step": np.arange(50), "loss": losses})


def strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def test_record_contents(tmp_path):
    out = run_dir(tmp_path, "nora", "toy", "gd", "lr=0.01", 0)
    tiny_experiment(out, 0)
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["status"] == "ok" and record["diverged_at"] is None
    assert record["params"] == {"lr": 0.01, "steps": 50}
    assert set(record["runtime"]) >= {"wall_s", "peak_rss_mb", "peak_gpu_mb", "device", "threads"}
    assert record["runtime"]["peak_rss_mb"] > 10 and record["runtime"]["wall_s"] > 0
    assert set(record["env"]) >= {"lorarepro", "git", "torch", "python", "numpy"}
    trace = pd.read_parquet(out / TRACE_FILE)
    assert list(trace.columns) == ["step", "loss"] and len(trace) == 50
    assert trace["loss"].iloc[-1] == pytest.approx(record["metrics"]["final_loss"])


def test_same_seed_is_bitwise_identical_and_seeds_differ(tmp_path):
    first = strip_timing(tiny_experiment(tmp_path / "a", 3))
    again = strip_timing(tiny_experiment(tmp_path / "b", 3))
    other = strip_timing(tiny_experiment(tmp_path / "c", 4))
    assert first == again
    assert (tmp_path / "a" / TRACE_FILE).read_bytes() == (tmp_path / "b" / TRACE_FILE).read_bytes()
    assert first["metrics"]["final_loss"] != other["metrics"]["final_loss"]


def test_each_stopwatch_block_reports_its_own_memory_peak():
    """Jobs that run many methods in one process compare their peaks: a block after a large one must
    not inherit the earlier block's high-water mark."""
    with Stopwatch() as big:
        held = np.ones(400 * 2**20 // 8)  # 400 MB, touched
        held[::512] = 2.0
    del held
    with Stopwatch() as small:
        np.ones(10)
    if big.runtime()["peak_rss_scope"] != "block":
        pytest.skip("this platform cannot reset the resident-memory high-water mark")
    assert big.runtime()["peak_rss_mb"] - small.runtime()["peak_rss_mb"] > 300


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"partial": ')
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("garbage")
            raise RuntimeError
    assert json.loads(target.read_text()) == {"a": 1}  # the old complete file survives


def test_atomic_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "dataset"
    with atomic_dir(target) as staging:
        (staging / "train.parquet").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "train.parquet").write_text("new, half written")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]  # no staging folder left behind
    assert (target / "train.parquet").read_text() == "old"
    with atomic_dir(target) as staging:
        (staging / "test.parquet").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["test.parquet"]  # nothing of the old folder survives


def test_non_finite_values_become_null_and_divergence_is_recorded(tmp_path):
    losses = np.array([1.0, 10.0, 1e200, np.inf, np.nan])
    step = first_nonfinite(losses)
    assert step == 3
    record = write_run(tmp_path, paper="p", experiment="e", method="m", seed=0, scale="smoke", params={},
                       metrics={"final_loss": float(losses[-1])}, runtime={}, diverged_at=step,
                       trace={"step": np.arange(5), "loss": losses})
    on_disk = json.loads((tmp_path / RECORD_FILE).read_text())
    assert on_disk["status"] == "diverged" and on_disk["diverged_at"] == 3
    assert on_disk["metrics"]["final_loss"] is None
    assert record["status"] == "diverged"
    assert first_nonfinite(np.ones(4)) is None


def test_truncated_record_is_an_error_naming_the_file(tmp_path):
    tiny_experiment(tmp_path / "ok", 0)
    bad = tmp_path / "bad" / RECORD_FILE
    bad.parent.mkdir()
    text = (tmp_path / "ok" / RECORD_FILE).read_text()
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=f"{bad}.*unreadable"):
        read_record(bad)
    bad.write_text(json.dumps({"paper": "p"}))
    with pytest.raises(ValueError, match="lacks"):
        load_records([bad])


def test_records_and_traces_flatten_for_aggregation(tmp_path):
    paths = []
    for seed in (0, 1):
        tiny_experiment(tmp_path / str(seed), seed)
        paths.append(tmp_path / str(seed) / RECORD_FILE)
    table = load_records(paths)
    assert {"params.lr", "metrics.final_loss", "runtime.wall_s"} <= set(table.columns)
    assert table["seed"].tolist() == [0, 1]
    traces = load_traces(paths)
    assert len(traces) == 100 and set(traces["seed"]) == {0, 1} and "params.lr" in traces


@pytest.mark.parametrize("name", ["wall_s", "wall_s_to_tol", "step_s_median", "feature_load_s", "peak_mb",
                                  "memory_gb", "step_ms", "gd_gflops", "gd_matmul_efficiency",
                                  "wall_speedup_vs_narrow", "init_share", "runtime.wall_s", "memory overhead MB",
                                  "LoRA-One init share %", "LoRA: wall time (peak memory)"])
def test_machine_metrics_are_told_apart(name):
    assert is_machine_metric(name)


@pytest.mark.parametrize("name", ["rank_zero_share", "sv_top_r_share", "n_samples", "best_spearman", "mc_sem",
                                  "one_step_error", "steps_done", "train_loss_last", "seeds_needed",
                                  "LoRA-One score", "Pearson (MSRvid)", "LoRA's accuracy"])
def test_method_metrics_are_not_machine_metrics(name):
    assert not is_machine_metric(name)
