"""Preconditioned steps on LoRA factors (ScaledGD-style), shared by the synthetic experiments and by
the fine-tuning optimizers (P-LoRA, LoRA-One-P, NoRA+).

In the torch orientation ΔW = B·A (B out×r, A r×in) the preconditioned gradients are
    ∇_A ← (BᵀB + λI)⁻¹ ∇_A          ∇_B ← ∇_B (AAᵀ + λI)⁻¹
(LoRA-One eq. 9 / Algorithm 2; the "Riemannian preconditioned LoRA" of Zhang & Pilanci). With
λ = 0 the inverse is a pseudo-inverse (Prec-GD for over-ranked adapters, LoRA-One Thm C.21).
NoRA+ additionally divides each preconditioner by its Frobenius norm (`normalize=True`).
"""

from __future__ import annotations

import torch


def _inverse(gram: torch.Tensor, lam: float, normalize: bool) -> torch.Tensor:
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    inv = torch.linalg.pinv(gram, hermitian=True) if lam == 0 else torch.linalg.inv(gram + lam * eye)
    if normalize:
        inv = inv / torch.linalg.matrix_norm(inv).clamp_min(torch.finfo(inv.dtype).tiny)[..., None, None]
    return inv


def precondition_A(grad_A: torch.Tensor, B: torch.Tensor, lam: float, normalize: bool = False) -> torch.Tensor:
    """(BᵀB + λI)⁻¹ ∇_A: rescales the input-side factor's gradient by the output side's Gram matrix."""
    return _inverse(B.transpose(-2, -1) @ B, lam, normalize) @ grad_A


def precondition_B(grad_B: torch.Tensor, A: torch.Tensor, lam: float, normalize: bool = False) -> torch.Tensor:
    """∇_B (AAᵀ + λI)⁻¹."""
    return grad_B @ _inverse(A @ A.transpose(-2, -1), lam, normalize)


def factor_step(A: torch.Tensor, B: torch.Tensor, grad_A: torch.Tensor, grad_B: torch.Tensor, lr: float, *,
                preconditioned: bool = False, lam: float = 0.0, normalize: bool = False):
    """One simultaneous (Jacobi) GD or preconditioned-GD step on both factors; returns (A, B)."""
    if preconditioned:
        grad_A, grad_B = precondition_A(grad_A, B, lam, normalize), precondition_B(grad_B, A, lam, normalize)
    return A - lr * grad_A, B - lr * grad_B
