"""NTK features of a last-block fine-tuning problem: exact Jacobians, the exact reduction to the span of
the training Jacobians, the linearised model to first order, and the optimisers on top of them."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaForMaskedLM

from lorarepro.models.ntk_features import (
    Features,
    LastLayerReadout,
    PromptReadout,
    block_features,
    block_objective,
    compress_outer_sums,
    differentiable_block_outputs,
    last_layer_inputs,
    read_positions,
    reduce,
)
from lorarepro.optim.prox import nuclear_norm, svt
from lorarepro.optim.regularized import (
    FullState,
    LoraState,
    cross_entropy_nuclear_dual,
    fista,
    lora_gd,
    minibatches,
    proximal_gd,
)
from lorarepro.problems.ntk_synthetic import synthetic_features

LABEL_IDS = [3, 7]


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is much faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_lm():
    """A 2-layer Llama (hidden 32, 4 query / 2 key-value heads) on 6 right-padded sequences."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    lengths = torch.tensor([9, 5, 7, 9, 3, 8])
    ids = torch.randint(0, 50, (6, 9))
    mask = (torch.arange(9) < lengths[:, None]).long()
    block = LastLayerReadout(model, LABEL_IDS).eval()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    return model, block, ids, mask, lengths, labels


def test_the_block_reproduces_the_full_models_label_logits(tiny_lm):
    model, block, ids, mask, lengths, labels = tiny_lm
    features = block_features(block, block.targets, last_layer_inputs(model, ids, mask, lengths - 1, batch_size=4), labels)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    expected = logits[torch.arange(6), lengths - 1][:, LABEL_IDS]
    torch.testing.assert_close(features.f0, expected.double(), atol=1e-5, rtol=1e-5)


def test_factored_jacobians_equal_autograd_and_have_the_predicted_ranks(tiny_lm):
    model, block, ids, mask, lengths, labels = tiny_lm
    batches = last_layer_inputs(model, ids, mask, lengths - 1, batch_size=4)
    features = block_features(block, block.targets, batches, labels)
    for name in block.targets:
        u, v = features.factors[name]
        weight = block.get_submodule(name).weight.detach()
        for i in range(6):
            batch, row = divmod(i, 4)
            for j in range(2):
                leaf = weight.clone().requires_grad_()
                out = differentiable_block_outputs(block, batches[batch], {name: leaf})
                dense, = torch.autograd.grad(out[row, j], leaf)
                torch.testing.assert_close(u[i, j] @ v[i, j].T, dense, atol=1e-6 * dense.abs().max(), rtol=1e-4)
    # read at one position: G_q has rank 1; G_v has rank ≤ #query heads (4)
    assert features.factors[block.targets[0]][0].shape[-1] == 1
    assert features.factors[block.targets[1]][0].shape[-1] <= 4


def test_masked_lm_readouts_match_the_full_model_at_the_mask_slot():
    torch.manual_seed(1)
    config = RobertaConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=40, pad_token_id=1)
    model = RobertaForMaskedLM(config).eval()
    ids = torch.randint(5, 40, (5, 8))
    mask = (torch.arange(8) < torch.tensor([8, 6, 7, 5, 8])[:, None]).long()
    ids[torch.arange(5), torch.tensor([3, 2, 5, 1, 6])] = 4  # the mask token
    read = read_positions(ids, mask, mask_token_id=4)
    labels = torch.tensor([0, 1, 1, 0, 1])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits[torch.arange(5), read][:, LABEL_IDS]
    last = LastLayerReadout(model, LABEL_IDS).eval()
    features = block_features(last, last.targets, last_layer_inputs(model, ids, mask, read, batch_size=3), labels)
    torch.testing.assert_close(features.f0, expected.double(), atol=1e-5, rtol=1e-5)
    whole = PromptReadout(model, LABEL_IDS).eval()
    everything = block_features(whole, whole.targets, [(ids, mask, read)], labels)
    torch.testing.assert_close(everything.f0, expected.double(), atol=1e-5, rtol=1e-5)
    assert len(everything.factors) == 4  # W_q and W_v of both layers
    for name in whole.targets:  # every path counts, also through the later layers' W_q and W_v
        leaf = whole.get_submodule(name).weight.detach().clone().requires_grad_()
        dense, = torch.autograd.grad(differentiable_block_outputs(whole, (ids, mask, read), {name: leaf})[2, 1], leaf)
        u, v = everything.factors[name]
        torch.testing.assert_close(u[2, 1] @ v[2, 1].T, dense, atol=1e-6 * dense.abs().max(), rtol=1e-4)
    assert everything.factors[whole.targets[0]][0].shape[-1] > 1  # below the last layer, every position matters


