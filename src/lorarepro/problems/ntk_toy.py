"""The toy least-squares problems behind Theorem 3.1's geometric illustration (NTK-LoRA, Figure 1).

The fine-tuning update is a 2x2 matrix δ = [[w, x], [y, z]], the loss is the mean squared error of N
linear measurements, L(δ) = (1/N) Σ_i (a_i · (w, x, y, z) − b_i)², and there is no regulariser. The
figure looks at the slice w = 1, where the rank-1 matrices are the saddle surface z = xy. The global
minimisers in that slice form an affine set u = p + Φt (u = (x, y, z)); its rank-1 members are the
zeros of the quadratic det δ = z − xy restricted to that set. Theorem 3.1 predicts a minimiser of rank
r with r(r+1)/2 ≤ KN: with K = 1, rank 1 for N = 1, 2 and rank 2 for N = 3 — which is what the
intersections show (a curve, two points, nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Relative tolerance for "zero" in the exact linear algebra below (double precision, O(1) data).
_TOL = 1e-10


@dataclass(frozen=True)
class ToyProblem:
    """L(δ) = (1/N) Σ_i (design_i · (w, x, y, z) − target_i)²."""

    name: str
    design: np.ndarray  # [N, 4]
    target: np.ndarray  # [N]

    @property
    def n_samples(self) -> int:
        return len(self.target)

    def loss(self, w, x, y, z) -> np.ndarray:
        """The objective, broadcast over arrays of matrix entries."""
        entries = np.stack(np.broadcast_arrays(w, x, y, z), axis=-1)
        residual = entries @ self.design.T - self.target
        return (residual**2).mean(axis=-1)


_S3 = np.sqrt(3.0)
# The paper's three objectives (a), (b), (c), for N = 1, 2, 3.
PANELS = (
    ToyProblem("a", np.array([[0.0, 1, 1, 0]]), np.array([0.0])),                               # (x + y)²
    ToyProblem("b", np.array([[0.0, 0, 0, 1], [0, 1, 1, 0]]), np.array([-4.0, 0])),              # ½(z+4)² + ½(x+y)²
    ToyProblem("c", np.array([[1.0, 0, 0, 0], [0, 0, 0, 1], [0, _S3, _S3, 0]]), np.array([1.0, 4, 0])),
)


@dataclass(frozen=True)
class AffineSet:
    """{p + Φ t : t ∈ R^k} in (x, y, z) coordinates; k = directions.shape[1]."""

    point: np.ndarray  # [3]
    directions: np.ndarray  # [3, k], orthonormal columns

    @property
    def dimension(self) -> int:
        return self.directions.shape[1]

    def at(self, t: np.ndarray) -> np.ndarray:
        return self.point + np.atleast_2d(t) @ self.directions.T


def minimisers_in_slice(problem: ToyProblem) -> AffineSet:
    """The global minimisers of L within the slice w = 1 (each toy problem attains L = 0 there)."""
    design_xyz = problem.design[:, 1:]
    rhs = problem.target - problem.design[:, 0]  # w = 1 moves to the right-hand side
    point, *_ = np.linalg.lstsq(design_xyz, rhs, rcond=None)
    if np.abs(design_xyz @ point - rhs).max() > _TOL:
        raise ValueError(f"problem {problem.name}: no zero-loss minimiser in the slice w = 1")
    _, s, vt = np.linalg.svd(design_xyz)
    rank = int((s > _TOL * max(s.max(), 1.0)).sum())
    return AffineSet(point, vt[rank:].T)


@dataclass(frozen=True)
class Quadratic:
    """q(t) = tᵀ Q t + cᵀ t + d."""

    Q: np.ndarray
    c: np.ndarray
    d: float

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_2d(t)
        return np.einsum("ni,ij,nj->n", t, self.Q, t) + t @ self.c + self.d


def determinant_on(affine: AffineSet) -> Quadratic:
    """det [[1, x], [y, z]] = z − xy as a quadratic in the affine set's parameters."""
    (px, py, pz), (fx, fy, fz) = affine.point, affine.directions
    return Quadratic(Q=-0.5 * (np.outer(fx, fy) + np.outer(fy, fx)), c=fz - px * fy - py * fx, d=float(pz - px * py))


