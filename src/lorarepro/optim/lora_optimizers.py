"""Optimizers for fine-tuning adapters, built from an optimizer block of the run parameters:

    {name: adamw, lr: 1e-3, weight_decay: 0.0, betas: [0.9, 0.999], eps: 1e-8}
    {name: preconditioned_adamw, lr: 3e-4, lam: 1e-6, normalize: true}    # NoRA+ / LoRA-P (NoRA code)
    {name: preconditioned_adamw, lr: 2e-5, lam: 1e-6}                     # LoRA-One-P (Algorithm 2)
    {name: loraplus, lr: 1e-4, loraplus_ratio: 16}                         # LoRA+ (PEFT's optimizer)
    {name: adamw, lr: 1e-2, lr_scale: {outer: 0.01}}                       # compressed Deep LoRA
    {name: sgd, lr: 1e-2, momentum: 0.0}  /  {name: nuclear_prox_sgd, lr: .., nuclear: λ}

`lr_scale` multiplies the learning rate of a factored adapter's factors by role; the rest of the
trainable parameters (LoRA factors, a head) use `lr`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lorarepro.adapters.deep_adapter import factored_layers
from lorarepro.adapters.gradient import working_precision
from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.optim.preconditioned import precondition_A, precondition_B
from lorarepro.optim.proximal import NuclearProxSGD

OPTIMIZERS = ("adamw", "sgd", "preconditioned_adamw", "loraplus", "nuclear_prox_sgd")


def lora_pairs(model: nn.Module) -> list[tuple[nn.Parameter, nn.Parameter]]:
    """(lora_A, lora_B) weights of every adapter of every LoRA layer."""
    pairs = []
    for layer in lora_layers(model).values():
        for adapter in layer.lora_A:
            pairs.append((layer.lora_A[adapter].weight, layer.lora_B[adapter].weight))
    return pairs


class PreconditionedAdamW(torch.optim.AdamW):
    """AdamW fed with preconditioned LoRA factor gradients (P-LoRA, LoRA-One-P, NoRA+):

        ∇_A ← (BᵀB + λI)⁻¹ ∇_A,    ∇_B ← ∇_B (AAᵀ + λI)⁻¹

    both from the factors before the step (LoRA-One Algorithm 2; NoRA's `preconditioning`), each
    inverse divided by its Frobenius norm when `normalize` (NoRA+). The training loop calls
    `precondition_grads()` before gradient clipping, as NoRA's trainer does; `step()` preconditions
    itself if nobody did. The authors' deleted `AdamWr` instead updated A first and preconditioned B
    with the new A, without Adam's bias correction; this follows the papers' algorithms.
    """

    def __init__(self, params, pairs: Iterable[tuple[nn.Parameter, nn.Parameter]], *, lam: float = 1e-6,
                 normalize: bool = False, **adamw):
        super().__init__(params, **adamw)
        self.pairs = list(pairs)
        if not self.pairs:
            raise ValueError("a preconditioned optimizer needs LoRA (lora_A, lora_B) pairs; the model has none")
        self.lam, self.normalize = lam, normalize
        self._preconditioned = False

    @torch.no_grad()
    def precondition_grads(self) -> None:
        for A, B in self.pairs:
            if A.grad is None or B.grad is None:
                continue
            a, b = working_precision(A.detach()), working_precision(B.detach())
            grad_A = precondition_A(working_precision(A.grad), b, self.lam, self.normalize)
            grad_B = precondition_B(working_precision(B.grad), a, self.lam, self.normalize)
            A.grad.copy_(grad_A)
            B.grad.copy_(grad_B)
        self._preconditioned = True

    def step(self, closure=None):
        if not self._preconditioned:
            self.precondition_grads()
        self._preconditioned = False
        return super().step(closure)


def param_groups(model: nn.Module, lr: float, lr_scale: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The trainable parameters in groups: one per factor role with a scaled rate, the rest at `lr`."""
    lr_scale = dict(lr_scale or {})
    by_role: dict[str, list[nn.Parameter]] = {}
    claimed: set[int] = set()
    for layer in factored_layers(model).values():
        for param, role in zip(layer.factors, layer.roles):
            if param.requires_grad and role in lr_scale:
                by_role.setdefault(role, []).append(param)
                claimed.add(id(param))
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    groups = [{"params": rest, "lr": lr}] if rest else []
    groups += [{"params": params, "lr": lr * lr_scale[role], "role": role} for role, params in by_role.items()]
    return groups


def build_optimizer(model: nn.Module, spec: Mapping[str, Any]) -> torch.optim.Optimizer:
    name, lr = spec.get("name", "adamw"), float(spec["lr"])
    weight_decay = float(spec.get("weight_decay", 0.0))
    adam = {"lr": lr, "betas": tuple(spec.get("betas", (0.9, 0.999))), "eps": float(spec.get("eps", 1e-8)),
            "weight_decay": weight_decay}
    if name == "loraplus":
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(model, torch.optim.AdamW, loraplus_lr_ratio=float(spec.get("loraplus_ratio", 16)),
                                         loraplus_weight_decay=weight_decay, **adam)
    groups = param_groups(model, lr, spec.get("lr_scale"))
    if name == "adamw":
        return torch.optim.AdamW(groups, **adam)
    if name == "preconditioned_adamw":
        return PreconditionedAdamW(groups, lora_pairs(model), lam=float(spec.get("lam", 1e-6)),
                                   normalize=bool(spec.get("normalize", False)), **adam)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(spec.get("momentum", 0.0)), weight_decay=weight_decay)
    if name == "nuclear_prox_sgd":
        return NuclearProxSGD(groups, lr=lr, nuclear=float(spec.get("nuclear", 0.0)))
    raise ValueError(f"unknown optimizer {name!r}; allowed values are {list(OPTIMIZERS)}")
