"""Meta-LoRA math on small instances: the data model, the population losses and their gradients,
retraining (SR, LoRA-ML) and fine-tuning, and the theory statements the experiments check."""

from __future__ import annotations

import pytest
import torch

from lorarepro.metrics.spectral import tail_energy
from lorarepro.optim import meta_retraining as mr
from lorarepro.problems import multitask as mt

SEEDS = [0, 1, 2]


def exact_moments(truth: mt.GroundTruth) -> mr.Moments:
    """Population moments of the retraining tasks (σ_x = 1, no noise): Σ_xx = I, Σ_yx = W_t*."""
    W = truth.task_weights[:, :-1]
    return mr.Moments(torch.eye(W.shape[-1], dtype=W.dtype).expand_as(W), W)


def test_trial_draws_do_not_depend_on_the_batch():
    both = mt.sample_ground_truth([4, 7], T=3, d=5, k=2, shallow=True)
    alone = mt.sample_ground_truth([7], T=3, d=5, k=2, shallow=True)
    for a, b in [(both.A_star, alone.A_star), (both.U_star, alone.U_star), (both.c_star, alone.c_star)]:
        torch.testing.assert_close(a[1:], b, rtol=0, atol=0)
    x_both = mt.sample_test_data(both, [4, 7], 9, 1.0, 0.1).X
    assert torch.equal(x_both[1:], mt.sample_test_data(alone, [7], 9, 1.0, 0.1).X)
    assert not torch.equal(x_both, mt.sample_test_data(both, [4, 7], 10, 1.0, 0.1).X[:, :9])


