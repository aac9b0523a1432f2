"""Spectra and ranks of weight matrices and their updates."""

from __future__ import annotations

import torch


def numerical_rank(matrix: torch.Tensor, rtol: float = 1e-3) -> torch.Tensor:
    """Number of singular values above rtol·σ_max (the convention of Deep LoRA's Figure 7)."""
    s = torch.linalg.svdvals(matrix)
    return (s > rtol * s[..., :1]).sum(-1)


def effective_rank(matrix: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the normalised singular values (Roy & Vetterli)."""
    s = torch.linalg.svdvals(matrix)
    p = s / s.sum(-1, keepdim=True)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum(-1))
