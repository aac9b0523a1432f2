"""Checkpoints of a fine-tuning run, so that a killed job resumes where it stopped.

One file holds what a resumed run needs to continue exactly as an uninterrupted one: the trainable
parameters and any base weight the init moved (the frozen rest is rebuilt from the pretrained model),
the optimizer and schedule states, the batch sampler, the torch RNG states (dropout) and the trace so
far. It is written atomically and read with `torch.load(weights_only=True)`: tensors and plain
containers only, no pickled objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from lorarepro.io import atomic_path

FILE = "checkpoint.pt"


def save_checkpoint(folder: str | os.PathLike, *, step: int, model: nn.Module, extra_params: Iterable[str],
                    optimizer, scheduler, sampler, trace: list[dict[str, Any]]) -> Path:
    keep = set(extra_params)
    params = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad or n in keep}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {"step": step, "params": params, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "rng": rng,
             "trace": [{k: (float(v) if isinstance(v, float) else v) for k, v in row.items()} for row in trace]}
    path = Path(folder) / FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(folder: str | os.PathLike, *, model: nn.Module, optimizer, scheduler, sampler):
    """Restore a run from `folder`; returns (step, trace) or (0, []) when there is no checkpoint."""
    path = Path(folder) / FILE
    if not path.exists():
        return 0, []
    state = torch.load(path, weights_only=True, map_location="cpu")
    with torch.no_grad():
        for name, value in state["params"].items():
            model.get_parameter(name).copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), list(state["trace"])
