"""Spectra and ranks of weight matrices and their updates."""

from __future__ import annotations

import torch


def numerical_rank(matrix: torch.Tensor, rtol: float = 1e-3) -> torch.Tensor:
    """Number of singular values above rtol·σ_max (the convention of Deep LoRA's Figure 7)."""
    s = torch.linalg.svdvals(matrix)
    return (s > rtol * s[..., :1]).sum(-1)


def matrix_rank(matrix: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    """Number of singular values above both `atol` and NumPy's default tolerance max(m, n)·σ_max·ε of the
    matrix's dtype (`np.linalg.matrix_rank`); Deep LoRA's Figure 7 counts with atol = 1e-8."""
    s = torch.linalg.svdvals(matrix)
    eps = torch.finfo(matrix.dtype).eps
    return ((s > atol) & (s > max(matrix.shape[-2:]) * eps * s[..., :1])).sum(-1)


def effective_rank(matrix: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the normalised singular values (Roy & Vetterli)."""
    s = torch.linalg.svdvals(matrix)
    p = s / s.sum(-1, keepdim=True)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum(-1))


def tail_energy(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """Σ_{i>rank} σ_i²: the squared Frobenius distance to the nearest matrix of rank ≤ `rank` (Eckart–Young)."""
    s = torch.linalg.svdvals(matrix)
    return s[..., rank:].pow(2).sum(-1)


def most_changed_singular_values(before: torch.Tensor, after: torch.Tensor, k: int,
                                 relative: bool = False) -> torch.Tensor:
    """Indices (0 = largest) of the k singular values that moved most from `before` to `after`,
    comparing σ_i with σ_i in descending order (NoRA's Figure 2); `relative` divides by σ_i(before)."""
    s0, s1 = torch.linalg.svdvals(before), torch.linalg.svdvals(after)
    change = (s1 - s0).abs()
    if relative:
        change = change / s0.clamp_min(torch.finfo(s0.dtype).tiny)
    return change.topk(min(k, change.shape[-1]), dim=-1).indices
