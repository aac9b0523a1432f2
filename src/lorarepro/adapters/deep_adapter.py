"""Adapters whose update is a product of more than two factors: Deep LoRA and LoRA-SB.

PEFT's LoRA layer holds exactly two factors, so these live in a small module of their own:
`FactoredLinear` computes y = W₀x + scale·F_L⋯F_1·x, each factor with its own trainable flag and a
role ("inner" / "outer") that the optimizer maps to a learning rate.

- Deep LoRA, uncompressed (Yaras et al.; the authors' `MatrixFactorization`): F_1 (w×in), F_2..F_{L−1}
  (w×w), F_L (out×w), each ε-scaled orthogonal, w = max(out, in) ("full") or a given width.
- Deep LoRA, compressed (Sec. 3 / App. B): U·W̃_L⋯W̃_1·Vᵀ with W̃_l(0) = εI_r and the outer factors
  (V: in×r, U: out×r) computed (adapters/compression.py) from the gradient of the full-width network
  at init on a training batch; the outer factors train at the discrepant rate γη
  (optimizer `lr_scale: {outer: γ}`).
- LoRA-SB: U_r·R·V_rᵀ from the top-r SVD of −∇W, with U_r and V_r frozen and only R trained.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lorarepro.adapters import compression, matrix_inits
from lorarepro.adapters.gradient import working_precision


class FactoredLinear(nn.Module):
    """A frozen linear layer plus scale·F_L⋯F_1 (factors in the order they act on the input)."""

    def __init__(self, base: nn.Linear, factors: Sequence[torch.Tensor], *, trainable: Sequence[bool],
                 roles: Sequence[str], scale: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if factors[0].shape[1] != base.in_features or factors[-1].shape[0] != base.out_features:
            raise ValueError(f"factors {[tuple(f.shape) for f in factors]} do not map {base.in_features} "
                             f"to {base.out_features}")
        self.base_layer = base.requires_grad_(False)
        ref = working_precision(base.weight)  # half-precision models keep float32 factors, as PEFT does
        self.factors = nn.ParameterList(
            nn.Parameter(f.to(device=ref.device, dtype=ref.dtype).contiguous(), requires_grad=t)
            for f, t in zip(factors, trainable, strict=True))
        self.roles = tuple(roles)
        self.scale = scale
        self.dropout = nn.Dropout(dropout)

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    def delta_weight(self) -> torch.Tensor:
        """ΔW = scale·F_L⋯F_1 (out×in)."""
        product = self.factors[0]
        for factor in self.factors[1:]:
            product = factor @ product
        return self.scale * product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(x).to(self.factors[0].dtype)
        for factor in self.factors:
            h = F.linear(h, factor)
        return self.base_layer(x) + (self.scale * h).to(x.dtype)


def factored_layers(model: nn.Module) -> dict[str, FactoredLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, FactoredLinear)}


def attach(model: nn.Module, layers: Mapping[str, FactoredLinear]) -> nn.Module:
    """Put each FactoredLinear in place of the module of that name; freeze every other parameter."""
    model.requires_grad_(False)  # before attaching: the factors keep their own flags
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    return model


def deep_factors(out_features: int, in_features: int, *, depth: int, width: int | str, eps: float,
                 generator: torch.Generator, dtype: torch.dtype) -> list[torch.Tensor]:
    """ε-scaled (semi-)orthogonal factors F_1 (w×in), F_2..F_{L−1} (w×w), F_L (out×w), w = max(out, in)
    for "full" (the authors' full-width MatrixFactorization), else the given width."""
    w = max(out_features, in_features) if width == "full" else int(width)
    return compression.orthogonal_factors(in_features, out_features, w, depth, eps, generator=generator, dtype=dtype)


def compressed_factors(layer: FactoredLinear, grad: torch.Tensor, rank: int, eps: float) -> list[torch.Tensor]:
    """The compressed chain [V_{1,1}ᵀ, εI, …, εI, U_{L,1}] (inner width `rank`) of a full-width layer.

    `grad` is ∇ℓ with respect to the chain's square end factor (`square_end`). The invariance argument
    (U_l = W_l(0)V_l/ε_l orthonormal) needs the compression to start from a square orthogonal factor;
    the full-width chain (w = max(out, in)) has one at its input end when out < in (F_1, in×in) and at
    its output end otherwise (F_L, out×out), where the transposed chain ΔWᵀ = F_1ᵀ⋯F_Lᵀ is compressed.
    Started from the rectangular end, the compressed adapter misses part of the target's column space.
    """
    factors = [f.detach() for f in layer.factors]
    scales = [eps] * len(factors)
    end_to_end = layer.delta_weight().detach() / layer.scale
    if layer.base_layer.out_features < layer.base_layer.in_features:
        return compression.compress(factors[0], grad, end_to_end, rank=rank // 2, scales=scales).factors
    c = compression.compress(factors[-1].mT, grad.mT, end_to_end.mT, rank=rank // 2, scales=scales)
    return [c.left.mT.contiguous(), *(m.mT for m in reversed(c.inner)), c.right.contiguous()]


def square_end(layer: FactoredLinear) -> nn.Parameter:
    """The end factor of a full-width chain that is square (see `compressed_factors`)."""
    base = layer.base_layer
    return layer.factors[0] if base.out_features < base.in_features else layer.factors[-1]


def lora_sb_factors(neg_grad: torch.Tensor, rank: int, scale: float) -> list[torch.Tensor]:
    U, R, Vh = matrix_inits.lora_sb_init(neg_grad, rank, scale=scale)
    return [Vh, R, U]


def build_factored(model: nn.Module, targets: Mapping[str, nn.Linear], spec: Mapping[str, Any], *,
                   generator: torch.Generator,
                   gradients: Callable[[nn.Module, Mapping[str, nn.Parameter]], dict[str, torch.Tensor]]):
    """Attach the factored adapter that `spec["init"]` names (deep | lora_sb) to each target layer.

    `gradients(model, params)` returns ∇L with respect to the given parameters on the init batch.
    """
    init, options = spec["init"], dict(spec.get("init_options") or {})
    dropout = spec.get("dropout", 0.0)
    layers: dict[str, FactoredLinear] = {}
    if init == "lora_sb":
        grads = gradients(model, {n: m.weight for n, m in targets.items()})
        for name, base in targets.items():
            factors = lora_sb_factors(-grads[name], spec["r"], options.get("scale", 1.0))
            layers[name] = FactoredLinear(base, factors, trainable=[False, True, False],
                                          roles=["outer", "inner", "outer"], dropout=dropout)
        return attach(model, layers)
    if init != "deep":
        raise ValueError(f"unknown factored adapter {init!r}; allowed values are ['deep', 'lora_sb']")
    depth, eps = options.get("depth", 3), options.get("eps", 1e-3)
    compressed = options.get("compressed", False)
    if compressed and spec["r"] % 2:
        raise ValueError(f"compressed Deep LoRA needs an even rank (gradient rank r/2), got r={spec['r']}")
    width = "full" if compressed else options.get("width", "full")
    for name, base in targets.items():
        factors = deep_factors(base.out_features, base.in_features, depth=depth, width=width, eps=eps,
                               generator=generator, dtype=working_precision(base.weight).dtype)
        layers[name] = FactoredLinear(base, factors, trainable=[True] * depth, roles=["inner"] * depth,
                                      dropout=dropout)
    attach(model, layers)
    if not compressed:
        return model
    grads = gradients(model, {name: square_end(layer) for name, layer in layers.items()})
    small = {}
    for name, layer in layers.items():
        chain = compressed_factors(layer, grads[name], spec["r"], eps)
        small[name] = FactoredLinear(layer.base_layer, chain, trainable=[True] * len(chain),
                                     roles=["outer"] + ["inner"] * depth + ["outer"], dropout=dropout)
    return attach(model, small)
