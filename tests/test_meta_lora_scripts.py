"""Meta-LoRA scripts on tiny grids: the run grid, the retrain → fine-tune hand-over and its records,
the theory checks, and the critical-point tools behind Figure 5."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lorarepro.experiments.meta_lora import finetune, grid, retrain, spurious, theory
from lorarepro.optim import critical_points as cp
from lorarepro.problems import multitask as mt
from lorarepro.records import load_records, run_dir


def model_settings(model: str) -> dict:
    shallow = model == "shallow"
    return {
        "protocol": "paper", "dtype": "float32" if shallow else "float64", "sigma_x": 1.0, "sigma_eps": 0.1,
        "seeds": 2, "base": {"T": 3, "n": 20, "N": 40, "k": 1, "d": 6},
        "sweeps": {"T": {"values": [2, 3]}, "d": {"values": [5]}, "k": {"values": [1], "base": {"d": 8}}},
        "retrain": ({"steps": 20, "lr": 1e-2, "weight_decay": 0.01} if shallow else
                    {"steps": 200, "inner_steps": 5, "lr_A": 0.03, "lr_U": 0.003, "init_std": 0.1}),
        "finetune": ({"steps": 15, "lr": 1e-2, "weight_decay": 0.01} if shallow else
                     {"steps": 30, "lr": 0.005, "init_std": 0.1, "rank_factor_at_T2": 3}),
        "code": {"seeds": 1, "sweeps": {"T": {"values": [4]}}},
        "scale": "smoke", "device": "cpu",
    }


def test_grid_shares_retraining_points_and_applies_the_code_protocol():
    s = model_settings("linear")
    assert grid.retrain_points(s) == ["N=40_T=2_d=6_k=1", "N=40_T=3_d=6_k=1", "N=40_T=3_d=5_k=1",
                                      "N=40_T=3_d=8_k=1"]
    assert len(grid.finetune_runs(s)) == 2 * 4
    assert grid.finetune_rank(s, grid.point(s, "T", 2)) == 3 and grid.finetune_rank(s, grid.point(s, "T", 3)) == 1
    code = grid.resolve(s | {"protocol": "code"})
    assert code["seeds"] == 1 and code["sweeps"]["T"]["values"] == [4] and "code" not in code


def records_of(root, model: str, s: dict) -> tuple[list[str], list[str]]:
    seeds = range(s["seeds"])
    retrained = {m: [str(run_dir(root, "meta_lora", f"{model}_retrain", m, p, seed) / "metrics.json")
                     for p in grid.retrain_points(s) for seed in seeds] for m in grid.METHODS}
    tuned = [str(run_dir(root, "meta_lora", f"{model}_{sweep}", m, setting, seed) / "metrics.json")
             for sweep, m, setting in grid.finetune_runs(s) for seed in seeds]
    return retrained, tuned


@pytest.mark.parametrize("model", ["linear", "shallow"])
def test_retrain_then_finetune_writes_one_record_per_run_and_seed(tmp_path, model):
    s = model_settings(model)
    retrained, tuned = records_of(tmp_path, model, s)
    for method in grid.METHODS:
        retrain.main(["--params", json.dumps(s), "--model", model, "--method", method, "--records", *retrained[method]])
    finetune.main(["--params", json.dumps(s), "--model", model, "--records", *tuned])
    records = load_records(tuned).set_index(["experiment", "method", "params.setting", "seed"]).sort_index()
    assert len(records) == len(tuned) and (records["status"] == "ok").all()
    ml, sr = records.xs("lora_ml", level="method"), records.xs("sr", level="method")
    # LoRA-ML's record carries the same trial's SR error: the comparison is paired
    np.testing.assert_array_equal(ml["metrics.sr_final_error"].to_numpy(), sr["metrics.final_error"].to_numpy())
    if model == "linear":
        assert records.loc[("linear_T", "sr", "T=2"), "params.rank"].eq(3).all()
        assert (records["metrics.rank_residual"] >= 0).all()


def test_finetune_refuses_records_outside_the_grid(tmp_path):
    s = model_settings("linear")
    _, tuned = records_of(tmp_path, "linear", s)
    with pytest.raises(SystemExit):
        finetune.main(["--params", json.dumps(s), "--model", "linear", "--records", *tuned[:-1]])


def test_theory_checks_write_every_point(tmp_path):
    s = {"seeds": 1, "scale": "smoke", "device": "cpu",
         "thm2": {"draws": 4000, "points": [{"T": 3, "k": 1, "d": 4}]},
         "prop3": {"Ts": [2], "k": 1, "d": 6, "draws": 3},
         "gd_population": {"Ts": [3], "k": 1, "d": 5, "draws": 3, "steps": 3000, "lr": 0.02, "init_std": 0.1,
                           "zero_loss": 1e-8},
         "e1_family": {"s": [0.0, 1.0], "radius": 1e-3, "gd_steps": 20, "lr": 0.01}}
    paths = [str(run_dir(tmp_path, "meta_lora", e, m, setting, 0) / "metrics.json")
             for e, m, setting in grid.theory_runs(s)]
    theory.main(["--params", json.dumps(s), "--records", *paths])
    records = load_records(paths).set_index("experiment")
    assert records.loc["theory_thm2", "metrics.ratio_to_corrected"] == pytest.approx(1, abs=0.05)
    assert records.loc["theory_prop3", "metrics.min_loss_below_threshold"] > 0
    e1 = records.loc["theory_e1"].set_index("params.s")
    assert e1.loc[1.0, "metrics.base_error"] > 1 and e1["metrics.loss"].max() < 1e-20


def quadratic_with_saddle(x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (x² − 1)² + data·y²: minima at (±1, 0), a saddle at 0 when data > 0."""
    return (x[0] ** 2 - 1) ** 2 + data * x[1] ** 2


def test_newton_finds_roots_and_the_certificate_tells_minima_from_saddles():
    data = torch.tensor([1.0, 1.0], dtype=torch.float64)
    x = cp.newton_roots(quadratic_with_saddle, torch.tensor([[0.8, 0.3], [0.1, -0.2]], dtype=torch.float64), data, 30)
    torch.testing.assert_close(x, torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    certificate = cp.sphere_certificate(quadratic_with_saddle, x, data, 1e-2, 200, torch.Generator().manual_seed(0))
    assert certificate[0] > 0 > certificate[1]
    trace = cp.gradient_descent(quadratic_with_saddle, x[:1] + 0.01, data[:1], 50, 0.05)
    assert trace.shape == (1, 51) and trace[0, -1] < trace[0, 0]


def test_spurious_search_classifies_every_root():
    spec = {"T": 3, "d": 5, "draws": 2, "starts": 6, "newton_steps": 30, "grad_tol": 1e-9, "loss_tol": 1e-6,
            "eig_tol": 1e-6, "radius": 1e-2, "net": 20, "gd_steps": 10, "lr": 1e-3}
    metrics, trace = spurious.search(spec, 0)
    assert metrics["starts"] == 12 and metrics["global_minima"] + metrics["spurious_minima"] <= metrics["roots"]
    assert len(trace) == metrics["spurious_minima"] * (spec["gd_steps"] + 1)
    # the global minimum U = U* is a root with zero loss
    u_star = mt.randn([0], mt.TRUTH, (1, 3, 5, 1))[0]
    assert spurious.reduced_loss(u_star[0].reshape(-1), u_star[0]) == 0
