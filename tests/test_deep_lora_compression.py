"""Deep LoRA compression: orthogonal init, the invariant subspace from one gradient, Proposition 2.2."""

from __future__ import annotations

import pytest
import torch

from conftest import generator as gen
from lorarepro.adapters.compression import (
    compress,
    discrepant_steps,
    haar_orthogonal,
    invariant_complement,
    narrow_factors,
    orthogonal_factors,
)
from lorarepro.metrics.subspace import largest_angle
from lorarepro.problems.deep_factorization import (
    Completion,
    chain_gradients,
    descend,
    end_to_end,
    gd_step,
    low_rank_target,
    observation_mask,
)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def full_width(d, depth, eps, seed):
    return [w.unsqueeze(0) for w in orthogonal_factors(d, d, d, depth, eps, generator=gen(seed))]


def test_orthogonal_init_shapes_and_scales():
    q = haar_orthogonal(12, generator=gen(0))
    torch.testing.assert_close(q @ q.T, torch.eye(12, dtype=torch.float64))
    torch.testing.assert_close(q, haar_orthogonal(12, generator=gen(0)))
    factors = orthogonal_factors(7, 5, 4, 3, [0.1, 0.2, 0.3], generator=gen(1))
    assert [tuple(w.shape) for w in factors] == [(4, 7), (4, 4), (5, 4)]
    # Each factor is ε_l times a partial isometry: the smaller Gram matrix is ε_l²·I.
    for w, eps in zip(factors, [0.1, 0.2, 0.3]):
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(gram, eps**2 * torch.eye(min(w.shape), dtype=torch.float64))
    assert [tuple(w.shape) for w in narrow_factors(7, 5, 3, 3, 0.1, generator=gen(1))] == [(6, 7), (6, 6), (5, 6)]


def test_invariant_complement_is_the_complement_of_the_null_space_intersection():
    """S⊥ from one SVD equals the complement of N(G_h) ∩ N(G_hᵀ W_1) computed from null spaces directly."""
    d, h, eps = 15, 3, 0.2
    first = eps * haar_orthogonal(d, generator=gen(2))
    grad = torch.randn(d, h, generator=gen(3), dtype=torch.float64) @ torch.randn(h, d, generator=gen(4),
                                                                                   dtype=torch.float64)
    basis = invariant_complement(grad, first, h, eps)
    torch.testing.assert_close(basis.T @ basis, torch.eye(2 * h, dtype=torch.float64))
    # Null space of the stacked [G; GᵀW_1] (the last d − 2h right singular vectors).
    _, s, vh = torch.linalg.svd(torch.cat([grad, grad.T @ first]))
    assert s[2 * h - 1] > 1e-8 and s[2 * h] < 1e-12
    null = vh[2 * h:].T
    assert (basis.T @ null).abs().max() < 1e-12


def test_compressed_factors_reproduce_the_product_at_init():
    d, depth, eps, rank = 16, 3, 1e-2, 2
    factors = full_width(d, depth, eps, 5)
    problem = Completion(low_rank_target(d, d, rank, generator=gen(6)))
    grad = chain_gradients(factors, problem.grad_output(end_to_end(factors)))[0]
    compressed = compress(factors[0], grad, end_to_end(factors), rank=rank, scales=[eps] * depth)
    chain = compressed.factors
    assert [tuple(w.shape[-2:]) for w in chain] == [(4, d), (4, 4), (4, 4), (4, 4), (d, 4)]
    # U_{L,1} is orthonormal and f_C(0) = W_{L:1}(0)·V_{1,1}V_{1,1}ᵀ.
    left, right = compressed.left[0], compressed.right[0]
    torch.testing.assert_close(left.T @ left, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(end_to_end(chain)[0], end_to_end(factors)[0] @ right @ right.T)


def test_proposition_2_2_compressed_trajectory_stays_within_the_bound():
    d, rank, depth, eps, step = 16, 2, 3, 0.05, 4.0
    problem = Completion(low_rank_target(d, d, rank, generator=gen(7)))
    factors = full_width(d, depth, eps, 8)
    grad = chain_gradients(factors, problem.grad_output(end_to_end(factors)))[0]
    compressed = compress(factors[0], grad, end_to_end(factors), rank=rank, scales=[eps] * depth)
    outputs = {"original": [], "compressed": []}
    for name, chain, steps in (("original", factors, [step] * depth),
                               ("compressed", compressed.factors, discrepant_steps(step, 0.0, depth))):
        descend(chain, problem, steps, iters=1500, check_every=50,
                monitor=lambda c, out=outputs[name]: out.append((c.output[0].clone(), c.loss.item())))
    bound = (d - 2 * rank) * eps ** (2 * depth)
    distances = [(a - b).square().sum().item() for (a, _), (b, _) in zip(*outputs.values())]
    assert max(distances) <= bound * (1 + 1e-6)
    # Not vacuous: both models learned the target along the compared run (the original down to its floor
    # ½·(d − 2r)·ρ^{2L}/d², the part of ‖f − f_C‖² the bound accounts for).
    assert outputs["compressed"][-1][1] < 1e-6 * outputs["compressed"][0][1]
    assert outputs["original"][-1][1] < 1e-6 * outputs["original"][0][1]


def test_discrepant_steps_freeze_or_slow_the_outer_factors():
    assert discrepant_steps(2.0, 0.01, 3) == [0.02, 2.0, 2.0, 2.0, 0.02]
    d, depth, eps, rank = 16, 3, 1e-2, 2
    problem = Completion(low_rank_target(d, d, rank, generator=gen(9)), observation_mask(d, d, 0.5, generator=gen(9)))
    factors = full_width(d, depth, eps, 10)
    grad = chain_gradients(factors, problem.grad_output(end_to_end(factors)))[0]
    chain = compress(factors[0], grad, end_to_end(factors), rank=rank, scales=[eps] * depth).factors
    frozen, slow = [w.clone() for w in chain], [w.clone() for w in chain]
    for _ in range(5):
        gd_step(frozen, problem, discrepant_steps(50.0, 0.0, depth))
        gd_step(slow, problem, discrepant_steps(50.0, 0.01, depth))
    assert torch.equal(frozen[0], chain[0]) and torch.equal(frozen[-1], chain[-1])
    assert not torch.equal(slow[0], chain[0]) and not torch.equal(slow[-1], chain[-1])
    assert not torch.equal(frozen[1], chain[1])


def test_gradient_subspace_matches_the_exact_invariant_subspace_for_small_init():
    """For small ε the subspace found from G_1 is the exact one of Lemma E.1 (from Φ), up to O(ε^L)."""
    d, rank, depth, eps = 20, 2, 3, 1e-3
    target = low_rank_target(d, d, rank, generator=gen(11))
    factors = full_width(d, depth, eps, 12)
    product = end_to_end(factors)[0]
    grad = chain_gradients(factors, Completion(target).grad_output(end_to_end(factors)))[0][0]
    from_gradient = invariant_complement(grad, factors[0][0], rank, eps)
    # Lemma E.1: S = N(Φ) ∩ N(Φᵀ W_{L:1}(0)), i.e. the same construction with G = Φ and W = W_{L:1}(0).
    exact = invariant_complement(target, product, rank, eps**depth)
    # First-order perturbation: G_1 = −W_{L:2}ᵀΦ + ε^{2L−2}·W_1, a relative perturbation of ε^L/σ_{r*}(Φ).
    assert largest_angle(exact, from_gradient) < 10 * eps**depth / torch.linalg.svdvals(target)[rank - 1]