@dataclass(frozen=True)
class ZeroSet:
    """The zeros of a quadratic: their dimension (−1 if there are none) and, if finitely many, the points."""

    dimension: int
    points: np.ndarray | None  # [n, k] parameters, only for dimension 0 (n ≥ 1) or −1 (n = 0)


def zero_set(q: Quadratic) -> ZeroSet:
    """Zeros of q on R^k, exactly: a hypersurface if q takes both signs; otherwise the minimisers of ±q
    (an affine set of dimension nullity(Q)) if that extremum is 0, else nothing."""
    k = len(q.c)
    scale = max(np.abs(q.Q).max(initial=0.0), np.abs(q.c).max(initial=0.0), abs(q.d), 1.0)
    if k == 0:
        return ZeroSet(0, np.zeros((1, 0))) if abs(q.d) <= _TOL * scale else ZeroSet(-1, np.zeros((0, 0)))
    eig, vec = np.linalg.eigh(q.Q)
    small = np.abs(eig) <= _TOL * scale
    positive, negative = (eig > 0) & ~small, (eig < 0) & ~small
    null = vec[:, small]
    unbounded = np.abs(null.T @ q.c).max(initial=0.0) > _TOL * scale  # linear term along a flat direction
    if (positive.any() and negative.any()) or unbounded:
        return ZeroSet(k - 1, _roots_1d(q) if k == 1 else None)
    if not (positive.any() or negative.any()):  # q is the constant d
        return ZeroSet(k, None) if abs(q.d) <= _TOL * scale else ZeroSet(-1, np.zeros((0, k)))
    # Semidefinite, bounded on the side of its sign: the extremum is at t* = −Q⁺c/2.
    t_star = -0.5 * np.linalg.pinv(q.Q, rcond=_TOL) @ q.c
    extremum = float(q(t_star)[0])
    sign = 1.0 if positive.any() else -1.0
    if sign * extremum > _TOL * scale:
        return ZeroSet(-1, np.zeros((0, k)))
    if sign * extremum < -_TOL * scale:
        return ZeroSet(k - 1, _roots_1d(q) if k == 1 else None)
    nullity = int(small.sum())
    return ZeroSet(nullity, t_star[None, :] if nullity == 0 else None)


def _roots_1d(q: Quadratic) -> np.ndarray:
    roots = np.roots([q.Q[0, 0], q.c[0], q.d])
    return np.sort(roots.real[np.abs(roots.imag) <= _TOL])[:, None]


@dataclass(frozen=True)
class Panel:
    """Everything Figure 1 shows for one toy problem."""

    problem: ToyProblem
    minimisers: AffineSet
    rank_one: ZeroSet  # in the minimisers' parameters

    @property
    def rank_one_points(self) -> np.ndarray:
        """The isolated rank-1 minimisers in (x, y, z) (empty if there are none or they form a curve)."""
        if self.rank_one.points is None:
            return np.zeros((0, 3))
        return self.minimisers.at(self.rank_one.points) if len(self.rank_one.points) else np.zeros((0, 3))

    @property
    def min_rank(self) -> int:
        """The lowest rank among the global minimisers (in the slice w = 1 rank 0 is impossible)."""
        return 1 if self.rank_one.dimension >= 0 else 2

    def rank_one_curve(self, t1: np.ndarray) -> np.ndarray:
        """Points of a one-dimensional rank-1 set (k = 2): for each first parameter t1, the roots in t2."""
        if not (self.minimisers.dimension == 2 and self.rank_one.dimension == 1):
            raise ValueError("the rank-1 minimisers of this panel are not a curve in a plane")
        q = determinant_on(self.minimisers)
        points = []
        for a in t1:  # q(a, t2) = Q11 t2² + (2 Q01 a + c1) t2 + (Q00 a² + c0 a + d)
            coeffs = [q.Q[1, 1], 2 * q.Q[0, 1] * a + q.c[1], q.Q[0, 0] * a * a + q.c[0] * a + q.d]
            roots = np.roots(np.trim_zeros(coeffs, "f")) if np.any(coeffs) else []
            points.extend([a, r.real] for r in np.atleast_1d(roots) if abs(r.imag) <= _TOL)
        return self.minimisers.at(np.array(points)) if points else np.zeros((0, 3))


def solve_panel(problem: ToyProblem) -> Panel:
    minimisers = minimisers_in_slice(problem)
    return Panel(problem, minimisers, zero_set(determinant_on(minimisers)))
