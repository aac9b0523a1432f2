"""LoRA-One's fine-tuning task (3): a pretrained linear (or ReLU) map W♮ shifted by a rank-r* Δ.

Torch orientation throughout (see adapters/matrix_inits.py): weights are out×in, inputs x ∈ R^in,
the model is y = (W♮ + B·A)x. With Σ̂ = X̃ᵀX̃/N the linear LoRA loss is
    L̃(A, B) = ½ tr((BA − Δ) Σ̂ (BA − Δ)ᵀ),   ∇_{BA} = B(AΣ̂) − G♮,   G♮ = ΔΣ̂ = −∇_W L(W♮),
so a GD step needs only Σ̂ and G♮ and costs O(d²r); X̃(BA) or Σ̂(BA) (O(d³)) are never formed.
Every tensor may carry leading batch dimensions (seeds, step sizes, init scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def low_rank_shift(out_features: int, in_features: int, spectrum: torch.Tensor, *, generator: torch.Generator,
                   dtype=torch.float64) -> torch.Tensor:
    """Δ = U diag(s) Vᵀ with U, V the top singular vectors of an out×in Gaussian matrix (paper App. G.1)."""
    gauss = torch.randn(out_features, in_features, generator=generator, dtype=dtype)
    U, _, Vh = torch.linalg.svd(gauss, full_matrices=False)
    k = spectrum.shape[-1]
    return (U[:, :k] * spectrum.to(dtype)) @ Vh[:k]


@dataclass
class LinearTask:
    """The population-free statistics of task (3): Σ̂ (in×in), Δ (out×in), G♮ = ΔΣ̂."""

    sigma_hat: torch.Tensor
    delta: torch.Tensor

    @property
    def g_nat(self) -> torch.Tensor:
        return self.delta @ self.sigma_hat

    def residual(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """(BA − Δ)Σ̂ = B(AΣ̂) − G♮, the gradient of L̃ with respect to the product BA."""
        return B @ (A @ self.sigma_hat) - self.g_nat

    def grads(self, A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(∇_A L̃, ∇_B L̃) = (Bᵀ R, R Aᵀ) with R = (BA − Δ)Σ̂."""
        R = self.residual(A, B)
        return B.transpose(-2, -1) @ R, R @ A.transpose(-2, -1)

    def loss(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """L̃(A, B) = ½ tr((BA − Δ)Σ̂(BA − Δ)ᵀ), the training loss."""
        E = B @ A - self.delta
        return 0.5 * ((E @ self.sigma_hat) * E).sum((-2, -1))

    def risk(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """½‖BA − Δ‖²_F: the generalisation error for isotropic inputs (the paper's y-axis)."""
        return 0.5 * torch.linalg.matrix_norm(B @ A - self.delta) ** 2


def make_linear_task(in_features: int, out_features: int, spectrum, n_samples: int, *, generator: torch.Generator,
                     dtype=torch.float64) -> LinearTask:
    """Draw Σ̂ from N i.i.d. N(0, I) inputs and Δ with the given singular values."""
    X = torch.randn(n_samples, in_features, generator=generator, dtype=dtype)
    sigma_hat = X.T @ X / n_samples
    delta = low_rank_shift(out_features, in_features, torch.as_tensor(spectrum, dtype=dtype), generator=generator,
                           dtype=dtype)
    return LinearTask(sigma_hat, delta)


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
    delta = low_rank_shift(out_features, in_features, torch.as_tensor(spectrum, dtype=dtype), generator=generator,
                           dtype=dtype)
    return ReluTask(X, W_nat, delta)


def core_grad(task: LinearTask, U: torch.Tensor, R: torch.Tensor, Vh: torch.Tensor) -> torch.Tensor:
    """∇_R L̃ for ΔW = U·R·Vh with U, Vh frozen (LoRA-SB): Uᵀ[(URVh − Δ)Σ̂]Vhᵀ, in O(d²r)."""
    return R @ (Vh @ task.sigma_hat @ Vh.transpose(-2, -1)) - U.transpose(-2, -1) @ task.g_nat @ Vh.transpose(-2, -1)
