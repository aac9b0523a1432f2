"""Figure 4: LoRA-One vs LoRA-GA vs LoRA-SB on the linear task, under- and over-ranked, plain GD.

Δ = U diag(s) Vᵀ with the paper's spectrum, divided by σ₁ when `normalize_delta` (the spec's
recommendation: with the raw spectrum up to 40, GD at η = 0.5 diverges for all but LoRA-SB).
LoRA-GA subtracts its initial product from the base weight, so it trains towards Δ + B₀A₀.
"""

from __future__ import annotations

import numpy as np
import torch

from lorarepro.adapters.matrix_inits import lora_ga_init, lora_one_init, lora_sb_init
from lorarepro.config import format_setting
from lorarepro.experiments.cli import parse_args
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import LinearTask, core_grad, make_linear_task
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run


def train(task: LinearTask, method: str, p: dict, r: int) -> np.ndarray:
    """Risk ½‖ΔW_t − Δ‖²_F of one method over p['steps'] GD steps."""
    risks = []
    if method == "lora_sb":
        U, R, Vh = lora_sb_init(task.g_nat, r, scale=p["sb_scale"])
        for _ in range(p["steps"] + 1):
            risks.append(0.5 * torch.linalg.matrix_norm(U @ R @ Vh - task.delta) ** 2)
            R = R - p["lr"] * core_grad(task, U, R, Vh)
        return torch.stack(risks).numpy()
    if method == "lora_one":
        A, B = lora_one_init(task.g_nat, r, scale=p["one_scale"], svd_method="full")
        offset = torch.zeros_like(task.delta)
    elif method == "lora_ga":
        A, B = lora_ga_init(-task.g_nat, r, gamma=p["ga_gamma"])
        offset = B @ A  # W♮ ← W♮ − B₀A₀: the product must now reach Δ + B₀A₀
    else:
        raise ValueError(f"unknown method {method!r}")
    shifted = LinearTask(task.sigma_hat, task.delta + offset)
    for _ in range(p["steps"] + 1):
        risks.append(shifted.risk(A, B))
        A, B = factor_step(A, B, *shifted.grads(A, B), p["lr"])
    return torch.stack(risks).numpy()


def main() -> None:
    args = parse_args(__doc__)
    p = args.params
    case = p["cases"][p["case"]]
    spectrum = torch.tensor(p["spectrum"][: case["r_star"]], dtype=torch.float64)
    if p["normalize_delta"]:
        spectrum = spectrum / spectrum[0]
    floor = 0.5 * float((spectrum[case["r"]:] ** 2).sum())
    for seed in p["seed_list"]:
        task = make_linear_task(p["d"], p["d"], spectrum, p["samples"], generator=torch.Generator().manual_seed(seed))
        for method in p["methods"]:
            with Stopwatch() as sw:
                risk = train(task, method, p, case["r"])
            diverged = first_nonfinite(risk)
            final = float(risk[-1]) if diverged is None else None
            metrics = {"final_risk": final, "floor": floor,
                       "final_over_floor": final / floor if final is not None and floor > 0 else None}
            setting = format_setting({"case": p["case"]})
            write_run(run_dir(args.root, "lora_one", "fig4", method, setting, seed), paper="lora_one",
                      experiment="fig4", method=method, seed=seed, scale=p["scale"],
                      params={"case": p["case"], **case, **{k: p[k] for k in ("d", "samples", "lr", "steps",
                              "normalize_delta", "ga_gamma", "sb_scale", "one_scale")}},
                      metrics=metrics, runtime=sw.runtime(), trace={"step": np.arange(len(risk)), "risk": risk},
                      diverged_at=diverged)


if __name__ == "__main__":
    main()
