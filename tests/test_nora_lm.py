"""NoRA's language-model experiments: the job script end to end on a tiny LLaMA, its weight probe
(claim 9's init checks, Figure 2's singular-value counts), the metric helpers it uses, the grid the
rules read, the Table 2 stand-in data set, and the Table 2/4 builders and Figure 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import engine_tiny
from lorarepro.adapters.build import build_adapter
from lorarepro.experiments.nora import finetune as job
from lorarepro.experiments.nora.figures import figure_2
from lorarepro.experiments.nora.grid import lm_runs, lm_tasks
from lorarepro.experiments.nora.tables import lm_table
from lorarepro.metrics.spectral import most_changed_singular_values
from lorarepro.metrics.subspace import row_space_residual
from lorarepro.models.load import load_model
from lorarepro.records import load_records
from lorarepro.report.claims import load_claims

ROOT = Path(__file__).resolve().parents[1]
TASK = {"kind": "prompted", "template": "{text} . sentiment :", "label_words": [" negative", " positive"]}


def settings(assets, **extra):
    base = {
        "seeds": 2, "scale": "smoke", "device": "cpu", "experiment": "table4", "threads": 1,
        "model": {"name": str(assets["llama"]), "kind": "causal_lm"},
        "adapter": {"r": 2, "alpha": 4, "targets": ["q_proj", "v_proj"], "dropout": 0.0},
        "train": {"steps": 2, "batch_size": 4, "eval_at_start": False, "eval_batch_size": 16},
        "task_sizes": {"train_size": 16, "eval_size": 16, "max_length": 16},
        "tasks": {"sst2": {"dataset": str(assets["data"]["sentiment"]), **TASK}, "gone": None},
        "precondition_lambda": 1e-6,
        "probe": {"init_checks": True, "sv_change": {"bins": 8, "relative": False}},
        "methods": {"lora": {"init": "default", "lr": 1e-2},
                    "nora_plus": {"init": "nora", "xi": 0.1, "preconditioned": True, "lr": 1e-2}},
    }
    return {**base, **extra}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"data": engine_tiny.datasets(root), "llama": engine_tiny.llama_folder(root)}


# -- the grid the rules and the script share ---------------------------------------------------------
def test_tasks_take_the_scale_sizes_and_null_drops_a_task(assets):
    tasks = lm_tasks(settings(assets))
    assert list(tasks) == ["sst2"]
    assert tasks["sst2"]["train_size"] == 16 and tasks["sst2"]["max_length"] == 16
    assert lm_runs(settings(assets)) == [("lora", "sst2", "task=sst2"), ("nora_plus", "sst2", "task=sst2")]


def test_run_params_map_methods_onto_inits_and_optimizers(assets):
    s = settings(assets)
    lora, nora_plus = job.run_params(s, "sst2", "lora", 0), job.run_params(s, "sst2", "nora_plus", 1)
    assert lora["optimizer"] == {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0}
    assert lora["adapter"]["init"] == "default" and lora["adapter"]["init_options"] == {}
    assert nora_plus["optimizer"] == {"name": "preconditioned_adamw", "lr": 1e-2, "weight_decay": 0.0,
                                      "lam": 1e-6, "normalize": True}
    assert nora_plus["adapter"]["init"] == "nora" and nora_plus["adapter"]["init_options"] == {"xi": 0.1}
    assert nora_plus["seed"] == 1 and nora_plus["task_name"] == "sst2" and nora_plus["task"]["eval_size"] == 16


# -- metric helpers ----------------------------------------------------------------------------------
def test_most_changed_singular_values_finds_the_moved_indices():
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(10, 10, generator=gen, dtype=torch.float64))
    s = torch.linspace(10, 1, 10, dtype=torch.float64)
    moved = s.clone()
    moved[2] += 0.3   # stays in place in the descending order
    moved[7] -= 0.2
    before, after = u[:, :10] @ torch.diag(s) @ v.T, u[:, :10] @ torch.diag(moved) @ v.T
    assert sorted(most_changed_singular_values(before, after, 2).tolist()) == [2, 7]
    # relative to σ_i the small one moved more (0.2/3 > 0.3/8.0)
    assert most_changed_singular_values(before, after, 1, relative=True).tolist() == [7]


def test_row_space_residual_is_zero_inside_and_the_orthogonal_share_outside():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 8, generator=gen, dtype=torch.float64)   # row space: 3 of 8 dimensions
    inside = torch.randn(4, 3, generator=gen, dtype=torch.float64) @ w
    assert row_space_residual(w, inside) < 1e-13
    q, _ = torch.linalg.qr(w.T)
    outside = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    outside = outside - outside @ q @ q.T
    assert row_space_residual(w, outside) == pytest.approx(1.0, abs=1e-12)
    mixed = inside / inside.norm() + outside / outside.norm()
    assert row_space_residual(w, mixed) == pytest.approx(1 / math.sqrt(2), abs=1e-12)


def test_sv_change_counts_shares_and_enrichment():
    s = torch.tensor([6.0, 5, 4, 3, 2, 1], dtype=torch.float64)
    reference = {"a": torch.diag(s), "b": torch.diag(s)}
    trained = {"a": torch.diag(s + torch.tensor([0.5, 0, 0, 0.4, 0, 0])),     # picks 0 (top) and 3
               "b": torch.diag(s + torch.tensor([0, 0, 0, 0, 0.45, 0.05]))}       # picks 4 and 5
    out = job.sv_change_metrics(reference, trained, r=2, bins=4, relative=False)
    assert out["sv_change_counts"] == [1, 0, 0, 1, 2]   # index 0, index 3, and two pooled (≥ 4)
    assert out["sv_top_r_share"] == pytest.approx(0.25)
    # 1 of 4 slots inside the top 2 of 2 matrices (rate 1/4 per top slot) vs 3 picks over 8 outside slots
    assert out["sv_top_r_enrichment"] == pytest.approx(0.25 / (3 / 8))


# -- the probe on a real adapter -------------------------------------------------------------------
@pytest.mark.parametrize("init, row_space", [("nora", True), ("default", False)])
def test_init_checks_on_a_low_rank_pretrained_model(assets, init, row_space):
    """With rank-3 q/v weights, NoRA's lora_A lies in their row space and ΔW₀ = 0; a Kaiming A does not."""
    model = load_model({"name": str(assets["llama"]), "kind": "causal_lm", "dtype": "float64"})
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "v_proj.weight")):
                p.copy_(torch.randn(p.shape[0], 3, generator=gen, dtype=p.dtype) @ torch.randn(3, p.shape[1], generator=gen, dtype=p.dtype))
    model, _ = build_adapter(model, {"init": init, "r": 2, "alpha": 4, "targets": ["q_proj", "v_proj"],
                                     "init_options": {"xi": 0.1} if init == "nora" else {}}, seed=0)
    checks = job.init_checks(model, job.merged_weights(model))
    assert checks["init_delta_rel"] == 0.0
    assert (checks["init_rowspace_residual"] < 1e-10) == row_space
    if not row_space:
        assert checks["init_rowspace_residual"] > 0.5


