"""Rank-r LoRA fine-tuning of the test task T+1 from the retrained bases, every run of a model's sweeps,
trials batched as a leading dimension.

    python -m lorarepro.experiments.meta_lora.finetune --params '<json>' --model linear \
        --records results/meta_lora/linear_T/sr/T=3/seed=<s>/metrics.json …

The base (A, and c for the shallow net) is frozen and a new adapter QVᵀ on A is fitted to the n test
samples (eq. 9): GD from Q, V ~ N(0, 0.1²) in the linear model, AdamW from the default LoRA init
(up factor zero) in the shallow net; both methods of a point start from the same adapter and see the
same test data. The trace holds the paper's metric at every iteration, the in-sample error against
the noiseless targets (1/n)‖Φ(X; Â + QVᵀ) − Φ(X; W*)‖²; metrics.json its initial, 10³-step and final
values, for the linear model the population residual of the best rank-r adapter,
Σ_{i>r} σ_i²(W* − Â), and Lemma 1's noise bound 24σ_ε² r d / n (γ = 0); LoRA-ML's records add the
trial's log10 ratio of SR's final error to its own (same trial, same test data, same adapter start).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lorarepro.config import seeds_of
from lorarepro.device import resolve_device
from lorarepro.experiments.meta_lora import grid, job
from lorarepro.experiments.meta_lora.instance import default_linear_init, truth as make_truth
from lorarepro.metrics.spectral import tail_energy
from lorarepro.optim import meta_retraining as mr
from lorarepro.problems import multitask as mt
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run

REPORT_STEP = 1000


def finetune_linear(A, truth, test, seeds, r: int, steps: int, s: dict) -> torch.Tensor:
    d, dtype = A.shape[-1], A.dtype
    Q0, V0 = (s["finetune"]["init_std"] * mt.randn(seeds, mt.FINETUNE_INIT, (d, r), i, dtype=dtype) for i in (0, 1))
    moments = mr.Moments.of(test.X, test.Y)
    W_star = truth.task_weights[:, -1]
    _, _, trace = mr.lora_finetune_linear(A, moments, Q0, V0, steps, s["finetune"]["lr"],
                                          lambda W: moments.energy(W - W_star))
    return trace


def finetune_shallow(A, c, test, seeds, r: int, steps: int, s: dict, device: str) -> torch.Tensor:
    d, dtype = A.shape[-1], A.dtype
    V0 = default_linear_init(seeds, (r, d), mt.FINETUNE_INIT, 0, dtype=dtype).transpose(-2, -1).to(device)
    opt = mr.AdamW(lr=s["finetune"]["lr"], weight_decay=s["finetune"]["weight_decay"])
    _, _, trace = mr.lora_finetune_shallow(A.to(device), c.to(device), test.to(device), torch.zeros_like(V0), V0,
                                           steps, opt)
    return trace.cpu()


def finetune_run(model: str, sweep: str, setting: str, s: dict, seeds: list[int], root: Path, device: str) -> dict:
    """Fine-tune both methods' bases at one run of a sweep; returns per method its trace and metrics."""
    p = grid.finetune_point(s, sweep, setting)
    r, steps = grid.finetune_rank(s, p), grid.finetune_steps(s, sweep)
    truth = make_truth(s, model, p, seeds)
    test = mt.sample_test_data(truth, seeds, p["n"], s["sigma_x"], s["sigma_eps"])
    out = {}
    for method in grid.METHODS:
        bases = torch.load(grid.bases_file(root, model, method, grid.retrain_setting(p)), weights_only=True)
        if list(bases["seeds"]) != seeds:
            raise SystemExit(f"the {method} bases at {p} hold seeds {bases['seeds']}, this run needs {seeds}")
        with Stopwatch(device) as sw:
            if model == "linear":
                trace = finetune_linear(bases["A"], truth, test, seeds, r, steps, s | p)
            else:
                trace = finetune_shallow(bases["A"], bases["c"], test, seeds, r, steps, s | p, device)
        metrics = {"init_error": trace[:, 0], "final_error": trace[:, -1]}
        if steps >= REPORT_STEP:
            metrics[f"error_at_{REPORT_STEP}"] = trace[:, REPORT_STEP]
        if model == "linear":
            metrics["rank_residual"] = s["sigma_x"] ** 2 * tail_energy(truth.task_weights[:, -1] - bases["A"], r)
            metrics["residual_ratio"] = metrics["final_error"] / metrics["rank_residual"]
            metrics["lemma1_bound"] = torch.full((len(seeds),), 24 * s["sigma_eps"] ** 2 * r * p["d"] / p["n"])
            metrics["lemma1_ratio"] = metrics["final_error"] / metrics["lemma1_bound"]
        out[method] = {"trace": trace, "metrics": metrics, "runtime": sw.runtime(seeds_in_job=len(seeds)),
                       "params": p | {"rank": r, "steps": steps}}
    # Both methods see the same test data and adapter start: their per-trial ratio is the paper's comparison.
    sr, ml = out["sr"]["metrics"]["final_error"], out["lora_ml"]["metrics"]["final_error"]
    out["lora_ml"]["metrics"] |= {"sr_final_error": sr, "log10_gain_over_sr": torch.log10(sr / ml)}
    return out


def main(argv=None) -> None:
    parser = job.parser(__doc__, records="metrics.json of every run and seed")
    parser.add_argument("--model", choices=["linear", "shallow"], required=True)
    args = job.parse(parser, argv)

    params = args.params
    s = grid.resolve(params)
    seeds = seeds_of(s)
    root = grid.results_root(args.records[0])
    device = str(resolve_device(params["device"])) if args.model == "shallow" else "cpu"  # as in retraining
    runs = grid.finetune_runs(params)
    expected = {str(run_dir(root, grid.PAPER, f"{args.model}_{sweep}", method, setting, seed) / "metrics.json")
                for sweep, method, setting in runs for seed in seeds}
    job.check_records(args, expected, f"the grid of {len(runs)} runs x {len(seeds)} seeds")
    recorded = {k: v for k, v in s.items() if k not in ("seeds", "resources", "sweeps", "base", "scale", "device",
                                                         "finetune", "retrain", "protocol")}
    recorded |= {"protocol": s.get("protocol", "paper")} | {f"finetune_{k}": v for k, v in s["finetune"].items()}
    for sweep, setting in dict.fromkeys((sweep, setting) for sweep, _, setting in runs):
        experiment = f"{args.model}_{sweep}"
        for method, run in finetune_run(args.model, sweep, setting, s, seeds, root, device).items():
            steps_axis = np.arange(run["params"]["steps"] + 1)
            for i, seed in enumerate(seeds):
                error = run["trace"][i].numpy()
                write_run(run_dir(root, grid.PAPER, experiment, method, setting, seed), paper=grid.PAPER,
                          experiment=experiment, method=method, seed=seed, scale=params["scale"],
                          params=recorded | run["params"] | {"sweep": sweep, "setting": setting},
                          metrics={name: float(values[i]) for name, values in run["metrics"].items()},
                          runtime=run["runtime"], trace=pd.DataFrame({"step": steps_axis, "error": error}),
                          diverged_at=first_nonfinite(error, steps_axis))
            print(f"{experiment}/{method}/{setting}: rank {run['params']['rank']}, {run['params']['steps']} steps, "
                  f"{len(seeds)} trials in {run['runtime']['wall_s']:.1f}s; final error median "
                  f"{run['trace'][:, -1].median():.3g}", flush=True)


if __name__ == "__main__":
    main()
