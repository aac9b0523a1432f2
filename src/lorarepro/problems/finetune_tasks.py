"""LoRA-One's fine-tuning task (3): a pretrained linear (or ReLU) map W♮ shifted by a rank-r* Δ.

Torch orientation throughout (see adapters/matrix_inits.py): weights are out×in, inputs x ∈ R^in,
the model is y = (W♮ + B·A)x. With Σ̂ = X̃ᵀX̃/N the linear LoRA loss is
    L̃(A, B) = ½ tr((BA − Δ) Σ̂ (BA − Δ)ᵀ),   ∇_{BA} L̃ = (BA − Δ)Σ̂ = B(AΣ̂) − G♮,   G♮ = ΔΣ̂ = −∇_W L(W♮),
so GD needs only Σ̂ and G♮ (W♮ cancels). Δ is kept in factored form Δ = L·R (out×r*, r*×in), so
G♮ = L·(RΣ̂) is factored too, and a GD step costs one r×in by in×in product (O(d²r)) plus O(d·r²)
work: no out×in matrix is ever formed per step, which is what makes d = 1000 cheap.
Every tensor may carry leading batch dimensions (seeds, init scales, ...); Σ̂ and Δ may be shared
(size 1) along batch dimensions of the factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


def low_rank_shift(out_features: int, in_features: int, spectrum: torch.Tensor, *, generator: torch.Generator,
                   dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Δ = U diag(s) Vᵀ with U, V the top singular vectors of an out×in Gaussian matrix (paper App. G.1),
    returned as the factors (U diag(s), Vᵀ)."""
    gauss = torch.randn(out_features, in_features, generator=generator, dtype=dtype)
    U, _, Vh = torch.linalg.svd(gauss, full_matrices=False)
    k = spectrum.shape[-1]
    return U[:, :k] * spectrum.to(dtype), Vh[:k]