def test_compressed_outer_sums_are_exact():
    gen = torch.Generator().manual_seed(1)
    g, h = torch.randn(3, 2, 7, 5, generator=gen), torch.randn(3, 7, 6, generator=gen)
    h[:, 5:] = 0  # padded positions
    u, v = compress_outer_sums(g, h)
    torch.testing.assert_close(u @ v.transpose(-1, -2), g.double().transpose(-1, -2) @ h.double().unsqueeze(1))
    assert u.shape[-1] == 5  # rank ≤ min(T_real, m)
    torch.testing.assert_close(v.transpose(-1, -2) @ v, torch.eye(5, dtype=torch.float64).expand(3, 2, 5, 5))


def test_reduction_is_exact_for_every_update():
    features = synthetic_features(6, shape=(12, 9), positions=3, generator=torch.Generator().manual_seed(2))
    reduced = reduce(features)
    gen = torch.Generator().manual_seed(3)
    deltas = {name: torch.randn(12, 9, generator=gen, dtype=torch.float64) for name in features.factors}
    projected = {name: p.T @ deltas[name] @ q for name, (p, q) in reduced.bases.items()}
    eye = torch.eye(9, dtype=torch.float64)
    torch.testing.assert_close(reduced.outputs(projected), features.outputs({k: (d, eye) for k, d in deltas.items()}))
    for name, (p, q) in reduced.bases.items():  # 6 examples x 2 outputs x rank 3 bound the bases
        assert p.shape[1] <= 12 and q.shape[1] <= min(9, 6 * 3 * 2)
        torch.testing.assert_close(reduced.lift(name, projected[name]), p @ p.T @ deltas[name] @ q @ q.T)


def _to_double(obj):
    if torch.is_tensor(obj):
        return obj.double() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _to_double(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_to_double(v) for v in obj)
    return obj


def test_linearised_outputs_are_first_order_accurate(tiny_lm):
    model, block, ids, mask, lengths, labels = tiny_lm
    batches = last_layer_inputs(model, ids, mask, lengths - 1, batch_size=6)
    features = block_features(block, block.targets, batches, labels)
    gen = torch.Generator().manual_seed(4)
    direction = {n: torch.randn(block.get_submodule(n).weight.shape, generator=gen, dtype=torch.float64)
                 for n in block.targets}
    errors = []
    for eps in (1e-2, 5e-3):
        weights = {n: block.get_submodule(n).weight.double() + eps * d for n, d in direction.items()}
        actual = differentiable_block_outputs(block.double(), _to_double(batches[0]), weights)
        block.float()
        eye = {n: (eps * d, torch.eye(d.shape[1], dtype=torch.float64)) for n, d in direction.items()}
        errors.append(float((actual.detach() - features.outputs(eye)).abs().max()))
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.15)  # the remainder is O(ε²)