# -- the job end to end ----------------------------------------------------------------------------
def test_job_writes_one_record_per_method_and_seed(assets, tmp_path, capsys):
    s = settings(assets)
    runs = [(m, seed) for m in s["methods"] for seed in (0, 1)]
    records = [str(tmp_path / m / "task=sst2" / f"seed={seed}" / "metrics.json") for m, seed in runs]
    params = {k: v for k, v in s.items() if k not in ("experiment", "threads")}
    job.main(["--params", json.dumps(params), "--experiment", "table4", "--threads", "1", "--records", *records])
    frame = load_records(records)
    assert frame[["method", "seed"]].apply(tuple, axis=1).tolist() == runs
    assert (frame["status"] == "ok").all() and (frame["experiment"] == "table4").all()
    assert (frame["params.task_name"] == "sst2").all()
    nora = frame[frame["method"] == "nora_plus"]
    assert (nora["metrics.init_delta_rel"] == 0).all()
    for counts in frame["metrics.sv_change_counts"]:
        assert len(counts) == 9 and sum(counts) == 2 * 2 * 2   # r picks × 2 matrices × 2 blocks
    assert frame["metrics.sv_top_r_share"].between(0, 1).all()
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    claims = load_claims(ROOT / "workflow" / "claims" / "nora.yaml")
    lm_metrics = {query["metric"] for claim in claims for query in (claim["quantity"], claim.get("versus"))
                  if query and query["runs"]["experiment"] in ("table2", "table4")}
    assert lm_metrics and {f"metrics.{m}" for m in lm_metrics} <= set(frame.columns)
    with pytest.raises(SystemExit):  # a task the experiment does not have
        job.main(["--params", json.dumps(params), "--experiment", "table4",
                  "--records", str(tmp_path / "lora" / "task=gone" / "seed=0" / "metrics.json")])


