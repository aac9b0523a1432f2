"""Figure 3: GD trajectories of the rank-one toy ŷ = x̃ᵀ(b·a) from LoRA-init and from Spectral-init.

Per seed: 4 inputs x̃ ~ N(0, I₂), target w = (2, 1), loss (1/8)Σ(ỹᵢ − b x̃ᵢᵀa)². LoRA-init draws
a₀ ~ N(0, I₂), b₀ = 0; Spectral-init sets a₀ = g/√‖g‖, b₀ = √‖g‖. The paper defines g = ¼Σ ỹᵢ² x̃ᵢ
(`g_form: squared_targets`); the one-step negative gradient it stands for is ¼Σ ỹᵢ x̃ᵢ = Σ̂w
(`g_form: gradient`). Both inits of a seed see the same data, so the Spectral-init record also
carries its lead over LoRA-init on that draw (start distance, steps to the loss tolerance).
"""

from __future__ import annotations

import numpy as np
import torch

from lorarepro.adapters.matrix_inits import gaussian_init, spectral_init
from lorarepro.config import format_setting, seeds_of
from lorarepro.experiments.cli import parse_args
from lorarepro.experiments.lora_one.common import first_true, steps_to, write_records
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import LinearTask, rank_one_minimizer_distance
from lorarepro.records import Stopwatch

D = torch.float64


def one_step_direction(X: torch.Tensor, y: torch.Tensor, form: str) -> torch.Tensor:
    """g as a 1×2 matrix: the paper's ¼Σ ỹᵢ² x̃ᵢ, or the negative gradient ¼Σ ỹᵢ x̃ᵢ at w♮ = 0."""
    weights = {"squared_targets": y ** 2, "gradient": y}[form]
    return (weights[:, None] * X).mean(0, keepdim=True)


def run(task: LinearTask, A: torch.Tensor, B: torch.Tensor, lr: float, steps: int) -> dict:
    rows = []
    for _ in range(steps + 1):
        rows.append(torch.cat([A[0], B[0], task.loss(A, B)[None]]))
        A, B = factor_step(A, B, *task.grads(A, B), lr)
    a1, a2, b, loss = torch.stack(rows).T.numpy()
    return {"step": list(range(steps + 1)), "a1": a1, "a2": a2, "b": b, "loss": loss}


def main() -> None:
    args = parse_args(__doc__)
    p = args.params
    torch.set_num_threads(p["threads"])
    w = torch.tensor([p["target"]], dtype=D)
    for seed in seeds_of(p):
        with torch.no_grad(), Stopwatch() as sw:
            gen = torch.Generator().manual_seed(seed)
            X = torch.randn(p["n_samples"], 2, generator=gen, dtype=D)
            task = LinearTask.from_samples(X, torch.ones(1, 1, dtype=D), w)
            starts = {"lora_init": gaussian_init(1, 2, 1, 1.0, generator=gen)}
            A, B = spectral_init(one_step_direction(X, (X @ w.T)[:, 0], p["g_form"]), 1)
            starts["spectral_init"] = (A, B) if B[0, 0] >= 0 else (-A, -B)   # the paper's b₀ = +√‖g‖
            traces = {m: run(task, A, B, p["lr"], p["steps"]) for m, (A, B) in starts.items()}
        results = {m: summarize(tr, p) for m, tr in traces.items()}
        lead, base = results["spectral_init"], results["lora_init"]
        lead["start_distance_minus_lora_init"] = lead["start_distance"] - base["start_distance"]
        lead["steps_to_loss_tol_minus_lora_init"] = censored(lead, p) - censored(base, p)
        for method, metrics in results.items():
            write_records(args.root, "fig3", method, format_setting({"g_form": p["g_form"]}), seed, p,
                          params={k: p[k] for k in ("target", "n_samples", "lr", "steps", "loss_tol", "g_form")},
                          metrics=metrics, trace=traces[method], runtime=sw.runtime(),
                          diverged_at=first_true(~np.isfinite(traces[method]["loss"])))


def summarize(trace: dict, p: dict) -> dict:
    """Distances to the minimiser curve at the start and the end, final loss, steps to the tolerance."""
    def distance(i):
        return rank_one_minimizer_distance([trace["a1"][i], trace["a2"][i]], trace["b"][i], p["target"])

    ok = bool(np.isfinite(trace["loss"][-1]))
    return {"start_distance": distance(0), "final_distance": distance(-1) if ok else None,
            "final_loss": float(trace["loss"][-1]) if ok else None,
            "steps_to_loss_tol": steps_to(trace["loss"], p["loss_tol"])}


def censored(metrics: dict, p: dict) -> int:
    """Steps to the loss tolerance, counting a run that never gets there as steps + 1 (a lower bound)."""
    hit = metrics["steps_to_loss_tol"]
    return p["steps"] + 1 if hit is None else hit

if __name__ == "__main__":
    main()
