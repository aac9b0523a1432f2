"""Compressed deep factorizations (Yaras et al., "Compressible dynamics in deep overparameterized low-rank
learning and adaptation", §2.3 and §3, and the Deep LoRA adapter of §4).

A depth-L factorization W_L⋯W_1 started from W_l(0) = ε_l·(orthogonal) and trained by gradient descent on a
loss whose gradient has rank ≤ h only ever changes inside 2h-dimensional subspaces (Theorem 2.1). One
gradient of the first factor at initialisation reveals them, so the wide factorization can be replaced by

    f_C = U_{L,1} · W̃_L ⋯ W̃_1 · V_{1,1}ᵀ,   W̃_l(0) = ε_l·I_{2h},   U_{L,1} ∈ R^{d_out×2h}, V_{1,1} ∈ R^{d_in×2h},

which follows the wide trajectory to within (d − 2h)·∏ε_l² (Proposition 2.2) at a fraction of the cost.
The outer factors are frozen for matrix factorization (problem (9)) and trained at a "discrepant" step γη
under an observation mask (problem (11)), and in Deep LoRA.

Everything here is a function of matrices only (a first factor, its gradient, the end-to-end product), so
the same code compresses a synthetic factorization and an adapter on a pretrained weight. Every function
accepts leading batch dimensions (independent trials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


def haar_orthogonal(n: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """An n×n orthogonal matrix drawn from the Haar measure (QR of a Gaussian, signs fixed by diag(R)).

    Drawn on the CPU and then moved, so a seed gives the same matrix on every device.
    """
    gauss = torch.randn(n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(device)


def orthogonal_factors(d_in: int, d_out: int, width: int, depth: int, scale: float | Sequence[float], *,
                       generator: torch.Generator, dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> list[torch.Tensor]:
    """Initialisation (3) of a depth-L factorization W_L⋯W_1 (W_1 first in the list).

    W_1 is width×d_in, the middle factors width×width, W_L is d_out×width; each is ε_l times the leading
    block of its own Haar orthogonal matrix of the larger side (the authors' recipe for non-square shapes).
    width = d gives the full-width factorization, a small width the narrow random baseline.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    scales = _per_layer(scale, depth)
    shapes = [(d_out, d_in)] if depth == 1 else (
        [(width, d_in)] + [(width, width)] * (depth - 2) + [(d_out, width)])
    return [eps * haar_orthogonal(max(m, n), generator=generator, dtype=dtype, device=device)[:m, :n]
            for (m, n), eps in zip(shapes, scales)]


def narrow_factors(d_in: int, d_out: int, rank: int, depth: int, scale: float | Sequence[float], *,
                   generator: torch.Generator, dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
    """The baseline of the paper's Figure 10: a randomly initialised factorization as narrow as the compressed
    one (width 2·rank), with the same orthogonal init at scale ε."""
    return orthogonal_factors(d_in, d_out, 2 * rank, depth, scale, generator=generator, dtype=dtype, device=device)


def invariant_complement(grad_first: torch.Tensor, first: torch.Tensor, rank: int, scale: float) -> torch.Tensor:
    """V_{1,1}: an orthonormal basis (d_in × 2·rank) of S⊥, where S = N(G) ∩ N(Gᵀ W_1(0)) is the subspace the
    first factor never changes along, G = ∇_{W_1}ℓ at initialisation and W_1(0) = ε·(orthogonal).

    With G replaced by its best rank-h approximation (h = rank), S⊥ = N(G)⊥ + N(GᵀW_1(0))⊥
    = span(top-h right singular vectors of G) + W_1(0)ᵀ·span(top-h left singular vectors of G)/ε, the
    explicit form of the null-space intersection in the authors' code, at the cost of one SVD of G.
    """
    u, _, vh = torch.linalg.svd(grad_first, full_matrices=False)
    spanning = torch.cat([vh[..., :rank, :].mT, first.mT @ u[..., :, :rank] / scale], dim=-1)
    basis, _ = torch.linalg.qr(spanning)
    return basis


@dataclass
class Compressed:
    """f_C = left · inner[L−1] ⋯ inner[0] · rightᵀ; `factors` lists it as a chain, first factor first."""

    right: torch.Tensor  # V_{1,1}, (…, d_in, 2h)
    inner: list[torch.Tensor]  # W̃_l(0) = ε_l·I_{2h}, (…, 2h, 2h)
    left: torch.Tensor  # U_{L,1}, (…, d_out, 2h)

    @property
    def factors(self) -> list[torch.Tensor]:
        """[V_{1,1}ᵀ, W̃_1, …, W̃_L, U_{L,1}]: a depth-(L+2) chain with the same end-to-end product."""
        return [self.right.mT.contiguous(), *self.inner, self.left]


def compress(first: torch.Tensor, grad_first: torch.Tensor, end_to_end: torch.Tensor, *, rank: int,
             scales: Sequence[float]) -> Compressed:
    """Compress a depth-L factorization at initialisation to width 2·rank (problem (9)).

    first: W_1(0) (d × d_in, ε_1 times an orthogonal matrix); grad_first: ∇_{W_1}ℓ at initialisation;
    end_to_end: W_{L:1}(0) (d_out × d_in); scales: (ε_1, …, ε_L), one per layer.
    U_{L,1} = W_{L:1}(0)·V_{1,1}/∏ε_l follows from U_l = W_l(0)V_l/ε_l and V_{l+1} = U_l.
    """
    scales = _per_layer(scales, len(scales))
    right = invariant_complement(grad_first, first, rank, scales[0])
    left = end_to_end @ right / math.prod(scales)
    eye = torch.eye(2 * rank, dtype=right.dtype, device=right.device)
    inner = [(eps * eye).expand(*right.shape[:-2], 2 * rank, 2 * rank).clone() for eps in scales]
    return Compressed(right=right, inner=inner, left=left)


def discrepant_steps(step: float, gamma: float, depth: int) -> list[float]:
    """Step sizes for `Compressed.factors`: η on the L inner factors, γη on the outer V_{1,1}ᵀ and U_{L,1}.

    γ = 0 freezes the subspaces (problem (9), exact for factorization); a small γ > 0 lets them drift toward
    the subspaces a mask hides at initialisation (problem (11)).
    """
    return [gamma * step] + [step] * depth + [gamma * step]


def _per_layer(scale: float | Sequence[float], depth: int) -> list[float]:
    scales = [float(scale)] * depth if not isinstance(scale, Sequence) else [float(s) for s in scale]
    if len(scales) != depth or any(s <= 0 for s in scales):
        raise ValueError(f"need {depth} positive initialisation scales, got {scale!r}")
    return scales
