"""One retraining step of Meta-LoRA (LoRA-ML, the paper's Algorithm 1 "Meta-Adapter Training").

For each task t in turn, the gradient of its batch's loss with respect to (W, θ_t) is taken; θ_t is
updated at once, while W's gradients add up over the tasks and W is updated once with their sum.
`mode="round_robin"` is the authors' released code instead: after every task's batch, one optimizer
step on all parameters (W and θ_t alike).

Standard retraining (SR) is the same step without adapters (`adapter_optimizer=None`): W takes one
step on the sum of the tasks' gradients, so the two methods share the base's update rule.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

MODES = ("paper", "round_robin")


def meta_step(model: nn.Module, task_batches: Mapping[str, Sequence], loss_fn: Callable[[nn.Module, Sequence], torch.Tensor],
              adapter_optimizer: torch.optim.Optimizer | None, base_optimizer: torch.optim.Optimizer,
              mode: str = "paper") -> dict[str, float]:
    """One pass over the tasks' batches (`{adapter name: examples}`); returns each task's loss.
    Without `adapter_optimizer` the model has no adapters (SR) and the names only label the tasks."""
    if mode not in MODES:
        raise ValueError(f"unknown Meta-LoRA mode {mode!r}; allowed values are {list(MODES)}")
    losses = {}
    base_optimizer.zero_grad(set_to_none=True)
    for name, examples in task_batches.items():
        if adapter_optimizer is not None:
            model.set_adapter(name)
            adapter_optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, examples)
        loss.backward()
        if adapter_optimizer is not None:
            adapter_optimizer.step()
        if mode == "round_robin":
            base_optimizer.step()
            base_optimizer.zero_grad(set_to_none=True)
        losses[name] = loss.item()
    if mode == "paper":
        base_optimizer.step()
        base_optimizer.zero_grad(set_to_none=True)
    return losses
