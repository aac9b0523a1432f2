"""Figure 5 (App. E.2): spurious local minima of the reduced LoRA-ML loss L̂(U) for T ≥ 3, and GD from them.

    python -m lorarepro.experiments.meta_lora.spurious --params '<json>' \
        --records results/meta_lora/spurious/newton/T=3_d=5_k=1/seed=0/metrics.json

For each draw of U* (k = 1, as the authors' utility supports), Newton's method on ∇L̂ runs from
`starts` Gaussian points. A root is a spurious minimum when ‖∇L̂‖ ≤ grad_tol, L̂ > loss_tol (not
global) and the Hessian's smallest eigenvalue exceeds eig_tol; it is certified when (U − Û)ᵀ∇L̂(U) > 0
on `net` random points of the sphere of radius δ about it. GD then starts at distance δ from every
spurious minimum found; its loss trace (the figure) stays flat above zero. The record counts the
roots of each type; the trace holds the GD paths (column `point` numbers them).
"""

from __future__ import annotations


import pandas as pd
import torch

from lorarepro.config import format_setting, seeds_of
from lorarepro.experiments.meta_lora import grid, job
from lorarepro.optim import critical_points as cp
from lorarepro.problems import multitask as mt
from lorarepro.records import Stopwatch, run_dir, write_run

EXPERIMENT, METHOD = "spurious", "newton"


def setting_of(spec: dict) -> str:
    return format_setting({"T": spec["T"], "d": spec["d"], "k": 1})


def reduced_loss(u: torch.Tensor, u_star: torch.Tensor) -> torch.Tensor:
    """L̂ of one instance as a function of the flat factors u (T·d,), with k = 1."""
    return mt.reduced_loss(u.reshape(u_star.shape), u_star)


def search(spec: dict, seed: int) -> tuple[dict, pd.DataFrame]:
    T, d, starts = spec["T"], spec["d"], spec["starts"]
    u_star = mt.randn([seed], mt.TRUTH, (spec["draws"], T, d, 1))[0]
    data = u_star.repeat_interleave(starts, 0)
    x0 = mt.randn([seed], mt.RETRAIN_INIT, (spec["draws"] * starts, T * d))[0] * u_star.norm(dim=-2).mean()
    x = cp.newton_roots(reduced_loss, x0, data, spec["newton_steps"])
    g, H = cp.gradients(reduced_loss, x, data), cp.hessians(reduced_loss, x, data)
    loss = torch.func.vmap(reduced_loss)(x, data)
    root = g.norm(dim=-1) <= spec["grad_tol"]
    eig_min = torch.linalg.eigvalsh(H)[:, 0]
    spurious = root & (loss > spec["loss_tol"]) & (eig_min > spec["eig_tol"])
    generator = torch.Generator().manual_seed(seed)
    x_sp, data_sp = x[spurious], data[spurious]
    certified = cp.sphere_certificate(reduced_loss, x_sp, data_sp, spec["radius"], spec["net"], generator) > 0
    direction = torch.randn(x_sp.shape, generator=generator, dtype=x.dtype)
    start = x_sp + spec["radius"] * direction / direction.norm(dim=-1, keepdim=True)
    trace = cp.gradient_descent(reduced_loss, start, data_sp, spec["gd_steps"], spec["lr"])
    steps = torch.arange(spec["gd_steps"] + 1)
    frame = pd.DataFrame({"point": torch.arange(len(x_sp)).repeat_interleave(len(steps)).numpy(),
                          "step": steps.repeat(len(x_sp)).numpy(), "loss": trace.reshape(-1).numpy(),
                          "start_loss": loss[spurious].repeat_interleave(len(steps)).numpy()})
    metrics = {"starts": len(x), "roots": int(root.sum()), "global_minima": int((root & (loss <= spec["loss_tol"])).sum()),
               "spurious_minima": int(spurious.sum()), "certified_minima": int(certified.sum()),
               "min_spurious_loss": float(loss[spurious].min()) if spurious.any() else float("nan"),
               # GD near a strict minimum returns to it: the loss after GD relative to the minimum's loss
               "max_gd_loss_drop": float((1 - trace[:, -1] / loss[spurious]).max()) if spurious.any() else float("nan")}
    return metrics, frame


def main(argv=None) -> None:
    args = job.parse(job.parser(__doc__, records="metrics.json of every seed"), argv)
    params = args.params
    spec, seeds = params["spurious"], seeds_of(params)
    setting, root = setting_of(spec), grid.results_root(args.records[0])
    job.check_records(args, {str(run_dir(root, grid.PAPER, EXPERIMENT, METHOD, setting, s) / "metrics.json")
                             for s in seeds}, "the spurious-minimum search's seeds")
    for seed in seeds:
        with Stopwatch("cpu") as sw:
            metrics, trace = search(spec, seed)
        write_run(run_dir(root, grid.PAPER, EXPERIMENT, METHOD, setting, seed), paper=grid.PAPER, experiment=EXPERIMENT,
                  method=METHOD, seed=seed, scale=params["scale"], params=spec | {"k": 1, "setting": setting},
                  metrics=metrics, runtime=sw.runtime(), trace=trace)
        print(f"{EXPERIMENT}/{setting}/seed={seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)


if __name__ == "__main__":
    main()