def test_population_loss_matches_monte_carlo():
    """E[L_t^n(A)] = σ_x² · ½‖A* + U_t*U_t*ᵀ − A‖²_F + ½ d σ_ε² (eq. 8 with d-dimensional noise)."""
    d, sigma_x, sigma_eps = 4, 1.5, 0.3
    truth = mt.sample_ground_truth([0], T=2, d=d, k=1)
    A = torch.randn(1, d, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    data = mt.sample_retraining_data(truth, [0], 200_000, sigma_x, sigma_eps)
    empirical = 0.5 * (data.Y - data.X @ A[:, None].transpose(-2, -1)).pow(2).sum(-1).mean(-1)
    population = (empirical - 0.5 * d * sigma_eps**2) / sigma_x**2
    torch.testing.assert_close(population, mt.population_task_loss(A, truth)[:, :-1], rtol=0.02, atol=0)


def test_meta_objective_gradient_matches_autograd():
    truth = mt.sample_ground_truth(SEEDS, T=3, d=6, k=2)
    A = torch.randn(3, 6, 6, dtype=torch.float64, requires_grad=True)
    U = torch.randn(3, 3, 6, 2, dtype=torch.float64, requires_grad=True)
    mt.meta_population_loss(A, U, truth).sum().backward()
    gA, gU = mt.meta_population_grads(A.detach(), U.detach(), truth)
    torch.testing.assert_close(gA, A.grad)
    torch.testing.assert_close(gU, U.grad)


def test_reduced_loss_is_the_objective_at_the_critical_A_and_its_gradient_is_4BU():
    truth = mt.sample_ground_truth(SEEDS, T=4, d=7, k=2)
    U = torch.randn(3, 4, 7, 2, dtype=torch.float64, requires_grad=True)
    U_star = truth.U_star[:, :-1]
    A = mt.meta_critical_A(U.detach(), truth)
    gA, _ = mt.meta_population_grads(A, U.detach(), truth)
    assert gA.abs().max() < 1e-10  # eq. (32) is the minimiser in A
    torch.testing.assert_close(2 * mt.meta_population_loss(A, U.detach(), truth), mt.reduced_loss(U.detach(), U_star))
    mt.reduced_loss(U, U_star).sum().backward()
    torch.testing.assert_close(mt.reduced_grad(U.detach(), U_star), U.grad)


def test_moment_gradient_matches_autograd_of_the_sample_loss():
    truth = mt.sample_ground_truth([0, 1], T=2, d=5, k=1)
    data = mt.sample_retraining_data(truth, [0, 1], 50, 1.0, 0.1)
    W = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * (data.Y - mt.predict(W, data.X)).pow(2).sum(-1).mean(-1)
    loss.sum().backward()
    m = mr.Moments.of(data.X, data.Y)
    torch.testing.assert_close(m.grad(W.detach()), W.grad)
    D = W.detach() - truth.task_weights[:, :-1]
    torch.testing.assert_close(m.energy(D), mt.prediction_error(W.detach(), truth, data.X, truth.task_weights[:, :-1]))


def test_sr_converges_to_the_pooled_solution():
    truth = mt.sample_ground_truth(SEEDS, T=3, d=5, k=1)
    A = mr.sr_linear(exact_moments(truth), steps=2000, lr=0.03)
    torch.testing.assert_close(A, mt.sr_population_solution(truth))


@pytest.mark.parametrize("T", [3, 4])
def test_lora_ml_recovers_A_star_for_three_or_more_tasks(T):
    """Theorem 8: zero loss of (14) with T ≥ 3 pins Â = A*; from noiseless samples LoRA-ML gets there."""
    seeds = [0, 1]
    truth = mt.sample_ground_truth(seeds, T=T, d=6, k=1)
    data = mt.sample_retraining_data(truth, seeds, 400, 1.0, 0.0)
    U0 = 0.1 * mt.randn(seeds, mt.RETRAIN_INIT, (T, 6, 1))
    A, U = mr.lora_ml_linear(mr.Moments.of(data.X, data.Y), U0, steps=4000, inner_steps=10, lr_A=0.03, lr_U=0.003)
    assert (A - truth.A_star).pow(2).sum((-2, -1)).max() < 1e-6
    torch.testing.assert_close(mt.gram(U), mt.gram(truth.U_star[:, :-1]), atol=1e-3, rtol=0)


def test_sr_leaves_a_residual_of_rank_k_times_T_plus_1():
    """Prop. 3: A* + U_{T+1}*U_{T+1}*ᵀ − Â_SR has rank k(T+1), so rank r < k(T+1) LoRA cannot fit it."""
    k, T = 2, 3
    truth = mt.sample_ground_truth(SEEDS, T=T, d=12, k=k)
    residual = truth.task_weights[:, -1] - mt.sr_population_solution(truth)
    assert tail_energy(residual, k * (T + 1) - 1).min() > 1e-3
    assert tail_energy(residual, k * (T + 1)).max() < 1e-20 * residual.pow(2).sum()


def test_theorem_2_expectation_is_T_minus_1_not_the_stated_constant():
    T, k, d = 3, 1, 6
    U_star = mt.randn(range(20_000), mt.TRUTH, (T, d, k))
    estimate = mt.sr_excess(U_star).mean().item()
    assert estimate == pytest.approx(mt.sr_excess_expected(T, k, d), rel=0.03)
    assert abs(estimate / mt.sr_excess_paper(T, k, d) - 1) > 0.3


def test_e1_family_has_zero_loss_away_from_A_star():
    s = torch.tensor([0.0, 0.5, 1.5], dtype=torch.float64)
    truth, A, U = mt.e1_family(s)
    assert mt.meta_population_loss(A, U, truth).abs().max() < 1e-24
    distance = (A - truth.A_star).pow(2).sum((-2, -1))
    assert distance[0] == pytest.approx(0.0, abs=1e-24) and (distance[1:] > 0.1).all()


def test_linear_finetuning_fits_the_rank_k_residual():
    """From Â = A*, the test task is exactly rank k away and GD on the adapter drives the error to zero."""
    truth = mt.sample_ground_truth(SEEDS, T=3, d=6, k=1)
    test = mt.sample_test_data(truth, SEEDS, 200, 1.0, 0.0)
    m = mr.Moments.of(test.X, test.Y)
    Q0, V0 = (0.1 * mt.randn(SEEDS, mt.FINETUNE_INIT, (6, 1), i) for i in (0, 1))
    W_star = truth.task_weights[:, -1]
    _, _, trace = mr.lora_finetune_linear(truth.A_star, m, Q0, V0, 3000, 0.005, lambda W: m.energy(W - W_star))
    assert trace.shape == (3, 3001)
    assert (trace[:, -1] < 1e-8).all() and (trace[:, 0] > 1e-2).all()


def test_shallow_finetuning_trace_is_the_prediction_error():
    seeds = [0, 1]
    truth = mt.sample_ground_truth(seeds, T=2, d=5, k=1, shallow=True)
    test = mt.sample_test_data(truth, seeds, 30, 1.0, 0.1)
    W = truth.A_star + 0.1
    V0 = mt.rand_uniform(seeds, mt.FINETUNE_INIT, (5, 1), 5**-0.5)
    Q, V, trace = mr.lora_finetune_shallow(W, truth.c_star, test, torch.zeros_like(V0), V0, 50, mr.AdamW(lr=1e-2))
    W_star = truth.task_weights[:, -1]
    torch.testing.assert_close(trace[:, 0], mt.prediction_error(W, truth, test.X, W_star))
    torch.testing.assert_close(trace[:, -1], mt.prediction_error(W + Q @ V.transpose(-2, -1), truth, test.X, W_star))
    assert (trace[:, -1] < trace[:, 0]).all()


def test_shallow_retraining_runs_trials_independently():
    """AdamW is elementwise and the loss a sum over trials, so a trial's result ignores its batch mates."""
    def retrain(seeds):
        truth = mt.sample_ground_truth(seeds, T=2, d=4, k=1, shallow=True)
        data = mt.sample_retraining_data(truth, seeds, 20, 1.0, 0.1)
        W0 = mt.rand_uniform(seeds, mt.RETRAIN_INIT, (4, 4), 0.5, 0)
        c0 = mt.rand_uniform(seeds, mt.RETRAIN_INIT, (4,), 0.5, 1)
        V0 = mt.rand_uniform(seeds, mt.RETRAIN_INIT, (2, 4, 1), 0.5, 2)
        return mr.lora_ml_shallow(data, W0, c0, torch.zeros_like(V0), V0, 30, mr.AdamW())

    torch.testing.assert_close(retrain([3, 8])[0][1:], retrain([8])[0])
