"""Low-rank matrix factorization targets, min ‖XXᵀ − A‖²_F (symmetric PSD) and min ‖XYᵀ − A‖²_F.

A is held in factored form A = U diag(s) Vᵀ (U = V = Q for the symmetric problem), batched over a
leading seed dimension, so a product AX costs O(m·r_A·r) instead of O(m²·r) and a thousand-step run
at m = 1000 takes seconds. The errors are computed from the coordinates of the factors in (U, V) and
their residuals, never by forming XXᵀ − A: that keeps them accurate to float64 round-off
(‖XXᵀ − A‖_F ≈ 1e-15 for ‖A‖_F ≈ 4) where the difference of two dense m×m products would not be.

Regimes (r = factor width, r_A = rank A): exact-parametrised (EP, r = r_A) and under-parametrised
(UP, r < r_A).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lorarepro.adapters.nystrom import Generators, gaussian

# How the 60-value UP list of the paper (Apdx 10.1) is reconciled with its stated r_A = 40.
UP_VARIANTS = ("r_a_40", "listed_60")


def spectrum(name: str, up_variant: str = "r_a_40") -> np.ndarray:
    """The singular values of the paper's synthetic targets (Apdx 10.1), largest first.

    ep: {1.00, 0.99, …, 0.82} ∪ {0.01}, r_A = 20, κ = 100 (Fig. 1a, 1b).
    up: {1.00, …, 0.44} ∪ {0.05, 0.025, 0.01}. As listed, the 0.01 steps give 57 + 3 = 60 values,
        while the text says r_A = 40: `listed_60` takes the list as written, `r_a_40` keeps r_A = 40
        with 37 values linspace(1, 0.44) before the 3 small ones (Fig. 1c).
    """
    if name == "ep":
        return np.append(np.round(np.arange(100, 81, -1) / 100, 2), 0.01)
    if name == "up":
        tail = [0.05, 0.025, 0.01]
        if up_variant == "r_a_40":
            return np.append(np.linspace(1.0, 0.44, 37), tail)
        if up_variant == "listed_60":
            return np.append(np.round(np.arange(100, 43, -1) / 100, 2), tail)
        raise ValueError(f"unknown UP variant {up_variant!r}; expected one of {UP_VARIANTS}")
    raise ValueError(f"unknown spectrum {name!r}; expected 'ep' or 'up'")


def random_orthonormal(rows: int, cols: int, generators: Generators, *, dtype=torch.float64) -> torch.Tensor:
    """Orthonormal columns from the QR of a Gaussian matrix (Haar-distributed), one per generator."""
    q, r = torch.linalg.qr(gaussian((rows, cols), 1.0, generators, dtype=dtype))
    # Fix the signs so the basis is a function of the Gaussian draw alone (QR's are implementation-defined).
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


@dataclass(frozen=True)
class FactoredTarget:
    """A = U diag(s) Vᵀ with orthonormal U (…, m, r_A), V (…, n, r_A) and s > 0 (…, r_A).
    `symmetric` marks the PSD problem (U = V = Q), whose factorization is XXᵀ."""

    left: torch.Tensor
    values: torch.Tensor
    right: torch.Tensor
    symmetric: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.left.shape[-2], self.right.shape[-2]

    @property
    def rank(self) -> int:
        return self.values.shape[-1]

    @property
    def mT(self) -> "FactoredTarget":  # noqa: N802 - mirrors Tensor.mT, so code takes either
        return FactoredTarget(self.right, self.values, self.left, self.symmetric)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A·x in O(m·r_A·r)."""
        return self.left @ (self.values.unsqueeze(-1) * (self.right.mT @ x))

    def apply_scaled(self, x: torch.Tensor) -> torch.Tensor:
        """A·X(XᵀX)⁻¹, ScaledGD's preconditioned product, as A·Q_x·R⁻ᵀ from the thin QR X = Q_x R.

        Solving with the Gram matrix XᵀX would square cond(X), which reaches 10⁴ for a Nyström
        sketch of a κ = 100 target: the one-step identity X₁Y₁ᵀ = A of Theorem 5 would then hold only
        to ~1e-10 instead of ~1e-13. The triangular solve acts on the r_A×r coordinates before the lift
        by U, so the result lies in col(U) up to the round-off of one product. A rank-deficient X
        yields non-finite values (a diverged run), not an exception."""
        q, r = torch.linalg.qr(x)
        coeffs = self.values.unsqueeze(-1) * (self.right.mT @ q)
        return self.left @ torch.linalg.solve_triangular(r.mT, coeffs, upper=False, left=False)

    __matmul__ = apply

    def dense(self) -> torch.Tensor:
        return (self.left * self.values.unsqueeze(-2)) @ self.right.mT

    def frobenius_norm(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.values, dim=-1)

    def tail_norm(self, r: int) -> torch.Tensor:
        """‖Σ₂‖_F = (Σ_{i>r} s_i²)^½, the smallest ‖XYᵀ − A‖_F at rank r (Eckart–Young)."""
        return torch.linalg.vector_norm(self.values[..., r:], dim=-1)


def symmetric_target(values, m: int, generators: Generators) -> FactoredTarget:
    """A = Q diag(s) Qᵀ ∈ ℝ^{m×m} PSD, Q from the QR of a Gaussian matrix (the paper does not say how
    it draws Q), one target per generator along the leading dimension."""
    s = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    q = random_orthonormal(m, len(s), generators)
    return FactoredTarget(q, s.expand(*q.shape[:-2], len(s)), q, symmetric=True)


