"""Figure 2: GD from LoRA-init on the linear task for every init scale α², at one dimension d.

All α² values and seeds run as one batch (leading tensor dims); each (α², seed) pair gets its own
run record with the risk and principal-angle traces.
"""

from __future__ import annotations

import torch

from lorarepro.adapters.matrix_inits import gaussian_init, top_svd
from lorarepro.config import format_setting
from lorarepro.experiments.cli import parse_args
from lorarepro.metrics.subspace import sin_theta
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import LinearTask, make_linear_task
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run


def main() -> None:
    args = parse_args(__doc__)
    p = args.params
    d, r, r_star = p["d"], p["r"], p["r_star"]
    alphas = torch.tensor(p["alpha2"], dtype=torch.float64).sqrt()
    seeds = p["seed_list"]
    with Stopwatch() as sw:
        tasks = [make_linear_task(d, d, torch.ones(r_star), p["samples_per_dim"] * d,
                                  generator=torch.Generator().manual_seed(seed)) for seed in seeds]
        # Batch layout: (seed, alpha²).
        task = LinearTask(torch.stack([t.sigma_hat for t in tasks])[:, None], torch.stack([t.delta for t in tasks])[:, None])
        A = torch.stack([gaussian_init(d, d, r, 1.0, generator=torch.Generator().manual_seed(10_000 + s))[0]
                         for s in seeds])[:, None] * alphas[None, :, None, None]
        B = torch.zeros(len(seeds), len(alphas), d, r, dtype=torch.float64)
        svd_g = top_svd(task.g_nat, r_star)
        risk, angle, align = [], [], []
        with torch.no_grad():
            for step in range(p["steps"] + 1):
                risk.append(task.risk(A, B))
                # A diverging run (d = 1000, α² = 1) is recorded as such; its angles are meaningless.
                A_, B_ = torch.nan_to_num(A, 0.0, 0.0, 0.0), torch.nan_to_num(B, 0.0, 0.0, 0.0)
                angle.append(sin_theta(svd_g.Vh.transpose(-2, -1), top_svd(A_, r_star).Vh.transpose(-2, -1)))
                align.append(sin_theta(svd_g.U, top_svd(B_, r_star).U) if step > 0 else torch.zeros_like(risk[-1]))
                if step < p["steps"]:
                    A, B = factor_step(A, B, *task.grads(A, B), p["lr"])
    risk, angle, align = (torch.stack(x, -1) for x in (risk, angle, align))
    steps = torch.arange(p["steps"] + 1)
    for i, seed in enumerate(seeds):
        for j, alpha2 in enumerate(p["alpha2"]):
            trace = {"step": steps.numpy(), "risk": risk[i, j].numpy(), "angle": angle[i, j].numpy(),
                     "alignment_B": align[i, j].numpy()}
            diverged = first_nonfinite(trace["risk"])
            finite = torch.isfinite(risk[i, j])
            log_risk = torch.log(risk[i, j][finite])
            metrics = {
                "final_log_risk": float(torch.log(risk[i, j, -1])) if diverged is None else None,
                "min_log_risk": float(log_risk.min()) if finite.any() else None,
                "min_angle": float(angle[i, j][finite].min()) if diverged is None else None,
                "max_alignment_B": float(align[i, j, 1:][finite[1:]].max()) if diverged is None else None,
            }
            setting = format_setting({"d": d, "alpha2": alpha2})
            write_run(run_dir(args.root, "lora_one", "fig2", "lora_init", setting, seed), paper="lora_one",
                      experiment="fig2", method="lora_init", seed=seed, scale=p["scale"],
                      params={k: p[k] for k in ("d", "r", "r_star", "lr", "steps", "samples_per_dim")} | {"alpha2": alpha2},
                      metrics=metrics, runtime=sw.runtime(seeds_in_job=len(seeds) * len(alphas)), trace=trace,
                      diverged_at=diverged)


if __name__ == "__main__":
    main()
