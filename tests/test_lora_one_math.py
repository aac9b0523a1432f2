"""LoRA-One's math: task (3) gradients, the inits, the preconditioner, Theorems 3.1 and 3.3."""

from __future__ import annotations

import pytest
import torch

from lorarepro.adapters.matrix_inits import (
    gaussian_init,
    lora_ga_init,
    lora_one_init,
    lora_sb_init,
    spectral_init,
    top_svd,
)
from lorarepro.metrics.subspace import sin_theta
from lorarepro.optim.preconditioned import factor_step, precondition_A, precondition_B
from lorarepro.problems.finetune_tasks import make_linear_task, make_relu_task

D = torch.float64


@pytest.fixture()
def task():
    return make_linear_task(30, 20, [1.0, 1.0, 1.0, 1.0], 480, generator=torch.Generator().manual_seed(0))


def test_linear_gradients_match_autograd(task):
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(8, 30, generator=gen, dtype=D, requires_grad=True)
    B = torch.randn(20, 8, generator=gen, dtype=D, requires_grad=True)
    task.loss(A, B).backward()
    grad_A, grad_B = task.grads(A.detach(), B.detach())
    torch.testing.assert_close(grad_A, A.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_B, B.grad, rtol=1e-10, atol=1e-12)
    # G♮ is the negative full-weight gradient at ΔW = 0.
    W = torch.zeros(20, 30, dtype=D, requires_grad=True)
    (0.5 * (((W - task.delta) @ task.sigma_hat) * (W - task.delta)).sum()).backward()
    torch.testing.assert_close(task.g_nat, -W.grad)


def test_relu_gradients_match_autograd():
    relu = make_relu_task(12, 7, [1.0, 0.5], 200, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(3)
    A = (0.1 * torch.randn(4, 12, generator=gen, dtype=D)).requires_grad_()
    B = (0.1 * torch.randn(7, 4, generator=gen, dtype=D)).requires_grad_()
    relu.loss(A, B).backward()
    grad_A, grad_B = relu.grads(A.detach(), B.detach())
    torch.testing.assert_close(grad_A, A.grad)
    torch.testing.assert_close(grad_B, B.grad)


def test_spectral_init_equals_the_one_step_gradient_when_over_ranked(task):
    A, B = spectral_init(task.g_nat, 8)
    assert A.shape == (8, 30) and B.shape == (20, 8)
    torch.testing.assert_close(B @ A, task.g_nat, rtol=0, atol=1e-10)


def test_theorem_3_3_spectral_init_bound_on_random_draws():
    for seed in range(20):
        t = make_linear_task(40, 25, torch.rand(4, generator=torch.Generator().manual_seed(100 + seed)) + 0.5,
                             200 + 40 * seed, generator=torch.Generator().manual_seed(seed))
        A, B = spectral_init(t.g_nat, 6)
        lhs = torch.linalg.matrix_norm(B @ A - t.delta, ord=2)
        rhs = torch.linalg.matrix_norm(t.sigma_hat - torch.eye(40, dtype=D), ord=2) * torch.linalg.matrix_norm(
            t.delta, ord=2)
        assert lhs <= rhs + 1e-12


def test_theorem_3_1_output_side_stays_in_the_gradient_subspace(task):
    """With LoRA-init (B₀ = 0), GD keeps B_t's top-r* left singular space equal to G♮'s for t ≥ 1."""
    A, B = gaussian_init(20, 30, 8, std=1e-2, generator=torch.Generator().manual_seed(4))
    U_g = top_svd(task.g_nat, 4).U
    for _ in range(60):
        grad_A, grad_B = task.grads(A, B)
        A, B = factor_step(A, B, grad_A, grad_B, 1 / 64)
        assert sin_theta(U_g, top_svd(B, 4).U) <= 1e-6


def test_lora_one_init_is_the_normalised_scaled_projection(task):
    neg_grad = task.g_nat + 0.01 * torch.randn(20, 30, generator=torch.Generator().manual_seed(5), dtype=D)
    A, B = lora_one_init(neg_grad, 4, scale=16.0, svd_method="full")
    svd = top_svd(neg_grad, 4)
    expected = (svd.U * svd.S.unsqueeze(-2)) @ svd.Vh / svd.S[0] / 16.0
    torch.testing.assert_close(B @ A, expected)
    # The top-r column space of B·A is the top-r left singular space of −∇W.
    assert sin_theta(svd.U, top_svd(B @ A, 4).U) < 1e-6  # sqrt(1 - cos²) resolves ~1e-8
    A_low, B_low = lora_one_init(neg_grad, 4, scale=16.0, svd_method="lowrank", oversample=20, niter=16)
    torch.testing.assert_close(B_low @ A_low, expected, rtol=1e-6, atol=1e-8)


def test_lora_ga_uses_directions_one_to_r_and_r_plus_one_to_two_r(task):
    grad = -task.g_nat + 0.1 * torch.randn(20, 30, generator=torch.Generator().manual_seed(6), dtype=D)
    A, B = lora_ga_init(grad, 3, gamma=16.0)
    U, S, Vh = torch.linalg.svd(grad, full_matrices=False)
    factor = 20 ** 0.25 / 4.0
    torch.testing.assert_close(A, Vh[:3] * factor)
    torch.testing.assert_close(B, U[:, 3:6] * factor)
    with pytest.raises(ValueError, match="2r"):
        lora_ga_init(grad, 11, gamma=16.0)


def test_lora_sb_freezes_the_singular_vectors(task):
    U, R, Vh = lora_sb_init(task.g_nat, 4)
    torch.testing.assert_close(U @ R @ Vh, task.g_nat, rtol=0, atol=1e-10)
    assert torch.count_nonzero(R - torch.diag(torch.diagonal(R))) == 0


def test_preconditioner_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(7)
    A, B = torch.randn(3, 5, generator=gen, dtype=D), torch.randn(4, 3, generator=gen, dtype=D)
    gA, gB = torch.randn(3, 5, generator=gen, dtype=D), torch.randn(4, 3, generator=gen, dtype=D)
    lam = 0.1
    PA = torch.inverse(B.T @ B + lam * torch.eye(3, dtype=D))
    PB = torch.inverse(A @ A.T + lam * torch.eye(3, dtype=D))
    torch.testing.assert_close(precondition_A(gA, B, lam), PA @ gA)
    torch.testing.assert_close(precondition_B(gB, A, lam), gB @ PB)
    torch.testing.assert_close(precondition_A(gA, B, lam, normalize=True), PA @ gA / torch.linalg.norm(PA))
    # λ = 0 uses the pseudo-inverse, so a rank-deficient factor is fine.
    B_low = torch.cat([B[:, :2], torch.zeros(4, 1, dtype=D)], dim=1)
    torch.testing.assert_close(precondition_A(gA, B_low, 0.0), torch.linalg.pinv(B_low.T @ B_low) @ gA)
    A1, B1 = factor_step(A, B, gA, gB, 0.5, preconditioned=True, lam=lam)
    torch.testing.assert_close(A1, A - 0.5 * PA @ gA)
    torch.testing.assert_close(B1, B - 0.5 * gB @ PB)