def test_linearised_training_follows_the_actual_model_to_first_order(tiny_lm):
    """Full fine-tuning of the actual block and of its linearisation: the losses along the two
    trajectories agree up to O(step²), since value and gradient coincide at the pretrained weights."""
    model, block, ids, mask, lengths, labels = tiny_lm
    batches = last_layer_inputs(model, ids, mask, lengths - 1, batch_size=6)
    reduced = reduce(block_features(block, block.targets, batches, labels))
    actual = block_objective(block, block.targets, batches[0], labels)

    def trajectory(objective, zeros, lr):
        losses = []
        proximal_gd(objective, FullState(zeros), lr=lr, weight_decay=0.0, epochs=3, n=6, batch_size=6, mode="code",
                    callback=lambda epoch, state: losses.append(float(objective(state.deltas(), None)[0])))
        return torch.tensor(losses)

    gaps = []
    for lr in (2e-3, 1e-3):
        lin = trajectory(reduced.objective, {n: torch.zeros(g.shape[-2:], dtype=torch.float64)
                                             for n, g in reduced.gamma.items()}, lr)
        act = trajectory(actual, {n: torch.zeros_like(block.get_submodule(n).weight) for n in block.targets}, lr)
        start = float(actual({n: torch.zeros_like(block.get_submodule(n).weight) for n in block.targets}, None)[0])
        assert (lin - start).abs().max() > 10 * (lin - act).abs().max()  # the losses moved, and moved together
        gaps.append(float((lin - act).abs().max()))
    assert gaps[0] / gaps[1] == pytest.approx(4.0, rel=0.3)


def test_svt_is_the_exact_prox_of_the_nuclear_norm():
    gen = torch.Generator().manual_seed(5)
    u = torch.linalg.qr(torch.randn(6, 4, generator=gen, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(5, 4, generator=gen, dtype=torch.float64))[0]
    matrix = u @ torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.1], dtype=torch.float64)) @ v.T
    expected = u @ torch.diag(torch.tensor([2.2, 0.2, 0.0, 0.0], dtype=torch.float64)) @ v.T
    torch.testing.assert_close(svt(matrix, 0.8), expected)

    def prox_objective(x):
        return 0.5 * (x - matrix).square().sum() + 0.8 * nuclear_norm(x)

    best = prox_objective(expected)
    for _ in range(200):  # no nearby matrix does better
        assert prox_objective(expected + 1e-3 * torch.randn(6, 5, generator=gen, dtype=torch.float64)) > best


def test_reduced_lora_equals_full_size_lora_step_by_step():
    """LoRA GD with weight decay in the reduced coordinates reproduces full-size LoRA GD exactly,
    including the part of A outside the training row space, which only decays."""
    features = synthetic_features(5, shape=(10, 8), positions=2, generator=torch.Generator().manual_seed(6))
    reduced = reduce(features)
    dense = {n: (u.double() @ v.double().transpose(-1, -2)) for n, (u, v) in features.factors.items()}

    def full_objective(deltas, index=None):
        logits = features.f0 + sum(torch.einsum("ejmn,mn->ej", dense[k], d) for k, d in deltas.items())
        loss = torch.nn.functional.cross_entropy(logits, features.labels)
        probs = torch.softmax(logits, -1) - torch.nn.functional.one_hot(features.labels, 2)
        return loss, {k: torch.einsum("ej,ejmn->mn", probs / 5, dense[k]) for k in deltas}, logits

    gen = torch.Generator().manual_seed(7)
    a0 = {n: torch.randn(3, 8, generator=gen, dtype=torch.float64) for n in dense}
    b0 = {n: torch.zeros(10, 3, dtype=torch.float64) for n in dense}
    big = lora_gd(full_objective, LoraState(dict(b0), dict(a0), torch.tensor(0.0, dtype=torch.float64)),
                  lr=0.5, weight_decay=0.05, epochs=25, n=5, batch_size=5)
    reduced_a, idle = zip(*(reduced.reduce_lora_init(n, a0[n]) for n in dense))
    small = LoraState({n: reduced.bases[n][0].T @ b0[n] for n in dense}, dict(zip(dense, reduced_a)), sum(idle))
    shrink0 = float(sum(idle))
    lora_gd(reduced.objective, small, lr=0.5, weight_decay=0.05, epochs=25, n=5, batch_size=5)
    torch.testing.assert_close(small.penalty(), big.penalty())
    for n in dense:
        b, a = reduced.lift_lora(n, small.b[n], small.a[n], a0[n], math.sqrt(float(small.a_idle_sq) / shrink0))
        torch.testing.assert_close(b, big.b[n])
        torch.testing.assert_close(a, big.a[n])