def shared_matmul(X: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """X @ M where M is shared (size 1) along some batch dimensions of X.

    torch.matmul would copy M once per broadcast index; instead those dimensions of X are folded into
    its rows, so the product is one batched matmul against M's own batch."""
    batch = torch.broadcast_shapes(X.shape[:-2], M.shape[:-2])
    Mb = M.shape[:-2]
    Mb = (1,) * (len(batch) - len(Mb)) + tuple(Mb)
    shared = [i for i, (b, m) in enumerate(zip(batch, Mb)) if m == 1 and b > 1]
    if not shared:
        return X @ M
    kept = [i for i in range(len(batch)) if i not in shared]
    Xb = X.expand(*batch, *X.shape[-2:])
    order = kept + shared + [len(batch), len(batch) + 1]
    Xp = Xb.permute(order)
    rows = math.prod(batch[i] for i in shared) * X.shape[-2]
    M_kept = M.reshape(*Mb, *M.shape[-2:]).squeeze(tuple(shared))
    out = Xp.reshape(*(batch[i] for i in kept), rows, X.shape[-1]) @ M_kept
    out = out.reshape(*(batch[i] for i in kept), *(batch[i] for i in shared), X.shape[-2], M.shape[-1])
    return out.permute([order.index(i) for i in range(len(order))])


def product_norm(left: torch.Tensor, right: torch.Tensor, ord: str | int = "fro") -> torch.Tensor:
    """‖left·right‖ (Frobenius, or ord=2 for the operator norm) for thin factors (n×k, k×m), from their
    thin QR factors in O((n + m)k²) without forming the n×m product.

    Expanding ‖PQ‖²_F = ⟨PᵀP, QQᵀ⟩ would lose every digit below ε·‖P‖²‖Q‖²; this keeps the accuracy of
    forming the product (risks of 1e-30 stay exact)."""
    _, r_left = torch.linalg.qr(left)
    _, r_right = torch.linalg.qr(right.transpose(-2, -1))
    return torch.linalg.matrix_norm(r_left @ r_right.transpose(-2, -1), ord=ord)


@dataclass
class LinearTask:
    """What GD on task (3) needs: Σ̂ (in×in) and Δ = L·R (L out×r*, R r*×in)."""

    sigma_hat: torch.Tensor
    delta_left: torch.Tensor
    delta_right: torch.Tensor
    g_right: torch.Tensor = field(init=False)   # RΣ̂, so that G♮ = L·RΣ̂

    def __post_init__(self):
        self.g_right = shared_matmul(self.delta_right, self.sigma_hat)

    @classmethod
    def from_samples(cls, X: torch.Tensor, delta_left: torch.Tensor, delta_right: torch.Tensor) -> "LinearTask":
        """Σ̂ = X̃ᵀX̃/N from the N×in inputs."""
        return cls(X.transpose(-2, -1) @ X / X.shape[-2], delta_left, delta_right)

    @property
    def delta(self) -> torch.Tensor:
        return self.delta_left @ self.delta_right

    @property
    def g_nat(self) -> torch.Tensor:
        """G♮ = ΔΣ̂ = −∇_W L(W♮), dense (out×in): the input of the spectral inits."""
        return self.delta_left @ self.g_right

    def with_base_offset(self, offset_left: torch.Tensor, offset_right: torch.Tensor) -> "LinearTask":
        """The task after the base weight moves by −offset_left·offset_right (LoRA-GA's W♮ ← W♮ − BA):
        the adapter now has to learn Δ + offset."""
        return LinearTask(self.sigma_hat, torch.cat([self.delta_left, offset_left], -1),
                          torch.cat([self.delta_right, offset_right], -2))

    def grads(self, A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(∇_A L̃, ∇_B L̃) = (Bᵀ(BA − Δ)Σ̂, (BA − Δ)Σ̂Aᵀ), expanded as
        ∇_A = (BᵀB)(AΣ̂) − (BᵀL)(RΣ̂) and ∇_B = B(AΣ̂Aᵀ) − L((RΣ̂)Aᵀ)."""
        A_sigma = shared_matmul(A, self.sigma_hat)
        At, Bt = A.transpose(-2, -1), B.transpose(-2, -1)
        grad_A = (Bt @ B) @ A_sigma - (Bt @ self.delta_left) @ self.g_right
        grad_B = B @ (A_sigma @ At) - self.delta_left @ (self.g_right @ At)
        return grad_A, grad_B

    def loss(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """L̃(A, B) = ½‖(BA − Δ)C‖²_F with Σ̂ = CCᵀ (needs N ≥ in), the training loss."""
        C = torch.linalg.cholesky(self.sigma_hat)
        right = torch.cat([shared_matmul(A, C), shared_matmul(self.delta_right, C).expand(*A.shape[:-2], -1, -1)], -2)
        return 0.5 * product_norm(self._stack_left(B), right) ** 2

    def risk(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """½‖BA − Δ‖²_F: the generalisation error for isotropic inputs (the paper's y-axis), O(d·r²)."""
        right = torch.cat([A, self.delta_right.expand(*A.shape[:-2], -1, -1)], -2)
        return 0.5 * product_norm(self._stack_left(B), right) ** 2

    def spectral_init_gap(self, A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides of Theorem 3.3: ‖BA − Δ‖_op and ‖Σ̂ − I‖_op·‖Δ‖_op (the first is at most the second
        for Spectral-init with γ = 1 and r ≥ r*)."""
        right = torch.cat([A, self.delta_right.expand(*A.shape[:-2], -1, -1)], -2)
        lhs = product_norm(self._stack_left(B), right, ord=2)
        eye = torch.eye(self.sigma_hat.shape[-1], dtype=self.sigma_hat.dtype, device=self.sigma_hat.device)
        noise = torch.linalg.eigvalsh(self.sigma_hat - eye).abs().amax(-1)
        return lhs, noise * product_norm(self.delta_left, self.delta_right, ord=2)

    def _stack_left(self, B: torch.Tensor) -> torch.Tensor:
        """[B, −L], so that BA − Δ = [B, −L]·[A; R]."""
        return torch.cat([B, -self.delta_left.expand(*B.shape[:-2], -1, -1)], -1)


def make_linear_task(in_features: int, out_features: int, spectrum, n_samples: int, *, generator: torch.Generator,
                     dtype=torch.float64) -> LinearTask:
    """Draw Σ̂ from N i.i.d. N(0, I) inputs and Δ with the given singular values."""
    X = torch.randn(n_samples, in_features, generator=generator, dtype=dtype)
    left, right = low_rank_shift(out_features, in_features, torch.as_tensor(spectrum, dtype=dtype),
                                 generator=generator, dtype=dtype)
    return LinearTask.from_samples(X, left, right)


@dataclass
class FrozenSubspaceTask:
    """LoRA-SB / LoRA-XS on the linear task: ΔW = U·R·Vh with orthonormal U (out×r), Vh (r×in) frozen and
    only the r×r core R trained. The loss is quadratic in R, so its gradient
        ∇_R L̃ = Uᵀ(URVh − Δ)Σ̂Vhᵀ = R·(VhΣ̂Vhᵀ) − UᵀG♮Vhᵀ
    needs two r×r matrices computed once; a step then costs O(r³)."""

    task: LinearTask
    U: torch.Tensor
    Vh: torch.Tensor
    hessian: torch.Tensor = field(init=False)   # VhΣ̂Vhᵀ
    target: torch.Tensor = field(init=False)    # UᵀG♮Vhᵀ

    def __post_init__(self):
        Vt = self.Vh.transpose(-2, -1)
        self.hessian = shared_matmul(self.Vh, self.task.sigma_hat) @ Vt
        self.target = (self.U.transpose(-2, -1) @ self.task.delta_left) @ (self.task.g_right @ Vt)

    def grad(self, R: torch.Tensor) -> torch.Tensor:
        return R @ self.hessian - self.target

    def risk(self, R: torch.Tensor) -> torch.Tensor:
        return self.task.risk(R @ self.Vh, self.U)


@dataclass
class ReluTask:
    """The nonlinear variant: y = σ((W♮ + Δ)x) with ReLU σ, trained as σ((W♮ + BA)x)."""

    X: torch.Tensor        # N×in
    W_nat: torch.Tensor    # out×in
    delta: torch.Tensor    # out×in

    @property
    def targets(self) -> torch.Tensor:
        return torch.relu(self.X @ (self.W_nat + self.delta).transpose(-2, -1))

    def loss_of_weight(self, W: torch.Tensor) -> torch.Tensor:
        """L(W) = ‖σ(X̃Wᵀ) − Ỹ‖²_F / (2N)."""
        diff = torch.relu(self.X @ W.transpose(-2, -1)) - self.targets
        return 0.5 * (diff ** 2).sum((-2, -1)) / self.X.shape[0]

    def loss(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return self.loss_of_weight(self.W_nat + B @ A)

    def weight_grad(self, W: torch.Tensor) -> torch.Tensor:
        """∇_W L = [(σ(X̃Wᵀ) − Ỹ) ⊙ σ′(X̃Wᵀ)]ᵀ X̃ / N (out×in); G♮ = −∇_W L(W♮)."""
        pre = self.X @ W.transpose(-2, -1)
        return (((torch.relu(pre) - self.targets) * (pre > 0)).transpose(-2, -1) @ self.X) / self.X.shape[0]

    def grads(self, A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        G = self.weight_grad(self.W_nat + B @ A)
        return B.transpose(-2, -1) @ G, G @ A.transpose(-2, -1)

    @property
    def g_nat(self) -> torch.Tensor:
        return -self.weight_grad(self.W_nat)


def make_relu_task(in_features: int, out_features: int, spectrum, n_samples: int, *, generator: torch.Generator,
                   dtype=torch.float64) -> ReluTask:
    X = torch.randn(n_samples, in_features, generator=generator, dtype=dtype)
    W_nat = torch.randn(out_features, in_features, generator=generator, dtype=dtype) / in_features ** 0.5
    left, right = low_rank_shift(out_features, in_features, torch.as_tensor(spectrum, dtype=dtype),
                                 generator=generator, dtype=dtype)
    return ReluTask(X, W_nat, left @ right)


def rank_one_minimizer_distance(a: np.ndarray, b: float, w: np.ndarray) -> float:
    """Euclidean distance from (a, b) to the minimisers {(w/t, t) : t ≠ 0} of the rank-one toy
    ŷ = x̃ᵀ(b·a) with target x̃ᵀw (Figure 3; exact minimisers whenever X̃ has full column rank).

    The stationarity condition of f(t) = ‖a − w/t‖² + (b − t)², times t³/2, is the quartic
    t⁴ − b t³ + ⟨a, w⟩ t − ‖w‖² = 0; its real roots hold the closest point."""
    a, w = np.asarray(a, dtype=float), np.asarray(w, dtype=float)
    roots = np.roots([1.0, -b, 0.0, float(a @ w), -float(w @ w)])
    t = roots[np.abs(roots.imag) < 1e-9].real
    t = t[t != 0]
    return float(np.sqrt(np.min(((a[None] - w[None] / t[:, None]) ** 2).sum(1) + (b - t) ** 2)))
