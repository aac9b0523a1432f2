"""One retraining step of Meta-LoRA (LoRA-ML, the paper's Algorithm 1 "Meta-Adapter Training").

For each task t in turn, the gradient of its batch's loss with respect to (W, θ_t) is taken; θ_t is
updated at once, while W's gradients add up over the tasks and W is updated once with their sum.
`mode="round_robin"` is the authors' released code instead: after every task's batch, one optimizer
step on all parameters (W and θ_t alike).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

MODES = ("paper", "round_robin")


def meta_step(model: nn.Module, task_batches: Mapping[str, Sequence], loss_fn: Callable[[nn.Module, Sequence], torch.Tensor],
              adapter_optimizer: torch.optim.Optimizer, base_optimizer: torch.optim.Optimizer,
              mode: str = "paper") -> dict[str, float]:
    """One pass over the tasks' batches (`{adapter name: examples}`); returns each task's loss."""
    if mode not in MODES:
        raise ValueError(f"unknown Meta-LoRA mode {mode!r}; allowed values are {list(MODES)}")
    losses = {}
    base_optimizer.zero_grad(set_to_none=True)
    for name, examples in task_batches.items():
        model.set_adapter(name)
        adapter_optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, examples)
        loss.backward()
        adapter_optimizer.step()
        if mode == "round_robin":
            base_optimizer.step()
            base_optimizer.zero_grad(set_to_none=True)
        losses[name] = loss.item()
    if mode == "paper":
        base_optimizer.step()
        base_optimizer.zero_grad(set_to_none=True)
    return losses
