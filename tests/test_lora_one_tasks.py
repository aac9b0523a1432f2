"""LoRA-One's task machinery: the factored O(d²r) forms against their dense definitions, batching,
the LoRA-SB core gradient, the subspace metrics, Figure 3's minimiser distance and the MNIST net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lorarepro.adapters.matrix_inits import gaussian_init, lora_sb_init
from lorarepro.metrics.subspace import sin_theta, top_singular_subspace
from lorarepro.models.mlp import init_mlp, mlp_loss
from lorarepro.optim.preconditioned import factor_step
from lorarepro.problems.finetune_tasks import (
    FrozenSubspaceTask,
    LinearTask,
    make_linear_task,
    product_norm,
    rank_one_minimizer_distance,
    shared_matmul,
)

D = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


@pytest.fixture()
def task():
    return make_linear_task(30, 20, [1.0, 0.5, 0.25], 600, generator=torch.Generator().manual_seed(0))


def test_loss_and_risk_match_their_dense_definitions(task):
    A, B = _randn(6, 30, seed=1), _randn(20, 6, seed=2)
    E = B @ A - task.delta
    torch.testing.assert_close(task.loss(A, B), 0.5 * ((E @ task.sigma_hat) * E).sum())
    torch.testing.assert_close(task.risk(A, B), 0.5 * (E ** 2).sum())
    torch.testing.assert_close(task.g_nat, task.delta @ task.sigma_hat)


def test_risk_keeps_its_digits_near_the_optimum(task):
    """At BA = Δ + 1e-15·noise the risk is ~1e-30; an expanded ⟨PᵀP, QQᵀ⟩ form would return round-off ~1e-16."""
    svd = torch.linalg.svd(task.delta)
    B = svd.U[:, :3] * svd.S[:3]
    A = svd.Vh[:3] + 1e-15 * _randn(3, 30, seed=3)
    exact = 0.5 * float(((B @ A - task.delta) ** 2).sum())
    assert exact < 1e-28
    assert float(task.risk(A, B)) == pytest.approx(exact, rel=1e-3)


def test_product_norm_matches_the_formed_product():
    P, Q = _randn(4, 40, 7, seed=4), _randn(4, 7, 25, seed=5)
    torch.testing.assert_close(product_norm(P, Q), torch.linalg.matrix_norm(P @ Q))
    torch.testing.assert_close(product_norm(P, Q, ord=2), torch.linalg.matrix_norm(P @ Q, ord=2))


@pytest.mark.parametrize("x_shape, m_shape", [((3, 5, 4, 9), (3, 1, 9, 6)), ((5, 3, 4, 9), (1, 3, 9, 6)),
                                              ((2, 4, 9), (9, 6)), ((3, 4, 9), (3, 9, 6))])
def test_shared_matmul_equals_broadcast_matmul(x_shape, m_shape):
    X, M = _randn(*x_shape, seed=6), _randn(*m_shape, seed=7)
    torch.testing.assert_close(shared_matmul(X, M), X @ M)


def test_batched_task_equals_one_task_per_slice():
    tasks = [make_linear_task(12, 10, [1.0, 0.3], 200, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    batched = LinearTask(*(torch.stack([getattr(t, k) for t in tasks])[:, None]
                           for k in ("sigma_hat", "delta_left", "delta_right")))
    A, B = _randn(2, 3, 4, 12, seed=8), _randn(2, 3, 10, 4, seed=9)
    grad_A, grad_B = batched.grads(A, B)
    for i, t in enumerate(tasks):
        for j in range(3):
            gA, gB = t.grads(A[i, j], B[i, j])
            torch.testing.assert_close(grad_A[i, j], gA)
            torch.testing.assert_close(grad_B[i, j], gB)
            torch.testing.assert_close(batched.risk(A, B)[i, j], t.risk(A[i, j], B[i, j]))


def test_base_offset_shifts_the_target(task):
    """LoRA-GA's W♮ ← W♮ − B₀A₀: the adapter must fit Δ + B₀A₀, so (A₀, B₀) starts at the old risk."""
    A0, B0 = _randn(3, 30, seed=10), _randn(20, 3, seed=11)
    shifted = task.with_base_offset(B0, A0)
    torch.testing.assert_close(shifted.delta, task.delta + B0 @ A0)
    torch.testing.assert_close(shifted.risk(A0, B0), task.risk(torch.zeros_like(A0), torch.zeros_like(B0)))


