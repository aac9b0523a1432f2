"""The generic fine-tuning entry point end to end on tiny models: parameters in, run record out.

The two "the loop learns" recipes on the bundled real models (benchmarks/recipes/) take minutes; they
run only with LORAREPRO_SLOW=1 and the materialised resources (`snakemake resources/models/minilm_l6
resources/models/smollm2_135m resources/data/stsb resources/data/rotten_tomatoes`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import engine_tiny
from lorarepro.experiments.engine.finetune import main
from lorarepro.records import read_record
from lorarepro.train.run import finetune

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "benchmarks" / "recipes"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"data": engine_tiny.datasets(root), "bert": engine_tiny.bert_folder(root),
            "llama": engine_tiny.llama_folder(root)}


def params(assets, **blocks):
    base = {"paper": "engine", "experiment": "cli", "seed": 1, "scale": "smoke", "device": "cpu",
            "model": {"name": str(assets["bert"])},
            "task": {"dataset": str(assets["data"]["similarity"]), "kind": "regression", "max_length": 16},
            "adapter": {"init": "lora_one", "r": 4, "alpha": 8, "targets": ["query", "value"],
                        "train_modules": ["head"], "gradient": {"examples": 4, "batch_size": 2}},
            "optimizer": {"name": "adamw", "lr": 1e-2},
            "train": {"steps": 6, "batch_size": 8, "eval_every": 3, "progress": False, "checkpoint_every": 3}}
    return {**base, **blocks}


def test_cli_writes_a_complete_run_record(assets, tmp_path, capsys):
    out = tmp_path / "run"
    main(["--params", json.dumps(params(assets)), "--out", str(out)])
    record = read_record(out / "metrics.json")
    assert record["status"] == "ok" and record["method"] == "lora_one" and record["seed"] == 1
    m = record["metrics"]
    assert {"pearson", "spearman", "best_pearson", "init_pearson", "train_loss_last", "init_s", "init_share",
            "step_s_median", "trainable_params"} <= set(m)
    assert 0 < m["init_share"] < 1 and m["steps_done"] == 6
    trace = pd.read_parquet(out / "trace.parquet")
    assert list(trace["step"]) == list(range(7))
    assert trace["eval_pearson"].notna().tolist() == [True, False, False, True, False, False, True]
    assert record["runtime"]["peak_rss_mb"] > 0 and record["runtime"]["device"] == "cpu"
    assert not (out / "checkpoint.pt").exists()
    assert json.loads(capsys.readouterr().out.strip())["status"] == "ok"


def test_params_from_a_file_and_a_prompted_decoder(assets, tmp_path):
    spec = params(assets, model={"name": str(assets["llama"]), "kind": "causal_lm"},
                  task={"dataset": str(assets["data"]["sentiment"]), "kind": "prompted",
                        "template": "{text} . sentiment :", "label_words": [" negative", " positive"]},
                  adapter={"init": "nora", "r": 4, "alpha": 8, "targets": ["q_proj", "v_proj"]},
                  optimizer={"name": "preconditioned_adamw", "lr": 1e-2, "normalize": True})
    path = tmp_path / "params.json"
    path.write_text(json.dumps(spec))
    main(["--params", str(path), "--out", str(tmp_path / "run")])
    record = read_record(tmp_path / "run" / "metrics.json")
    assert record["status"] == "ok" and {"accuracy", "f1", "init_accuracy"} <= set(record["metrics"])


def _slow_ready(*names):
    missing = [n for n in names if not (ROOT / n).exists()]
    reason = "set LORAREPRO_SLOW=1 to run" if os.environ.get("LORAREPRO_SLOW") != "1" else f"missing {missing}"
    return pytest.mark.skipif(os.environ.get("LORAREPRO_SLOW") != "1" or bool(missing), reason=reason)


def _recipe(name):
    return json.loads((RECIPES / name).read_text())


@pytest.mark.slow
@_slow_ready("resources/models/minilm_l6", "resources/data/stsb")
def test_minilm_lora_learns_stsb(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    record = finetune(_recipe("minilm_stsb.json"), tmp_path / "run")
    assert record["metrics"]["pearson"] >= 0.80


@pytest.mark.slow
@_slow_ready("resources/models/smollm2_135m", "resources/data/rotten_tomatoes")
def test_smollm2_lora_beats_its_zero_shot_accuracy(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    record = finetune(_recipe("smollm2_rotten_tomatoes.json"), tmp_path / "run")
    assert record["metrics"]["accuracy"] > record["metrics"]["init_accuracy"]


def test_a_killed_job_resumes_from_its_checkpoint_to_the_same_record(assets, tmp_path):
    """SIGKILL the job once it has checkpointed; the rerun continues from there and ends with the
    metrics and trace of an uninterrupted run (timings aside)."""
    run = params(assets, train={"steps": 60, "batch_size": 8, "eval_every": 20, "progress": False,
                                "checkpoint_every": 5})
    cmd = [sys.executable, "-m", "lorarepro.experiments.engine.finetune", "--params", json.dumps(run)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    job = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint.pt").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    assert not (killed / "metrics.json").exists()

    rerun = subprocess.run([*cmd, "--out", str(killed)], env=env, check=True, capture_output=True, text=True)
    assert "resuming from the checkpoint at step" in rerun.stderr
    timings = {"init_s", "init_share", "step_s_median", "step_s_mean", "train_s", "peak_memory_mb"}
    whole, resumed = (read_record(tmp_path / name / "metrics.json")["metrics"] for name in ("whole", "killed"))
    assert {k: v for k, v in resumed.items() if k not in timings} == {k: v for k, v in whole.items() if k not in timings}
    columns = [c for c in pd.read_parquet(tmp_path / "whole" / "trace.parquet").columns
               if not c.endswith(("_s", "_mb"))]  # timings and memory
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "trace.parquet")[columns],
                                  pd.read_parquet(tmp_path / "whole" / "trace.parquet")[columns])
    assert not (killed / "checkpoint.pt").exists()
