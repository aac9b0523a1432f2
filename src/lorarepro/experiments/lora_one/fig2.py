"""Figure 2 (and Theorems 3.1, 3.3): GD from LoRA-init on the linear task for every init scale α², at one d.

All seeds and α² values run as one batch (dims: seed × α²). Each (α², seed) pair gets its own run
record with the risk ½‖BA − Δ‖², the principal angle between A_t's and G♮'s top-r* input-side
subspaces (the paper's U(A_t), U(G♮)), and the Theorem 3.1 alignment of B_t's output side with G♮'s.
A run that overflows (d = 1000, α² = 1: η‖A₀‖² ≫ 2) is recorded as diverged from that step on.
"""

from __future__ import annotations

import math

import torch

from lorarepro.adapters.matrix_inits import spectral_init, top_svd
from lorarepro.config import format_setting, seeds_of
from lorarepro.experiments.cli import parse_args
from lorarepro.experiments.lora_one.common import first_true, write_records
from lorarepro.metrics.subspace import sin_theta, top_singular_subspace
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import LinearTask, make_linear_task
from lorarepro.records import Stopwatch


def main() -> None:
    args = parse_args(__doc__)
    p = args.params
    torch.set_num_threads(p["threads"])
    d, r, r_star, steps = p["d"], p["r"], p["r_star"], p["steps"]
    seeds, alpha2 = seeds_of(p), p["alpha2"]
    stats = []
    with torch.no_grad(), Stopwatch() as sw:
        tasks, A0 = [], []
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            tasks.append(make_linear_task(d, d, torch.ones(r_star), p["samples_per_dim"] * d, generator=gen))
            A0.append(torch.randn(r, d, generator=gen, dtype=torch.float64))
        # Batch layout (seed, α²): the task is shared along α².
        task = LinearTask(*(torch.stack([getattr(t, k) for t in tasks])[:, None]
                            for k in ("sigma_hat", "delta_left", "delta_right")))
        A = torch.stack(A0)[:, None] * torch.tensor(alpha2, dtype=torch.float64).sqrt()[:, None, None]
        B = A.new_zeros(len(seeds), len(alpha2), d, r)
        svd = top_svd(task.g_nat, r)
        gap = task.spectral_init_gap(*spectral_init(task.g_nat, r, svd=svd))
        g_in = svd.Vh[..., :r_star, :].transpose(-2, -1)      # top-r* input-side subspace of G♮
        g_out = svd.U[..., :r_star]                            # top-r* output-side subspace of G♮
        dead = torch.zeros(A.shape[:2], dtype=torch.bool)
        for step in range(steps + 1):
            risk = task.risk(A, B)
            dead |= ~torch.isfinite(risk) | (risk > p["divergence_risk"])
            # A diverged run is frozen at zero so its overflow never reaches the batched linear algebra.
            A, B = (torch.where(dead[..., None, None], 0.0, X) for X in (A, B))
            angle = sin_theta(g_in, top_singular_subspace(A, r_star, side="right"))
            align = sin_theta(g_out, top_singular_subspace(B, r_star, side="left")) if step else torch.zeros_like(risk)
            stats.append([torch.where(dead, math.nan, x) for x in (risk, angle, align)])
            if step < steps:
                A, B = factor_step(A, B, *task.grads(A, B), p["lr"])
    risk, angle, align = (torch.stack(x, -1) for x in zip(*stats))
    for i, seed in enumerate(seeds):
        for j, a2 in enumerate(alpha2):
            trace = {"step": torch.arange(steps + 1).numpy(), "risk": risk[i, j].numpy(),
                     "angle": angle[i, j].numpy(), "alignment_B": align[i, j].numpy()}
            finite = torch.isfinite(risk[i, j])
            metrics = {
                "final_log_risk": math.log(risk[i, j, -1]) if finite[-1] else None,
                "min_log_risk": math.log(risk[i, j][finite].min()) if finite.any() else None,
                "min_angle": float(angle[i, j][finite].min()) if finite.any() else None,
                "final_angle": float(angle[i, j, -1]) if finite[-1] else None,
                "max_alignment_B": float(align[i, j, 1:][finite[1:]].max()) if finite[1:].any() else None,
                "thm33_lhs": float(gap[0][i, 0]), "thm33_rhs": float(gap[1][i, 0]),
                "thm33_ratio": float(gap[0][i, 0] / gap[1][i, 0]),
            }
            write_records(args.root, "fig2", "lora_init", format_setting({"d": d, "alpha2": a2}), seed, p,
                          params={"d": d, "r": r, "r_star": r_star, "alpha2": a2, "lr": p["lr"], "steps": steps,
                                  "samples_per_dim": p["samples_per_dim"]},
                          metrics=metrics, trace=trace, runtime=sw.runtime(seeds_in_job=len(seeds) * len(alpha2)),
                          diverged_at=first_true(~finite))


if __name__ == "__main__":
    main()
