"""The multi-task low-rank model of Meta-LoRA (Block et al., Sec. 3-4).

Task t ∈ {1..T+1} has the regressor A* + U_t*U_t*ᵀ, with A* ∈ R^{d×d} and U_t* ∈ R^{d×k} Gaussian, so the
tasks share A* and differ by a rank-k PSD matrix; task T+1 is the unseen test task. Inputs are
x ~ N(0, σ_x² I) and the targets are either linear, y = W_t x + ε ∈ R^d, or a shallow sigmoid network with
scalar output, y = c*ᵀ sigmoid(W_t x) + ε, where c* ∈ R^d is shared by all tasks.

Torch orientation: weights are out×in and a batch of inputs is a (…, n, d) tensor, so predictions are
X Wᵀ. Every tensor carries the trials as its leading dimension (B), then the task where there is one.
Each trial's random draws come from generators seeded by (seed, stream), so a trial's data do not
depend on which other trials share its batch.

The population quantities of the linear model (losses (8), (11), (14), the reduced loss of App. E.2,
Theorem 2's excess risk, the App. E.1 family of T = 2 minima) live here too: they are properties of the
data model, and the tests and theory checks compare the sampled problem against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

# Independent random streams of one trial.
TRUTH, RETRAIN_DATA, TEST_DATA, RETRAIN_INIT, FINETUNE_INIT = range(5)


def generator(seed: int, stream: int, *extra: int) -> torch.Generator:
    """A torch generator for one (trial seed, stream, extra keys) triple, independent of all others."""
    state = np.random.SeedSequence([seed, stream, *extra]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def randn(seeds: Sequence[int], stream: int, shape: Sequence[int], *extra: int, dtype=torch.float64) -> torch.Tensor:
    """Standard normal draws, one independent stream per trial, stacked along a leading dimension."""
    return torch.stack([torch.randn(*shape, generator=generator(s, stream, *extra), dtype=dtype) for s in seeds])


def rand_uniform(seeds: Sequence[int], stream: int, shape: Sequence[int], bound: float, *extra: int,
                 dtype=torch.float64) -> torch.Tensor:
    """U(−bound, bound) draws per trial: PyTorch's default nn.Linear initialisation with bound 1/√fan_in."""
    return torch.stack([(2 * torch.rand(*shape, generator=generator(s, stream, *extra), dtype=dtype) - 1) * bound
                        for s in seeds])


