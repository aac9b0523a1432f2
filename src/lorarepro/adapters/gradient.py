"""The full-weight gradient of chosen linear layers on a sample of training data.

Gradient-based inits (LoRA-One, LoRA-GA, Spectral, LoRA-SB, compressed Deep LoRA) start from
∇_W L(W₀) of every adapted layer. Only those weights get gradients while it is computed, so its
memory is one extra copy of the adapted weights, whatever the model's size.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn


def working_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors in float32 (SVDs and solves need it); float32/float64 as they are."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def matches(name: str, targets: str | Sequence[str]) -> bool:
    """PEFT's rule for `target_modules`: a regex on the full name, or a name that ends in `.<target>`."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return name in targets or any(name.endswith(f".{t}") for t in targets)


def target_linears(model: nn.Module, targets: str | Sequence[str]) -> dict[str, nn.Linear]:
    """The model's linear layers that `targets` selects, by module name; an error if there are none."""
    found = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and matches(name, targets)}
    if not found:
        raise ValueError(f"no linear layer matches target_modules={targets!r}")
    return found


@contextmanager
def only_these_require_grad(model: nn.Module, params: Iterable[nn.Parameter]):
    """Within the block, exactly `params` require gradients; afterwards every flag is as it was."""
    keep = {id(p) for p in params}
    before = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
            p.grad = None
        yield
    finally:
        for p, flag in before.items():
            p.requires_grad_(flag)
            p.grad = None


def weight_gradients(
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    batches: Sequence[Mapping],
    loss_fn: Callable[[nn.Module, Mapping], torch.Tensor],
    *,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """∇L with respect to each of `params` (e.g. the weights of the adapted layers), averaged over
    `batches`; detached (half precision raised to float32), zero for a parameter the loss does not reach.

    `train_mode` keeps dropout on, as LoRA-One's released code estimates it; the default (eval mode)
    makes the init a deterministic function of the sampled batch.
    """
    if not batches:
        raise ValueError("a gradient-based init needs at least one batch of training data")
    was_training = model.training
    model.train(train_mode)
    try:
        with only_these_require_grad(model, params.values()):
            for batch in batches:
                (loss_fn(model, batch) / len(batches)).backward()
            return {name: working_precision(torch.zeros_like(p) if p.grad is None else p.grad).detach().clone()
                    for name, p in params.items()}
    finally:
        model.train(was_training)
