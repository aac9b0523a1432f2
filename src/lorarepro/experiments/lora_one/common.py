"""What the LoRA-One scripts share: run records under results/lora_one, first-crossing steps of a trace."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from lorarepro.records import run_dir, write_run

PAPER = "lora_one"


def write_records(root: str, experiment: str, method: str, setting: str, seed: int, p: Mapping[str, Any], *,
                  params: Mapping[str, Any], metrics: Mapping[str, Any], runtime: Mapping[str, Any],
                  trace: Mapping[str, Any] | None = None, diverged_at: int | None = None) -> None:
    write_run(run_dir(root, PAPER, experiment, method, setting, seed), paper=PAPER, experiment=experiment,
              method=method, seed=seed, scale=p["scale"], params=params, metrics=metrics, runtime=runtime,
              trace=trace, diverged_at=diverged_at)


def first_true(mask) -> int | None:
    """Index of the first True of a 1-D mask (a step, when the trace has one row per step), or None."""
    mask = np.asarray(mask.numpy() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
    return int(np.argmax(mask)) if mask.any() else None


def steps_to(values, threshold: float) -> int | None:
    """The first step at which a per-step trace is at or below `threshold` (None if it never gets there)."""
    values = np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values, dtype=float)
    return first_true(values <= threshold)
