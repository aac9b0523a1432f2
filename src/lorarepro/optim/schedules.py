"""Learning-rate schedules: linear warmup, then constant, linear decay to 0, or cosine decay to 0
(LoRA-One's paper uses cosine with 3% warmup, its code linear with 100 warmup steps; Deep LoRA a constant rate)."""

from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "linear", "cosine")


def warmup_steps(warmup: int | float, steps: int) -> int:
    """`warmup` as a step count, or as a fraction of the run when below 1."""
    return int(round(warmup * steps)) if 0 < warmup < 1 else int(warmup)


def lr_schedule(optimizer: torch.optim.Optimizer, name: str, steps: int, warmup: int | float = 0):
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; allowed values are {list(SCHEDULES)}")
    n_warm = warmup_steps(warmup, steps)

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - n_warm) / max(1, steps - n_warm))
        return 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
