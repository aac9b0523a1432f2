"""Small bias-free ReLU networks held as plain weight lists (out×in each, torch orientation).

The LoRA-One / PiSSA MNIST toy is Linear(8→128) → ReLU → Linear(128→5), no biases. Keeping the
weights as tensors rather than a Module lets one forward pass evaluate many weight sets at once
(leading batch dimensions: the points of a loss landscape) and lets LoRA act on them as W + s·BA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def init_mlp(sizes: list[int], *, generator: torch.Generator, dtype=torch.float32) -> list[torch.Tensor]:
    """Weights W_l ~ U(−1/√in, 1/√in), torch.nn.Linear's default (kaiming_uniform with a = √5)."""
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = fan_in ** -0.5
        weights.append((torch.rand(fan_out, fan_in, generator=generator, dtype=dtype) * 2 - 1) * bound)
    return weights


def mlp_logits(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """x (n×in) through ReLU layers with the given weights (each …×out×in); returns …×n×out."""
    h = x
    for i, W in enumerate(weights):
        h = h @ W.transpose(-2, -1)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


def mlp_loss(x: torch.Tensor, labels: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the n examples, one value per weight set (shape of the batch dims)."""
    logits = mlp_logits(x, weights)
    log_probs = F.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, labels.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)


def mlp_accuracy(x: torch.Tensor, labels: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    return (mlp_logits(x, weights).argmax(-1) == labels).to(x.dtype).mean(-1)
