"""Rank-r LoRA fine-tuning of the test task T+1 from one retrained base, trials batched.

    python -m lorarepro.experiments.meta_lora.finetune --params '<json>' --model linear --sweep T \
        --method sr --setting T=3 --bases …/bases.pt --records …/seed=<s>/metrics.json …

The base (A, and c for the shallow net) is frozen and a new adapter QVᵀ on A is fitted to the n test
samples (eq. 9): GD from Q, V ~ N(0, 0.1²) in the linear model, AdamW from the default LoRA init
(up factor zero) in the shallow net; both methods of a point start from the same adapter and see the
same test data. The trace holds the paper's metric at every iteration, the in-sample error against
the noiseless targets (1/n)‖Φ(X; Â + QVᵀ) − Φ(X; W*)‖²; metrics.json its initial, 10³-step and final
values, and for the linear model the population residual of the best rank-r adapter,
Σ_{i>r} σ_i²(W* − Â), and Lemma 1's noise bound 24σ_ε² r d / n (γ = 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from lorarepro.config import seeds_of
from lorarepro.experiments.meta_lora.grid import finetune_point, finetune_rank, finetune_steps, resolve
from lorarepro.experiments.meta_lora.instance import default_linear_init, truth as make_truth
from lorarepro.metrics.spectral import tail_energy
from lorarepro.optim import meta_retraining as mr
from lorarepro.problems import multitask as mt
from lorarepro.records import Stopwatch, first_nonfinite, write_run

PAPER = "meta_lora"
REPORT_STEP = 1000


def finetune_linear(A, truth, test, seeds, r: int, steps: int, s: dict) -> torch.Tensor:
    d, dtype = A.shape[-1], A.dtype
    Q0, V0 = (s["finetune"]["init_std"] * mt.randn(seeds, mt.FINETUNE_INIT, (d, r), i, dtype=dtype) for i in (0, 1))
    moments = mr.Moments.of(test.X, test.Y)
    W_star = truth.task_weights[:, -1]
    _, _, trace = mr.lora_finetune_linear(A, moments, Q0, V0, steps, s["finetune"]["lr"],
                                          lambda W: moments.energy(W - W_star))
    return trace


def finetune_shallow(A, c, test, seeds, r: int, steps: int, s: dict) -> torch.Tensor:
    d, dtype = A.shape[-1], A.dtype
    V0 = default_linear_init(seeds, (r, d), mt.FINETUNE_INIT, 0, dtype=dtype).transpose(-2, -1)
    opt = mr.AdamW(lr=s["finetune"]["lr"], weight_decay=s["finetune"]["weight_decay"])
    _, _, trace = mr.lora_finetune_shallow(A, c, test, torch.zeros_like(V0), V0, steps, opt)
    return trace


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, help="JSON: the model's settings, scale and device")
    parser.add_argument("--model", choices=["linear", "shallow"], required=True)
    parser.add_argument("--sweep", required=True, help="the swept key (T, n, N, k or d)")
    parser.add_argument("--method", choices=["sr", "lora_ml"], required=True, help="how the base was retrained")
    parser.add_argument("--setting", required=True, help="the run folder, e.g. T=3")
    parser.add_argument("--bases", required=True, help="the retraining job's bases.pt")
    parser.add_argument("--records", nargs="+", required=True, help="one metrics.json per seed, in seed order")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    params = json.loads(args.params)
    s = resolve(params)
    torch.set_num_threads(args.threads)
    seeds = seeds_of(s)
    p = finetune_point(s, args.sweep, args.setting)
    r, steps = finetune_rank(s, p), finetune_steps(s, args.sweep)
    bases = torch.load(args.bases)
    if list(bases["seeds"]) != seeds:
        raise SystemExit(f"{args.bases} holds seeds {bases['seeds']}, this run needs {seeds}")
    with Stopwatch("cpu") as sw:
        truth = make_truth(s, args.model, p, seeds)
        test = mt.sample_test_data(truth, seeds, p["n"], s["sigma_x"], s["sigma_eps"])
        if args.model == "linear":
            trace = finetune_linear(bases["A"], truth, test, seeds, r, steps, s | p)
        else:
            trace = finetune_shallow(bases["A"], bases["c"], test, seeds, r, steps, s | p)
    runtime = sw.runtime(seeds_in_job=len(seeds))

    extra = {}
    if args.model == "linear":
        extra["rank_residual"] = s["sigma_x"] ** 2 * tail_energy(truth.task_weights[:, -1] - bases["A"], r)
        extra["lemma1_bound"] = torch.full((len(seeds),), 24 * s["sigma_eps"] ** 2 * r * p["d"] / p["n"])
    recorded = {k: v for k, v in s.items() if k not in ("seeds", "resources", "sweeps", "base", "scale", "device",
                                                         "finetune", "retrain")}
    recorded |= p | {"sweep": args.sweep, "rank": r, "steps": steps, "setting": args.setting,
                     "protocol": s.get("protocol", "paper")} | {f"finetune_{k}": v for k, v in s["finetune"].items()}
    if len(args.records) != len(seeds):
        raise SystemExit(f"{len(args.records)} record paths for {len(seeds)} seeds")
    steps_axis = torch.arange(steps + 1).numpy()
    for i, (seed, record) in enumerate(zip(seeds, args.records)):
        error = trace[i].numpy()
        diverged_at = first_nonfinite(error, steps_axis)
        metrics = {"init_error": float(error[0]), "final_error": float(error[-1]),
                   **({f"error_at_{REPORT_STEP}": float(error[REPORT_STEP])} if steps >= REPORT_STEP else {}),
                   **{name: float(values[i]) for name, values in extra.items()}}
        if "lemma1_bound" in metrics:
            metrics["lemma1_ratio"] = metrics["final_error"] / metrics["lemma1_bound"]
        write_run(Path(record).parent, paper=PAPER, experiment=f"{args.model}_{args.sweep}", method=args.method,
                  seed=seed, scale=params["scale"], params=recorded, metrics=metrics, runtime=runtime,
                  trace=pd.DataFrame({"step": steps_axis, "error": error}), diverged_at=diverged_at)
    print(f"{args.model}_{args.sweep}/{args.method}/{args.setting}: rank {r}, {steps} steps, {len(seeds)} trials in "
          f"{runtime['wall_s']:.1f}s; final error median {trace[:, -1].median():.3g}", flush=True)


if __name__ == "__main__":
    main()
