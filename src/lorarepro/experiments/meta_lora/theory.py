"""Numerical checks of the linear theory (Sec. 3, App. E), one record per check point and seed.

    python -m lorarepro.experiments.meta_lora.theory --params '<json>' \
        --records results/meta_lora/theory_thm2/monte_carlo/T=3_d=10_k=1/seed=0/metrics.json …

* thm2: Monte-Carlo of Σ_t ‖U_t*U_t*ᵀ − (1/T)Σ_s U_s*U_s*ᵀ‖²_F (= 2 Σ_t L_t*(Â_SR)) against the paper's
  constant (T + 1 − 2/T)kd(d+1) and the exact expectation (T − 1)kd(d+1).
* prop3: the best rank-r fit of the test task's residual A* + R_{T+1}* − Â_SR: positive for
  r = k(T+1) − 1, zero for r = k(T+1).
* gd_population: plain GD on objective (14) from A = 0 and small random U_t; the fraction of draws
  that reach zero loss (Thm 11 and Sec. 4.1: spurious minima are almost never found).
* e1_family: App. E.1's T = 2 family: loss (14) and ‖A(s) − A*‖²_F at each s, and GD from a small
  perturbation of the point (its trace: the loss stays at zero and A stays away from A*).
"""

from __future__ import annotations

from functools import partial

import pandas as pd
import torch

from lorarepro.config import format_setting, seeds_of
from lorarepro.experiments.meta_lora import grid, job
from lorarepro.metrics.spectral import tail_energy
from lorarepro.optim import meta_retraining as mr
from lorarepro.problems import multitask as mt
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run

DRAW_SEEDS = 10**6  # draws of seed s are the trials s·10⁶ + i of the data model


def draws_of(seed: int, draws: int) -> list[int]:
    return [seed * DRAW_SEEDS + i for i in range(draws)]


def thm2(spec: dict, p: dict, seed: int) -> tuple[dict, None]:
    U_star = mt.randn([seed], mt.TRUTH, (spec["draws"], p["T"], p["d"], p["k"]))[0]
    excess = mt.sr_excess(U_star)
    mean, corrected, stated = excess.mean().item(), mt.sr_excess_expected(**p), mt.sr_excess_paper(**p)
    return {"mc_mean": mean, "mc_sem": (excess.std() / len(excess) ** 0.5).item(), "draws": spec["draws"],
            "corrected_constant": corrected, "paper_constant": stated,
            "ratio_to_corrected": mean / corrected, "ratio_to_paper": mean / stated,
            "rel_error_to_corrected": abs(mean / corrected - 1), "rel_error_to_paper": abs(mean / stated - 1)}, None


def prop3(spec: dict, p: dict, seed: int) -> tuple[dict, None]:
    truth = mt.sample_ground_truth(draws_of(seed, spec["draws"]), p["T"], p["d"], p["k"])
    residual = truth.task_weights[:, -1] - mt.sr_population_solution(truth)
    threshold = p["k"] * (p["T"] + 1)
    below, at = 0.5 * tail_energy(residual, threshold - 1), 0.5 * tail_energy(residual, threshold)
    return {"rank_threshold": threshold, "min_loss_below_threshold": below.min().item(),
            "max_loss_at_threshold": at.max().item(),
            "max_relative_loss_at_threshold": (at / residual.pow(2).sum((-2, -1))).max().item()}, None


def gd_population(spec: dict, p: dict, seed: int) -> tuple[dict, None]:
    draws = draws_of(seed, spec["draws"])
    truth = mt.sample_ground_truth(draws, p["T"], p["d"], p["k"])
    U0 = spec["init_std"] * mt.randn(draws, mt.RETRAIN_INIT, (p["T"], p["d"], p["k"]))
    A0 = torch.zeros_like(truth.A_star)
    A, U = mr.gd_meta_population(partial(mt.meta_population_grads, truth=truth), A0, U0, spec["steps"], spec["lr"])
    loss = mt.meta_population_loss(A, U, truth)
    return {"fraction_zero_loss": (loss < spec["zero_loss"]).double().mean().item(),
            "median_final_loss": loss.median().item(), "max_final_loss": loss.max().item(),
            "max_base_error": (A - truth.A_star).pow(2).sum((-2, -1)).max().item()}, None


def e1_family(spec: dict, p: dict, seed: int) -> tuple[dict, pd.DataFrame]:
    truth, A, U = mt.e1_family(torch.tensor([p["s"]], dtype=torch.float64))
    loss, base_error = mt.meta_population_loss(A, U, truth).item(), (A - truth.A_star).pow(2).sum().item()
    # GD from a point at distance `radius` (in (A, U) jointly): the loss returns to zero, A stays put.
    dA, dU = mt.randn([seed], mt.RETRAIN_INIT, A.shape[1:]), mt.randn([seed], mt.RETRAIN_INIT, U.shape[1:], 1)
    scale = spec["radius"] / (dA.pow(2).sum() + dU.pow(2).sum()).sqrt()
    A, U = A + scale * dA, U + scale * dU
    trace = {"step": [], "loss": [], "base_error": []}
    for step in range(spec["gd_steps"] + 1):
        trace["step"].append(step)
        trace["loss"].append(mt.meta_population_loss(A, U, truth).item())
        trace["base_error"].append((A - truth.A_star).pow(2).sum().item())
        A, U = mr.gd_meta_population(partial(mt.meta_population_grads, truth=truth), A, U, 1, spec["lr"])
    return {"loss": loss, "base_error": base_error, "gd_final_loss": trace["loss"][-1],
            "gd_final_base_error": trace["base_error"][-1]}, pd.DataFrame(trace)


CHECKS = {"thm2": thm2, "prop3": prop3, "gd_population": gd_population, "e1_family": e1_family}


def main(argv=None) -> None:
    args = job.parse(job.parser(__doc__, records="metrics.json of every check point and seed"), argv)
    params = args.params
    seeds = seeds_of(params)
    root = grid.results_root(args.records[0])
    expected = {str(run_dir(root, grid.PAPER, experiment, method, setting, seed) / "metrics.json")
                for experiment, method, setting in grid.theory_runs(params) for seed in seeds}
    job.check_records(args, expected, "the theory checks' grid")
    for check, run in CHECKS.items():
        experiment, method = grid.THEORY[check]
        for p in grid.theory_points(params, check):
            setting = format_setting(p)
            for seed in seeds:
                with Stopwatch("cpu") as sw:
                    metrics, trace = run(params[check], p, seed)
                write_run(run_dir(root, grid.PAPER, experiment, method, setting, seed), paper=grid.PAPER,
                          experiment=experiment, method=method, seed=seed, scale=params["scale"],
                          params=p | {"setting": setting} | {k: v for k, v in params[check].items()
                                                             if isinstance(v, (int, float, str))},
                          metrics=metrics, runtime=sw.runtime(), trace=trace,
                          diverged_at=None if trace is None else first_nonfinite(trace["loss"], trace["step"].to_numpy()))
                print(f"{experiment}/{setting}/seed={seed}: "
                      + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)


if __name__ == "__main__":
    main()
