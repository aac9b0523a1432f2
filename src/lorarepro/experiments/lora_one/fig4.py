"""Figure 4: LoRA-One vs LoRA-GA vs LoRA-SB under GD on the linear task, for one rank case (r, r*).

Δ = U diag(s) Vᵀ with s the first r* of the paper's spectrum, divided by s₁ when `normalize_delta`
(the spec's recommendation: with the raw spectrum GD at η = 0.5 diverges for LoRA-One and LoRA-GA).
  LoRA-One   Algorithm 1 on G♮ (top-r SVD, S/S₀, scale s), then GD on (A, B);
  LoRA-GA    eq. (91) from +∇W with stable γ; the base weight absorbs −B₀A₀, so GD fits Δ + B₀A₀;
  LoRA-SB    U_r, V_r of G♮ frozen, the r×r core R = diag(S_r)/scale trained by GD.
Seeds run as one batch; each (method, seed) gets a run record with its risk trace, the optimum
½Σ_{i>r}σᵢ² of a rank-r fit, and the final risk relative to it.
"""

from __future__ import annotations

import math

import torch

from lorarepro.adapters.matrix_inits import lora_ga_init, lora_one_init, lora_sb_init
from lorarepro.config import format_setting, seeds_of
from lorarepro.experiments.cli import parse_args
from lorarepro.experiments.lora_one.common import first_true, write_records
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import FrozenSubspaceTask, LinearTask, make_linear_task
from lorarepro.records import Stopwatch

METHODS = ("lora_one", "lora_ga", "lora_sb")


def delta_spectrum(p: dict) -> torch.Tensor:
    s = torch.tensor(p["spectrum"][:p["r_star"]], dtype=torch.float64)
    return s / s[0] if p["normalize_delta"] else s


def train(method: str, task: LinearTask, p: dict) -> torch.Tensor:
    """The risk after every GD step (steps + 1 values per seed)."""
    r, lr = p["r"], p["lr"]
    if method == "lora_sb":
        U, R, Vh = lora_sb_init(task.g_nat, r, scale=p["lora_sb_scale"])
        core = FrozenSubspaceTask(task, U, Vh)
        risks = []
        for _ in range(p["steps"] + 1):
            risks.append(core.risk(R))
            R = R - lr * core.grad(R)
        return torch.stack(risks, -1)
    if method == "lora_one":
        A, B = lora_one_init(task.g_nat, r, scale=p["lora_one_scale"], svd_method="full")
    else:
        A, B = lora_ga_init(-task.g_nat, r, gamma=p["lora_ga_gamma"])
        task = task.with_base_offset(B, A)
    risks = []
    for _ in range(p["steps"] + 1):
        risks.append(task.risk(A, B))
        A, B = factor_step(A, B, *task.grads(A, B), lr)
    return torch.stack(risks, -1)


def main() -> None:
    args = parse_args(__doc__)
    p = args.params
    torch.set_num_threads(p["threads"])
    seeds, d = seeds_of(p), p["d"]
    spectrum = delta_spectrum(p)
    floor = 0.5 * float((spectrum[p["r"]:] ** 2).sum())   # Eckart–Young: the best rank-r risk
    with torch.no_grad(), Stopwatch() as sw:
        tasks = [make_linear_task(d, d, spectrum, p["n_samples"], generator=torch.Generator().manual_seed(seed))
                 for seed in seeds]
        task = LinearTask(*(torch.stack([getattr(t, k) for t in tasks])
                            for k in ("sigma_hat", "delta_left", "delta_right")))
        risks = {method: train(method, task, p) for method in METHODS}
    setting = format_setting({"r": p["r"], "r_star": p["r_star"]})
    for method, risk in risks.items():
        for i, seed in enumerate(seeds):
            trace = {"step": list(range(p["steps"] + 1)), "risk": risk[i].numpy()}
            final = float(risk[i, -1])
            ok = math.isfinite(final)
            metrics = {"final_risk": final if ok else None, "min_risk": float(risk[i].nan_to_num(math.inf).min()),
                       "risk_floor": floor, "final_risk_over_floor": final / floor if ok and floor > 0 else None}
            write_records(args.root, "fig4", method, setting, seed, p,
                          params={k: p[k] for k in ("d", "r", "r_star", "n_samples", "lr", "steps", "normalize_delta",
                                                    "lora_one_scale", "lora_ga_gamma", "lora_sb_scale")}
                          | {"spectrum": spectrum.tolist()},
                          metrics=metrics, trace=trace, runtime=sw.runtime(seeds_in_job=len(seeds) * len(METHODS)),
                          diverged_at=first_true(~torch.isfinite(risk[i])))


if __name__ == "__main__":
    main()