def test_prefix_method_runs_prefix_tuning_without_the_lora_block_or_its_checks(assets, tmp_path):
    prefix = {"init": "prefix", "num_virtual_tokens": 5, "init_from": "real_activations", "lr": 1e-2}
    s = settings(assets, methods={"prefix": prefix})
    params = job.run_params(s, "sst2", "prefix", 0)
    assert params["adapter"] == {"init": "prefix", "init_options": {"num_virtual_tokens": 5,
                                                                    "init_from": "real_activations"}}
    records = [str(tmp_path / "prefix" / "task=sst2" / "seed=0" / "metrics.json")]
    shared = {k: v for k, v in s.items() if k not in ("experiment", "threads")}
    job.main(["--params", json.dumps(shared), "--experiment", "table4", "--threads", "1", "--records", *records])
    record = load_records(records).iloc[0]
    assert record["status"] == "ok" and record["method"] == "prefix"
    assert record["metrics.trainable_params"] == 5 * 2 * 2 * 32  # tokens × blocks × (key, value) × kv width
    assert "metrics.init_delta_rel" not in record.index and "metrics.sv_change_counts" not in record.index


# -- Table 2 stand-in data ------------------------------------------------------------------------
def test_stsb_choice_pairs_a_paraphrase_against_a_same_source_distractor():
    from lorarepro.data.bundled import stsb, stsb_choice

    frame = stsb_choice(0)["test"]
    pairs = stsb(0)["test"]
    paraphrases = set(zip(pairs.loc[pairs["label"] >= 4, "sentence1"], pairs.loc[pairs["label"] >= 4, "sentence2"]))
    candidates = set(zip(pairs.loc[pairs["label"] >= 4, "sentence2"], pairs.loc[pairs["label"] >= 4, "source"]))
    right = np.where(frame["label"] == 0, frame["option_a"], frame["option_b"])
    wrong = np.where(frame["label"] == 0, frame["option_b"], frame["option_a"])
    assert all((s1, r) in paraphrases for s1, r in zip(frame["sentence1"], right))
    assert np.mean(right != wrong) > 0.95
    assert all((w, src) in candidates for w, src in zip(wrong, frame["source"]))
    assert 0.4 < frame["label"].mean() < 0.6


# -- tables and Figure 2 ------------------------------------------------------------------------------
def fake_records(counts_len=9):
    rows = []
    for method, shift in (("lora", 0.0), ("nora", 0.02)):
        for task, base in (("sst2", 0.8), ("subj", 0.6)):
            for seed in range(3):
                rows.append({"experiment": "table4", "method": method, "seed": seed, "scale": "default",
                             "params.task_name": task, "params.adapter": {"r": 2},
                             "metrics.accuracy": base + shift + 0.01 * seed,
                             "metrics.sv_change_counts": [2, 1] + [1] * (counts_len - 2),
                             "metrics.sv_outside_top_r_share": 0.5})
    return pd.DataFrame(rows)


