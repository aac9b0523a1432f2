"""Proximal operators: singular value thresholding, the prox of the nuclear norm."""

from __future__ import annotations

import torch
from torch import Tensor


def svt(matrix: Tensor, tau: float | Tensor) -> Tensor:
    """argmin_X ½‖X − M‖_F² + τ‖X‖_* = U diag(max(σ − τ, 0)) Vᵀ (batched over leading dimensions)."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return (u * (s - tau).clamp_min(0).unsqueeze(-2)) @ vh


def nuclear_norm(matrix: Tensor) -> Tensor:
    """Σ σ_i(M) (batched over leading dimensions)."""
    return torch.linalg.svdvals(matrix).sum(-1)