def asymmetric_target(values, m: int, n: int, generators: Generators) -> FactoredTarget:
    """A = U diag(s) Vᵀ ∈ ℝ^{m×n} with independent Haar U, V (U drawn first from each generator)."""
    s = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    u = random_orthonormal(m, len(s), generators)
    v = random_orthonormal(n, len(s), generators)
    return FactoredTarget(u, s.expand(*u.shape[:-2], len(s)), v)


def _trace_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """tr(aᵀb) over the last two dims."""
    return (a * b).sum(dim=(-2, -1))


def coordinates(basis: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x = basis·P + R with P = basisᵀx and R ⊥ basis: the paper's Φ_t and the residual (I − QQᵀ)X_t."""
    p = basis.mT @ x
    return p, x - basis @ p


def optimality_error(target: FactoredTarget, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """‖XYᵀ − A‖_F (Y = X for the symmetric problem), batched.

    With X = UP + R_x and Y = VS + R_y, the four blocks U(PSᵀ − Σ)Vᵀ, UPR_yᵀ, R_xSᵀVᵀ, R_xR_yᵀ are
    mutually orthogonal, so the squared error is the sum of their squared norms, each from r×r or
    r_A×r_A products.
    """
    p, rx = coordinates(target.left, x)
    s, ry = (p, rx) if y is None and target.symmetric else coordinates(target.right, x if y is None else y)
    core = p @ s.mT - torch.diag_embed(target.values)
    gx, gy = rx.mT @ rx, ry.mT @ ry
    squared = (torch.linalg.matrix_norm(core) ** 2 + _trace_product(p.mT @ p, gy)
               + _trace_product(s.mT @ s, gx) + _trace_product(gx, gy))
    return torch.sqrt(squared.clamp_min(0.0))


def weak_optimality_error(target: FactoredTarget, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """‖YᵀA†X − I_r‖_F (‖XᵀA†X − I_r‖_F when symmetric): zero at every global optimum (Lemma 9), the
    UP convergence measure of Theorems 4 and 6. A† = V Σ⁻¹ Uᵀ."""
    p = target.left.mT @ x
    s = p if y is None and target.symmetric else target.right.mT @ (x if y is None else y)
    inner = s.mT @ (p / target.values.unsqueeze(-1))
    return torch.linalg.matrix_norm(inner - torch.eye(inner.shape[-1], dtype=inner.dtype))


def residual_norm(basis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖(I − QQᵀ)X‖_F: the part of X outside col(A), which Nyström initialisation removes."""
    return torch.linalg.matrix_norm(coordinates(basis, x)[1])


def reduce_to_span(target: FactoredTarget, x: torch.Tensor, y: torch.Tensor | None = None):
    """The same problem in the (r_A + r)-dimensional coordinates of col(A) ⊕ col((I − QQᵀ)X₀).

    Every GD, ScaledGD and AltGD iterate stays in that span (each update adds columns of X and of AX),
    so writing X = QP + WC with W an orthonormal basis of the initial residual is exact: the
    coordinates [P; C] evolve under the same updates with A replaced by diag(Σ, 0), and every error
    above is a function of P, S and the Gram matrices CᵀC, so it is unchanged. A step then costs
    O((r_A + r)·r²) instead of O(m·r_A·r), which is what makes GD's 10⁴–10⁵-step horizons cheap.
    Only round-off differs: it is generated in r_A + r dimensions rather than m.

    Returns (reduced target, X coordinates, Y coordinates or None); for the asymmetric problem each
    side is reduced against its own singular basis (U for X, V for Y).
    """

    def side(basis, factor):
        p, residual = coordinates(basis, factor)
        # C with CᵀC = RᵀR (R = WC); any such C gives the same dynamics and errors.
        return torch.cat([p, torch.linalg.qr(residual, mode="r")[1]], dim=-2)

    embed = torch.eye(target.rank + x.shape[-1], target.rank, dtype=target.values.dtype)
    embed = embed.expand(*target.values.shape[:-1], *embed.shape)
    reduced = FactoredTarget(embed, target.values, embed, target.symmetric)
    if y is None:
        if not target.symmetric:
            raise ValueError("an asymmetric target needs both factors")
        return reduced, side(target.left, x), None
    return reduced, side(target.left, x), side(target.right, y)


def loss(target: FactoredTarget, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """¼‖XXᵀ − A‖²_F (symmetric) or ½‖XYᵀ − A‖²_F: scaled so that the gradients are the paper's
    (XXᵀ − A)X and ((XYᵀ − A)Y, (XYᵀ − A)ᵀX), and GD is X⁺ = X − η·grad."""
    return optimality_error(target, x, y) ** 2 / (4 if y is None else 2)


def gradient(target: FactoredTarget, x: torch.Tensor, y: torch.Tensor | None = None):
    """Gradient of `loss` in factored form: (XXᵀ − A)X = X(XᵀX) − AX, O(m·r_A·r + m·r²)."""
    if y is None:
        return x @ (x.mT @ x) - target @ x
    return x @ (y.mT @ y) - target @ y, y @ (x.mT @ x) - target.mT @ x


def batch_generators(seeds: Sequence[int], stream: str) -> list[torch.Generator]:
    """One CPU generator per seed and named stream ("target", "init", ...): a seed's draws depend
    neither on which other seeds share its batch nor on the other streams (a small init drawn from
    the target's own stream would reproduce the Gaussian whose QR is Q, and lie in col(A))."""
    key = zlib.crc32(stream.encode())
    return [torch.Generator().manual_seed(int(np.random.SeedSequence([int(s), key]).generate_state(1, np.uint64)[0] >> 1))
            for s in seeds]
