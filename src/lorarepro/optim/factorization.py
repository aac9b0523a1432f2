"""GD, ScaledGD and AltGD for symmetric (XXᵀ ≈ A) and asymmetric (XYᵀ ≈ A) matrix factorization.

Every step takes A as a `FactoredTarget` (batched over seeds), so a step costs O(m·r_A·r + m·r²). Residual products are
expanded, (XXᵀ − A)X = X(XᵀX) − AX, so XXᵀ (m×m) is never formed. Step conventions follow the paper:
GD's gradient is (XXᵀ − A)X with the factor 4 of ∇‖XXᵀ − A‖²_F folded into η (as in eq. 2).

A step is `step(target, factors, eta, t) -> factors` with `factors` a tuple ((X,) or (X, Y)), so one
driver (`run`) serves all of them.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

Factors = tuple[torch.Tensor, ...]
Step = Callable[..., Factors]


def gd(target, x: torch.Tensor, eta: float) -> torch.Tensor:
    """X⁺ = X − η(XXᵀ − A)X."""
    return x - eta * (x @ (x.mT @ x) - target @ x)


def scaled_gd(target, x: torch.Tensor, eta: float) -> torch.Tensor:
    """Eq. (2): X⁺ = X − η(XXᵀ − A)X(XᵀX)⁻¹ = (1 − η)X + η·AX(XᵀX)⁻¹.

    The second form shows why Nyström initialisation matters: the residual (I − QQᵀ)X is only ever
    scaled by (1 − η), so it stays 0 if it starts at 0 (and round-off in it contracts)."""
    return (1 - eta) * x + eta * target.apply_scaled(x)


def asym_gd(target, x: torch.Tensor, y: torch.Tensor, eta: float) -> Factors:
    """Simultaneous GD on ½‖XYᵀ − A‖²_F: X⁺ = X − η(XYᵀ − A)Y, Y⁺ = Y − η(XYᵀ − A)ᵀX."""
    return x - eta * (x @ (y.mT @ y) - target @ y), y - eta * (y @ (x.mT @ x) - target.mT @ x)


def asym_scaled_gd(target, x: torch.Tensor, y: torch.Tensor, eta: float, *, hold_x: bool = False) -> Factors:
    """Simultaneous (Jacobi) ScaledGD: X⁺ = X − η(XYᵀ − A)Y(YᵀY)⁻¹, Y⁺ = Y − η(XYᵀ − A)ᵀX(XᵀX)⁻¹.

    `hold_x` keeps X (eq. 5's first step, where Y₀ = 0 makes YᵀY singular)."""
    y_next = (1 - eta) * y + eta * target.mT.apply_scaled(x)
    if hold_x:
        return x, y_next
    return (1 - eta) * x + eta * target.apply_scaled(y), y_next


def altgd(target, x: torch.Tensor, y: torch.Tensor, eta: float) -> Factors:
    """Alternating GD (Ward & Kolda [60]): X⁺ = X − η(XYᵀ − A)Y, then Y⁺ = Y − η(X⁺Yᵀ − A)ᵀX⁺."""
    x = x - eta * (x @ (y.mT @ y) - target @ y)
    return x, y - eta * (y @ (x.mT @ x) - target.mT @ x)


# Uniform steps for the driver, by (problem, algorithm).
def _sym(update) -> Step:
    def step(target, factors: Factors, eta: float, t: int) -> Factors:
        return (update(target, factors[0], eta),)

    step.__doc__ = update.__doc__
    return step


def _asym(update) -> Step:
    def step(target, factors: Factors, eta: float, t: int) -> Factors:
        return update(target, *factors, eta)

    step.__doc__ = update.__doc__
    return step


def modified_scaled_gd(target, factors: Factors, eta: float, t: int) -> Factors:
    """Eq. (5): ScaledGD from the asymmetric Nyström start (X₀ = AΩ, Y₀ = 0), whose first step moves
    only Y. With η = 1 it lands on X₁Y₁ᵀ = P_{col X₀}A, i.e. on A itself in EP (Theorem 5)."""
    return asym_scaled_gd(target, *factors, eta, hold_x=t == 0)


STEPS: dict[tuple[str, str], Step] = {
    ("symmetric", "gd"): _sym(gd),
    ("symmetric", "scaledgd"): _sym(scaled_gd),
    ("asymmetric", "gd"): _asym(asym_gd),
    ("asymmetric", "scaledgd"): _asym(asym_scaled_gd),
    ("asymmetric", "scaledgd_modified"): modified_scaled_gd,
    ("asymmetric", "altgd"): _asym(altgd),
}


def run(step: Step, target, factors: Factors, eta: float, iters: int, observe_at: Iterable[int],
        observe: Callable[[int, Factors], None]) -> Factors:
    """`iters` steps from `factors`, calling observe(t, factors) at each t in observe_at (t = 0 is
    the initialisation, t = iters the final iterate); returns the final factors."""
    observe_at = set(observe_at)
    for t in range(iters + 1):
        if t in observe_at:
            observe(t, factors)
        if t < iters:
            factors = step(target, factors, eta, t)
    return factors