def test_frozen_subspace_gradient_matches_autograd(task):
    U, R, Vh = lora_sb_init(task.g_nat, 3)
    core = FrozenSubspaceTask(task, U, Vh)
    R = (R + 0.1 * _randn(3, 3, seed=12)).requires_grad_()
    task.loss(R @ Vh, U).backward()
    torch.testing.assert_close(core.grad(R.detach()), R.grad)


def test_top_singular_subspace_spans_the_svd_subspace():
    M = _randn(50, 6, seed=13) * torch.tensor([5.0, 4, 3, 1, 0.5, 0.1], dtype=D)
    U = torch.linalg.svd(M, full_matrices=False).U[:, :3]
    left = top_singular_subspace(M, 3, side="left")
    torch.testing.assert_close(left.T @ left, torch.eye(3, dtype=D))
    assert sin_theta(U, left) < 1e-12
    right = top_singular_subspace(M.T, 3, side="right")
    assert sin_theta(U, right) < 1e-12
    with pytest.raises(ValueError, match="long one"):
        top_singular_subspace(M, 3, side="right")


def test_sin_theta_resolves_small_angles():
    """A rotation by 1e-10 reads as 1e-10 (the cos-based form bottoms out near 1e-8)."""
    Q = torch.linalg.qr(_randn(20, 20, seed=14)).Q
    theta = 1e-10
    u = Q[:, :1]
    v = np.cos(theta) * Q[:, :1] + np.sin(theta) * Q[:, 1:2]
    assert float(sin_theta(u, v)) == pytest.approx(theta, rel=1e-4)
    assert float(sin_theta(Q[:, :2], Q[:, 2:4])) == pytest.approx(1.0)


def test_theorem_3_1_fails_without_lora_init(task):
    """The alignment of Theorem 3.1 comes from B₀ = 0: from a random B₀ the output side is not in G♮'s span."""
    A, _ = gaussian_init(20, 30, 8, std=1e-2, generator=torch.Generator().manual_seed(15))
    B = 1e-2 * _randn(20, 8, seed=16)
    U_g = torch.linalg.svd(task.g_nat).U[:, :3]
    for _ in range(20):
        A, B = factor_step(A, B, *task.grads(A, B), 1 / 64)
    assert sin_theta(U_g, top_singular_subspace(B, 3, side="left")) > 1e-2


def test_minimizer_distance_matches_a_dense_search():
    w = np.array([2.0, 1.0])
    t = np.concatenate([-np.logspace(-3, 3, 400_001), np.logspace(-3, 3, 400_001)])
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=2) * 2, float(rng.normal() * 2)
        dense = np.sqrt((((a[None] - w[None] / t[:, None]) ** 2).sum(1) + (b - t) ** 2).min())
        assert rank_one_minimizer_distance(a, b, w) == pytest.approx(dense, rel=1e-6)
    assert rank_one_minimizer_distance(w / 2, 2.0, w) < 1e-12     # on the curve (t = 2)


def test_mlp_matches_torch_modules():
    weights = init_mlp([8, 16, 5], generator=torch.Generator().manual_seed(17), dtype=D)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16, bias=False), torch.nn.ReLU(), torch.nn.Linear(16, 5, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(weights[0])
        net[2].weight.copy_(weights[1])
    net = net.to(D)
    x, y = _randn(30, 8, seed=18), torch.arange(30) % 5
    torch.testing.assert_close(mlp_loss(x, y, weights), torch.nn.functional.cross_entropy(net(x), y))
    # A batch of weight sets gives one loss per set.
    stacked = [torch.stack([W, 2 * W]) for W in weights]
    torch.testing.assert_close(mlp_loss(x, y, stacked)[1], mlp_loss(x, y, [2 * W for W in weights]))
    assert all((W.abs() <= W.shape[1] ** -0.5).all() for W in weights)
