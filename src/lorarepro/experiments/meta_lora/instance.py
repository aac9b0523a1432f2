"""One batch of trials of the multi-task model, as a model block's settings define it: the retraining
and the fine-tuning jobs both rebuild it from the seeds, so they see the same A*, U_t* and c*."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from lorarepro.problems import multitask as mt

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def dtype_of(settings: Mapping[str, Any]) -> torch.dtype:
    return DTYPES[settings["dtype"]]


def truth(settings: Mapping[str, Any], model: str, p: Mapping[str, int], seeds: Sequence[int]) -> mt.GroundTruth:
    """A*, U_t*, (c*) per trial; with `shared_truth` (the authors' linear code) every trial gets the
    draw of the first seed and only the data and initialisations vary."""
    truth_seeds = [seeds[0]] * len(seeds) if settings.get("shared_truth", False) else list(seeds)
    return mt.sample_ground_truth(truth_seeds, p["T"], p["d"], p["k"], shallow=model == "shallow",
                                  symmetric_A=settings.get("symmetric_A", False), dtype=dtype_of(settings))


def default_linear_init(seeds: Sequence[int], shape: Sequence[int], stream: int, *extra: int,
                        dtype=torch.float64) -> torch.Tensor:
    """PyTorch's nn.Linear weight init, U(±1/√fan_in), of an out×in weight of `shape`' last two dims."""
    return mt.rand_uniform(seeds, stream, shape, shape[-1] ** -0.5, *extra, dtype=dtype)
