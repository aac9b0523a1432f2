"""Proximal gradient descent with a nuclear-norm penalty, as a torch optimizer.

Full fine-tuning of NTK-LoRA's linearised model minimises L̂(δ) + λ Σ_l ‖δ_l‖_*; each step is
δ ← SVT_{ηλ}(δ − η∇L̂(δ)), one SVD per matrix (vectors and scalars take the plain gradient step).
"""

from __future__ import annotations

import torch

from lorarepro.adapters.gradient import working_precision
from lorarepro.optim.prox import svt


class NuclearProxSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float, nuclear: float = 0.0):
        if lr <= 0 or nuclear < 0:
            raise ValueError(f"need lr > 0 and nuclear >= 0, got lr={lr}, nuclear={nuclear}")
        super().__init__(params, {"lr": lr, "nuclear": nuclear})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            lr, tau = group["lr"], group["lr"] * group["nuclear"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-lr)
                if p.ndim == 2 and tau > 0:
                    p.copy_(svt(working_precision(p), tau).to(p.dtype))
        return loss