def test_lm_table_means_stds_averages_and_paper_columns():
    table = lm_table(fake_records(), "table4", {"lora": {"SST-2": 93.1, "avg": 73.2}}).set_index("method")
    assert table.loc["LoRA", "sst2 (ours)"] == "81.0 ± 1.0"
    assert table.loc["NoRA", "subj (ours)"] == "63.0 ± 1.0"
    assert table.loc["NoRA", "avg (ours)"] == pytest.approx(73.0)
    assert table.loc["LoRA", "SST-2 (paper)"] == 93.1 and np.isnan(table.loc["NoRA", "avg (paper)"])
    assert list(table.columns) == ["sst2 (ours)", "SST-2 (paper)", "subj (ours)", "avg (ours)", "avg (paper)", "seeds"]
    assert (table["seeds"] == 3).all()


def test_figure_2_draws_one_panel_per_task(tmp_path):
    outputs = [tmp_path / "figure_2.png", tmp_path / "figure_2.pdf"]
    figure_2(fake_records(), outputs)
    assert all(p.stat().st_size > 0 for p in outputs)



def test_train_once_trains_each_method_and_seed_once_and_scores_every_task(assets, tmp_path):
    """Table 2's protocol: tasks sharing a training set (here the same data, two test sets) train once."""
    data = assets["data"]["sentiment"]
    s = settings(assets, train_once=True, seeds=1, tasks={"sst2": {"dataset": str(data), **TASK},
                                                          "again": {"dataset": str(data), **TASK, "eval_size": 8}})
    s["methods"] = {"lora": s["methods"]["lora"]}
    records = [str(tmp_path / "lora" / f"task={task}" / "seed=0" / "metrics.json") for task in ("sst2", "again")]
    runs = list(job.run_jobs(s, records, data_root=".", models_root="."))
    assert len(runs) == 1  # one training run, two records
    first, second = (json.loads(Path(r).read_text()) for r in records)
    assert first["params"]["task_name"] == "sst2" and second["params"]["task_name"] == "again"
    assert second["params"]["task"]["eval_size"] == 8 and second["metrics"]["trainable_params"] == first["metrics"]["trainable_params"]
    assert second["metrics"]["train_loss_last"] == first["metrics"]["train_loss_last"]
    assert 0.0 <= second["metrics"]["accuracy"] <= 1.0 and second["metrics"]["best_accuracy"] == second["metrics"]["accuracy"]
    trace = pd.read_parquet(Path(records[1]).with_name("trace.parquet"))
    assert trace["eval_accuracy"].iloc[-1] == second["metrics"]["accuracy"] and trace["eval_accuracy"].iloc[:-1].isna().all()
    separate = list(job.run_jobs({**s, "train_once": False}, [str(tmp_path / "x" / "lora" / "task=again" / "seed=0" / "metrics.json")],
                                 data_root=".", models_root="."))
    assert separate[0]["metrics"]["train_loss_last"] == first["metrics"]["train_loss_last"]  # trained on the same data
    other = {**s, "tasks": {**s["tasks"], "again": {**s["tasks"]["again"], "template": "{text} . review :"}}}
    with pytest.raises(SystemExit, match="again"):  # a task that trains differently cannot share the run
        list(job.run_jobs(other, records, data_root=".", models_root="."))


def test_each_record_holds_its_folders_method_whatever_the_json_key_order(assets, tmp_path):
    """Rules pass settings as JSON with sorted keys and records in config order: the runs follow the paths."""
    s = settings(assets, seeds=1)
    s["methods"] = {"nora_plus": s["methods"]["nora_plus"], "lora": s["methods"]["lora"]}  # not alphabetical
    records = [str(tmp_path / m / "task=sst2" / "seed=0" / "metrics.json") for m in s["methods"]]
    params = {k: v for k, v in s.items() if k not in ("experiment", "threads")}
    job.main(["--params", json.dumps(params, sort_keys=True), "--experiment", "table4", "--records", *records])
    assert [json.loads(Path(r).read_text())["method"] for r in records] == ["nora_plus", "lora"]