@dataclass(frozen=True)
class GroundTruth:
    """A*, the task factors U_t* (task index T is the test task) and, for the shallow net, c*."""

    A_star: torch.Tensor  # (B, d, d)
    U_star: torch.Tensor  # (B, T+1, d, k)
    c_star: torch.Tensor | None = None  # (B, d)

    @property
    def T(self) -> int:
        return self.U_star.shape[-3] - 1

    @property
    def task_weights(self) -> torch.Tensor:
        """W_t* = A* + U_t*U_t*ᵀ for every task, (B, T+1, d, d)."""
        return self.A_star[:, None] + gram(self.U_star)

    def predict(self, W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return predict(W, X, self.c_star)


def gram(U: torch.Tensor) -> torch.Tensor:
    """U Uᵀ over the last two dimensions."""
    return U @ U.transpose(-2, -1)


def predict(W: torch.Tensor, X: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """Linear model X Wᵀ (…, n, d) when c is None, else the shallow net sigmoid(X Wᵀ) c, (…, n, 1).

    W is (…, d, d) and X (…, n, d); c (B, d) is broadcast over any task dimension between B and n.
    The products are formed feature-major, W Xᵀ (…, d, n): with d ≪ n that is the fast matmul layout
    on CPU (about twice as fast per training step as X Wᵀ).
    """
    hidden = W @ X.transpose(-2, -1)
    if c is None:
        return hidden.transpose(-2, -1)
    c = c.reshape(c.shape[0], *([1] * (hidden.dim() - 3)), 1, c.shape[-1])
    return (c @ torch.sigmoid(hidden)).transpose(-2, -1)


def sample_ground_truth(seeds: Sequence[int], T: int, d: int, k: int, *, shallow: bool = False,
                        symmetric_A: bool = False, dtype=torch.float64) -> GroundTruth:
    """Draw A* (iid N(0,1), or (G+Gᵀ)/2 as the authors' linear code does), U_t* and c* per trial."""
    A = randn(seeds, TRUTH, (d, d), 0, dtype=dtype)
    if symmetric_A:
        A = (A + A.transpose(-2, -1)) / 2
    U = randn(seeds, TRUTH, (T + 1, d, k), 1, dtype=dtype)
    c = randn(seeds, TRUTH, (d,), 2, dtype=dtype) if shallow else None
    return GroundTruth(A, U, c)


@dataclass(frozen=True)
class TaskData:
    """Samples of one or more tasks: inputs X (…, n, d), noisy targets Y and noiseless targets F."""

    X: torch.Tensor
    Y: torch.Tensor
    F: torch.Tensor

    def to(self, device: str | torch.device) -> "TaskData":
        return TaskData(self.X.to(device), self.Y.to(device), self.F.to(device))


def sample_retraining_data(truth: GroundTruth, seeds: Sequence[int], N: int, sigma_x: float, sigma_eps: float) -> TaskData:
    """N samples of each retraining task t = 1..T, (B, T, N, ·)."""
    return _sample(truth, truth.task_weights[:, :-1], seeds, RETRAIN_DATA, N, sigma_x, sigma_eps)


def sample_test_data(truth: GroundTruth, seeds: Sequence[int], n: int, sigma_x: float, sigma_eps: float) -> TaskData:
    """n samples of the test task T+1, (B, n, ·); the stream depends on n, so each n gets its own draw."""
    return _sample(truth, truth.task_weights[:, -1], seeds, TEST_DATA, n, sigma_x, sigma_eps, n)


def _sample(truth: GroundTruth, W: torch.Tensor, seeds, stream: int, n: int, sigma_x: float, sigma_eps: float,
            *extra: int) -> TaskData:
    d, dtype = W.shape[-1], W.dtype
    X = sigma_x * randn(seeds, stream, (*W.shape[1:-2], n, d), 0, *extra, dtype=dtype)
    F = truth.predict(W, X)
    noise = randn(seeds, stream, F.shape[1:], 1, *extra, dtype=dtype)
    return TaskData(X, F + sigma_eps * noise, F)


def prediction_error(W: torch.Tensor, truth: GroundTruth, X: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """The paper's test metric: (1/n)‖Φ(X; W) − Φ(X; W*)‖²_F, the in-sample error against noiseless targets."""
    diff = truth.predict(W, X) - truth.predict(W_star, X)
    return diff.pow(2).sum((-2, -1)) / X.shape[-2]


# ----------------------------------------------------------------------------------------------
# Population quantities of the linear model (σ_x = 1 normalisation of eq. (8)).
def population_task_loss(A: torch.Tensor, truth: GroundTruth) -> torch.Tensor:
    """L_t*(A) = ½‖A* + U_t*U_t*ᵀ − A‖²_F for every task, (B, T+1) (eq. 8)."""
    return 0.5 * (truth.task_weights - A[:, None]).pow(2).sum((-2, -1))


def sr_population_solution(truth: GroundTruth) -> torch.Tensor:
    """Â_SR = A* + (1/T) Σ_{t≤T} U_t*U_t*ᵀ, the minimiser of the pooled population loss (eq. 12)."""
    return truth.A_star + gram(truth.U_star[:, :-1]).mean(1)


def meta_population_loss(A: torch.Tensor, U: torch.Tensor, truth: GroundTruth) -> torch.Tensor:
    """L*(A, U) = ½ Σ_{t≤T} ‖A* + U_t*U_t*ᵀ − A − U_tUᵀ_t‖²_F, the LoRA-ML objective (14); U is (B, T, d, k)."""
    return 0.5 * _meta_residual(A, U, truth).pow(2).sum((-3, -2, -1))


def meta_population_grads(A: torch.Tensor, U: torch.Tensor, truth: GroundTruth) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇_A L*, ∇_U L*) of (14): −Σ_t M_t and −(M_t + M_tᵀ)U_t, with M_t the task residual."""
    M = _meta_residual(A, U, truth)
    return -M.sum(1), -(M + M.transpose(-2, -1)) @ U


def _meta_residual(A: torch.Tensor, U: torch.Tensor, truth: GroundTruth) -> torch.Tensor:
    return truth.task_weights[:, :-1] - A[:, None] - gram(U)


def meta_critical_A(U: torch.Tensor, truth: GroundTruth) -> torch.Tensor:
    """The minimiser of (14) in A for fixed U: A* − (1/T) Σ_t (U_tU_tᵀ − U_t*U_t*ᵀ) (eq. 32)."""
    return truth.A_star - (gram(U) - gram(truth.U_star[:, :-1])).mean(1)


def reduced_residuals(U: torch.Tensor, U_star: torch.Tensor) -> torch.Tensor:
    """B_t = U_tU_tᵀ − U_t*U_t*ᵀ − (1/T) Σ_s (U_sU_sᵀ − U_s*U_s*ᵀ): the residuals of (14) at A = eq. (32)."""
    D = gram(U) - gram(U_star)
    return D - D.mean(-3, keepdim=True)


def reduced_loss(U: torch.Tensor, U_star: torch.Tensor) -> torch.Tensor:
    """L̂(U) = Σ_t ‖B_t‖²_F (App. E.2); U, U_star are (…, T, d, k) with the retraining tasks only."""
    return reduced_residuals(U, U_star).pow(2).sum((-3, -2, -1))


def reduced_grad(U: torch.Tensor, U_star: torch.Tensor) -> torch.Tensor:
    """∇_{U_t} L̂ = 4 B_t U_t (the mean-subtraction term drops out because Σ_t B_t = 0)."""
    return 4 * reduced_residuals(U, U_star) @ U


def sr_excess(U_star: torch.Tensor) -> torch.Tensor:
    """Σ_t ‖U_t*U_t*ᵀ − (1/T)Σ_s U_s*U_s*ᵀ‖²_F over the retraining tasks = 2 Σ_t L_t*(Â_SR) (Theorem 2)."""
    R = gram(U_star)
    return (R - R.mean(-3, keepdim=True)).pow(2).sum((-3, -2, -1))


def sr_excess_paper(T: int, k: int, d: int) -> float:
    """Theorem 2's stated expectation of sr_excess, (T + 1 − 2/T) k d (d+1) (a mis-summed cross term)."""
    return (T + 1 - 2 / T) * k * d * (d + 1)


def sr_excess_expected(T: int, k: int, d: int) -> float:
    """The exact expectation of sr_excess, (T−1) k d (d+1): Σ_t E‖R_t − R̄‖² = (T−1) Σ_ij Var(R_ij)
    and a Wishart_d(I, k) matrix has Var(R_ij) = k (1 + δ_ij)."""
    return (T - 1) * k * d * (d + 1)


def e1_family(s: torch.Tensor) -> tuple[GroundTruth, torch.Tensor, torch.Tensor]:
    """App. E.1: T = 2, k = 1, d = 2, A* = 0, u_t* = e_t. For every s, u_1 = (cosh s, sinh s) and
    u_2 = (sinh s, cosh s) satisfy u_1u_1ᵀ − u_2u_2ᵀ = diag(1, −1), so (A(s), U(s)) with A from eq. (32)
    has zero loss (14) while A(s) ≠ A* for s ≠ 0. Returns (truth, A(s), U(s)) batched over s."""
    B, dtype = s.shape[0], s.dtype
    eye = torch.eye(2, dtype=dtype)
    # Test task: the third column is unused by (14); any u_3* would do.
    U_star = torch.stack([eye[:, :1], eye[:, 1:], torch.ones(2, 1, dtype=dtype) / 2 ** 0.5]).expand(B, 3, 2, 1)
    truth = GroundTruth(torch.zeros(B, 2, 2, dtype=dtype), U_star)
    ch, sh = torch.cosh(s), torch.sinh(s)
    U = torch.stack([torch.stack([ch, sh], -1), torch.stack([sh, ch], -1)], 1)[..., None]
    return truth, meta_critical_A(U, truth), U