def test_prox_gradient_and_lora_above_the_threshold_reach_the_fista_optimum():
    n, lam = 8, 0.05
    reduced = reduce(synthetic_features(n, shape=(12, 12), positions=4, generator=torch.Generator().manual_seed(8)))
    step = 1.0 / float(torch.linalg.eigvalsh(reduced.gram()).max() / (2 * n))
    zeros = {k: torch.zeros(g.shape[-2:], dtype=torch.float64) for k, g in reduced.gamma.items()}
    best, _ = fista(reduced.objective, FullState(dict(zeros)), step=step, weight_decay=lam, tol=1e-9)
    f_star = float(reduced.objective(best.deltas())[0] + lam * best.penalty())
    full = proximal_gd(reduced.objective, FullState(dict(zeros)), lr=step / n, weight_decay=lam, epochs=1000, n=n,
                       batch_size=n)
    f_full = float(reduced.objective(full.deltas())[0] + lam * full.penalty())
    assert f_star <= f_full <= f_star * (1 + 1e-3)  # plain proximal gradient converges slowly but surely
    rank = 6  # r(r+1)/2 = 21 > K·N = 16
    gen = torch.Generator().manual_seed(9)
    a, idle = zip(*(reduced.reduce_lora_init(k, torch.randn(4, rank, 12, generator=gen, dtype=torch.float64) / 12)
                    for k in reduced.gamma))
    state = LoraState({k: torch.zeros(4, g.shape[-2], rank, dtype=torch.float64) for k, g in reduced.gamma.items()},
                      dict(zip(reduced.gamma, a)), sum(idle))
    lora_gd(reduced.objective, state, lr=step / n, weight_decay=lam, epochs=1000, n=n, batch_size=n)
    final = reduced.objective(state.deltas())[0] + lam * state.penalty()
    assert (final >= f_star - 1e-9).all() and (final <= f_star * (1 + 1e-3)).all()


def test_minibatches_are_sequential_with_a_short_last_batch():
    assert minibatches(32, 32) == [None]
    assert [b.tolist() for b in minibatches(5, 2)] == [[0, 1], [2, 3], [4]]


def test_features_round_trip(tmp_path):
    features = synthetic_features(3, shape=(4, 5), positions=2, generator=torch.Generator().manual_seed(10))
    features.save(tmp_path / "f.pt")
    again = Features.load(tmp_path / "f.pt")
    torch.testing.assert_close(again.f0, features.f0)
    for name, (u, v) in features.factors.items():
        torch.testing.assert_close(again.factors[name][0], u)
        torch.testing.assert_close(again.factors[name][1], v)


def test_the_dual_bound_is_below_every_objective_and_tight_at_the_optimum():
    n, lam = 8, 0.05
    reduced = reduce(synthetic_features(n, shape=(10, 10), positions=3, generator=torch.Generator().manual_seed(11)))
    step = 1.0 / float(torch.linalg.eigvalsh(reduced.gram()).max() / (2 * n))
    zeros = {k: torch.zeros(g.shape[-2:], dtype=torch.float64) for k, g in reduced.gamma.items()}
    best, _ = fista(reduced.objective, FullState(zeros), step=step, weight_decay=lam, tol=1e-9)

    def primal_and_dual(deltas):
        loss, grads, logits = reduced.objective(deltas)
        value = loss + lam * sum(nuclear_norm(d) for d in deltas.values())
        return float(value), float(cross_entropy_nuclear_dual(logits, reduced.f0, reduced.labels, grads, lam))

    f_star, d_star = primal_and_dual(best.deltas())
    assert abs(f_star - d_star) < 1e-8 * f_star
    gen = torch.Generator().manual_seed(12)
    for scale in (0.0, 0.1, 1.0):
        other = {k: d + scale * torch.randn(d.shape, generator=gen, dtype=torch.float64) for k, d in best.delta.items()}
        value, bound = primal_and_dual(other)
        assert bound <= f_star + 1e-12 <= value + 2e-12
