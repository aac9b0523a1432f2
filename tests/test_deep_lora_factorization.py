"""Deep matrix factorization: gradients, the in-place GD step, the trainer, and Theorem 2.1's invariant."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import generator as gen
from lorarepro.adapters.compression import orthogonal_factors
from lorarepro.metrics.dynamics import block_relative_error, nearest_block, singular_vector_angles
from lorarepro.problems.deep_factorization import (
    Completion,
    chain_gradients,
    descend,
    end_to_end,
    gd_step,
    low_rank_target,
    nonlinear_end_to_end,
    observation_mask,
    rho_recursion,
    step_flops,
)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def batched(factor_lists):
    return [torch.stack(layer) for layer in zip(*factor_lists)]


@pytest.fixture
def masked_problem():
    target = low_rank_target(9, 7, 2, generator=gen(0))
    return Completion(target, observation_mask(9, 7, 0.6, generator=gen(1)))


def test_target_has_the_asked_rank_and_mask_the_asked_count():
    target = low_rank_target(30, 20, 3, generator=gen(0))
    s = torch.linalg.svdvals(target)
    assert s[2] > 1.0 and s[3] < 1e-12
    mask = observation_mask(30, 20, 0.3, generator=gen(0))
    assert mask.sum().item() == int(0.3 * 600)
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_chain_gradients_match_autograd(masked_problem):
    # Rectangular factors (narrow inner width), two trials in a batch, a mask.
    factors = batched([orthogonal_factors(7, 9, 4, 3, 0.7, generator=gen(s)) for s in (2, 3)])
    leaves = [w.clone().requires_grad_() for w in factors]
    masked_problem.loss(end_to_end(leaves)).sum().backward()
    grads = chain_gradients(factors, masked_problem.grad_output(end_to_end(factors)))
    for leaf, grad in zip(leaves, grads):
        torch.testing.assert_close(grad, leaf.grad, rtol=1e-12, atol=1e-15)


def test_nonlinear_end_to_end_is_relu_between_layers():
    w = [torch.randn(5, 5, generator=gen(s), dtype=torch.float64) for s in range(3)]
    expected = w[2] @ torch.relu(w[1] @ torch.relu(w[0]))
    torch.testing.assert_close(nonlinear_end_to_end(w), expected)


def test_gd_step_is_update_4_with_weight_decay_and_per_factor_steps(masked_problem):
    factors = batched([orthogonal_factors(7, 9, 5, 4, 0.5, generator=gen(s)) for s in (4, 5)])
    steps, decay = [0.0, 3.0, 2.0, 0.5], 0.1
    grads = chain_gradients(factors, masked_problem.grad_output(end_to_end(factors)))
    expected = [(1 - s * decay) * w - s * g if s else w for w, g, s in zip(factors, grads, steps)]
    updated = [w.clone() for w in factors]
    gd_step(updated, masked_problem, steps, weight_decay=decay)
    for got, want in zip(updated, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert torch.equal(updated[0], factors[0])  # a zero step freezes the factor


def test_step_flops_counts_six_products_for_a_square_depth_3_chain():
    factors = [torch.zeros(1, 10, 10, dtype=torch.float64)] * 3
    assert step_flops(factors, [1.0] * 3) == 6 * 2 * 10**3
    # Freezing W_1 saves its gradient's sweep: W_2ᵀ·B is no longer needed.
    assert step_flops(factors, [0.0, 1.0, 1.0]) == 5 * 2 * 10**3


def test_descend_batches_trials_like_separate_runs(masked_problem):
    per_seed = [orthogonal_factors(7, 9, 9, 3, 0.3, generator=gen(s)) for s in (6, 7, 8)]
    steps = [5.0] * 3
    together = descend(batched(per_seed), masked_problem, steps, iters=3000, check_every=50, tol=1e-6)
    alone = torch.cat([descend(batched([f]), masked_problem, steps, iters=3000, check_every=50, tol=1e-6)
                       for f in per_seed])
    assert torch.isfinite(together).all()
    torch.testing.assert_close(together, alone)
    assert (together % 50 == 0).all()


def test_descend_reports_nan_for_trials_that_never_converge(masked_problem):
    factors = batched([orthogonal_factors(7, 9, 9, 3, 0.3, generator=gen(9))])
    reached = descend(factors, masked_problem, [1e-3] * 3, iters=200, check_every=100, tol=1e-12)
    assert math.isnan(reached.item())


@pytest.mark.parametrize("eps, decay", [((1.0, 1.0, 1.0), 0.0), ((0.9, 1.1, 0.7), 0.05)])
def test_theorem_2_1_invariant(eps, decay):
    """d − 2r singular values of each W_l(t) equal ρ_l(t) of (6), and their subspaces never rotate."""
    d, rank, depth, step, iters = 20, 2, 3, 2.0, 40
    problem = Completion(low_rank_target(d, d, rank, generator=gen(10)))
    factors = batched([orthogonal_factors(d, d, d, depth, eps, generator=gen(11))])
    history = []
    descend(factors, problem, [step] * depth, iters=iters, check_every=1, weight_decay=decay / step,
            monitor=lambda c: history.append([w[0].clone() for w in c.factors]))
    # (6) is stated for the sum loss: our mean-loss step is η·d², and λ enters as η_sum·λ_sum = step·λ.
    rho = rho_recursion(eps, step / d**2, iters, weight_decay=decay / step * d**2)
    for layer in range(depth):
        u, s, vh = torch.linalg.svd(torch.stack([h[layer] for h in history]))
        block = nearest_block(s, rho[:, layer], d - 2 * rank)
        assert block_relative_error(s, rho[:, layer], block).max() < 1e-8
        for vectors in (u, vh.mT):
            angles = singular_vector_angles(vectors, block)[1:].gather(1, block[1:])
            assert angles.max() < 1e-6
        # Not vacuous: the other 2r singular values do move away from ρ.
        assert (s[-1] - rho[-1, layer]).abs().max() > 1e-2


def test_rho_stays_within_lemma_e2_bounds():
    eps, eta, decay, iters = 0.5, 0.8, 0.1, 200
    rho = rho_recursion([eps] * 3, eta, iters, weight_decay=decay)[:, 0]
    t = torch.arange(iters + 1, dtype=torch.float64)
    assert torch.all(rho <= eps * (1 - eta * decay) ** t + 1e-15)
    assert torch.all(rho >= eps * (1 - eta * (decay + eps)) ** t - 1e-15)
