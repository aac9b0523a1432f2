"""Principal angles between subspaces, in the forms the papers use (all batched over leading dims)."""

from __future__ import annotations

import torch


def orthonormal_basis(matrix: torch.Tensor, rank: int | None = None) -> torch.Tensor:
    """Orthonormal basis of the column space (the top-`rank` left singular vectors if rank is given)."""
    if rank is None:
        q, _ = torch.linalg.qr(matrix)
        return q
    u, _, _ = torch.linalg.svd(matrix, full_matrices=False)
    return u[..., :rank]


def top_singular_subspace(matrix: torch.Tensor, k: int, side: str = "left") -> torch.Tensor:
    """Orthonormal basis of the top-k left (n×k) or right (m×k) singular subspace of an n×m matrix with
    one small side, from the eigendecomposition of its small Gram matrix: O(n·m·min(n, m)), no SVD of the
    large side. Used per step on LoRA factors (out×r or r×in)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', not {side!r}")
    M = matrix if side == "left" else matrix.transpose(-2, -1)
    if M.shape[-1] > M.shape[-2]:
        raise ValueError(f"the {side} side must be the long one; got a {tuple(matrix.shape[-2:])} matrix")
    evals, evecs = torch.linalg.eigh(M.transpose(-2, -1) @ M)
    top = evecs[..., -k:].flip(-1)
    scale = evals[..., -k:].flip(-1).clamp_min(torch.finfo(M.dtype).tiny).sqrt()
    return (M @ top) / scale.unsqueeze(-2)


def principal_angles(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the spans of orthonormal bases u (n×p) and v (n×q)."""
    s = torch.linalg.svdvals(u.transpose(-2, -1) @ v).clamp(-1.0, 1.0)
    return torch.arccos(s)


def sin_theta(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """‖U_⊥ᵀ V‖_op for orthonormal u, v of equal width: the sine of the largest principal angle.

    Computed as ‖V − U(UᵀV)‖_op, so no complement basis is ever formed and small angles keep full
    precision (sqrt(1 − σ_min(UᵀV)²) cannot resolve angles below ~1e-8).
    """
    return torch.linalg.matrix_norm(v - u @ (u.transpose(-2, -1) @ v), ord=2)


def projection_residual(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖(I − UUᵀ) X‖_F: how much of X lies outside span(u) (u orthonormal)."""
    return torch.linalg.matrix_norm(x - u @ (u.transpose(-2, -1) @ x))


def largest_angle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The largest principal angle between span(u) and span(v) (orthonormal, equal width), in radians.

    Taken as arcsin‖(I − UUᵀ)V‖_op, which keeps its accuracy for angles near zero, where arccos of a cosine
    (as in `principal_angles`) cannot resolve anything below ~1e-8 rad in float64.
    """
    residual = v - u @ (u.transpose(-2, -1) @ v)
    return torch.arcsin(torch.linalg.matrix_norm(residual, ord=2).clamp(max=1.0))


def paired_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between column i of a and column i of b (unit vectors, sign ignored), for every i.

    2·arcsin(‖a_i ∓ b_i‖/2) with the sign that brings them closer: accurate for small angles too.
    """
    gap = torch.minimum(torch.linalg.vector_norm(a - b, dim=-2), torch.linalg.vector_norm(a + b, dim=-2))
    return 2.0 * torch.arcsin((gap / 2.0).clamp(max=1.0))


def row_space_residual(weight: torch.Tensor, x: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """‖X(I − P)‖_F / ‖X‖_F with P the projector onto the row space of `weight` (singular values above
    rtol·σ_max): the share of X's rows outside that space (NoRA's lora_A sketch leaves none)."""
    _, s, vh = torch.linalg.svd(weight, full_matrices=False)
    v = vh[: int((s > rtol * s[0]).sum())].mT
    return projection_residual(v, x.mT) / torch.linalg.matrix_norm(x)
