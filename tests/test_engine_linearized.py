"""The linearised model on a tiny BERT (float64): f_lin equals f at θ₀, its δ-gradient is Jᵀ, it is the
first-order Taylor expansion, and LoRA / proximal full fine-tuning train on it."""

from __future__ import annotations

import pytest
import torch

import engine_tiny
from lorarepro.data.tasks import load_task
from lorarepro.models.linearized import FullDelta, LinearizedModel, LoraDelta
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.train.objectives import make_objective

NAMES = ["encoder.encoder.layer.0.attention.self.query.weight", "encoder.encoder.layer.1.attention.self.value.weight"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folder = engine_tiny.bert_folder(root)
    tokenizer = load_tokenizer(str(folder))
    data = load_task({"dataset": str(engine_tiny.datasets(root)["sentiment"]), "kind": "classification"}, tokenizer)
    objective = make_objective(data, model_kind="encoder", device="cpu")
    batch = objective.inputs(objective.batch(data.train[:8]))

    def fresh():
        torch.manual_seed(0)
        return load_model({"name": str(folder), "dtype": "float64"}, num_labels=2)

    return fresh, objective, batch


def shapes(model):
    return {n: p.shape for n, p in model.named_parameters() if n in NAMES}


def random_delta(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in shapes(model).items()}


def test_output_at_theta0_is_f(setting):
    fresh, _, batch = setting
    model = fresh().eval()
    with torch.no_grad():
        expected = model(**batch).logits
    lin = LinearizedModel(fresh(), NAMES, FullDelta(shapes(model), dtype=torch.float64))
    torch.testing.assert_close(lin(**batch).logits, expected, rtol=0, atol=1e-12)


def test_delta_gradient_is_the_transposed_jacobian(setting):
    fresh, _, batch = setting
    delta_module = FullDelta(shapes(fresh()), dtype=torch.float64)
    with torch.no_grad():
        for p, d in zip(delta_module.parameters(), random_delta(fresh()).values()):
            p.copy_(0.01 * d)
    lin = LinearizedModel(fresh(), NAMES, delta_module)
    cotangent = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (lin(**batch).logits * cotangent).sum().backward()
    model = fresh().eval()
    params = [dict(model.named_parameters())[n] for n in NAMES]
    expected = torch.autograd.grad((model(**batch).logits * cotangent).sum(), params)
    for p, e in zip(delta_module.delta().values(), expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-10, atol=1e-12)


def test_it_is_the_first_order_taylor_expansion(setting):
    fresh, _, batch = setting
    model = fresh().eval()
    delta = random_delta(model)
    lin = LinearizedModel(fresh(), NAMES, FullDelta(shapes(model), dtype=torch.float64))
    f0, jdelta = lin.linearize(batch, delta)
    h = 1e-5
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in NAMES:
            params[n].add_(h * delta[n])
        plus = model(**batch).logits
        for n in NAMES:
            params[n].sub_(2 * h * delta[n])
        minus = model(**batch).logits
    torch.testing.assert_close(jdelta, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-9)
    # ... and linear in δ
    _, j2 = lin.linearize(batch, {n: 2 * d for n, d in delta.items()})
    torch.testing.assert_close(j2, 2 * jdelta)


def test_lora_on_the_linearised_model_starts_at_f0_and_adds_j_of_ba(setting):
    fresh, _, batch = setting
    model = fresh().eval()
    lora = LoraDelta(shapes(model), rank=3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, A in zip(NAMES, lora.A.values()):
        assert A.shape == (3, shapes(model)[name][1])
        assert A.std().item() == pytest.approx(1 / (3**0.5 * 32), rel=0.3)  # the NTK-LoRA code's init
    lin = LinearizedModel(fresh(), NAMES, lora)
    with torch.no_grad():
        f0 = model(**batch).logits
        torch.testing.assert_close(lin(**batch).logits, f0)
        for B in lora.B.values():
            B.normal_()
        _, expected = lin.linearize(batch, {n: lora.B[k] @ lora.A[k] for n, k in zip(NAMES, lora.A.keys())})
        torch.testing.assert_close(lin(**batch).logits, f0 + expected)


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_training_the_linearised_model_lowers_the_loss_and_keeps_eval_mode(setting, kind):
    fresh, objective, _ = setting
    base = fresh()
    delta = (FullDelta(shapes(base), dtype=torch.float64) if kind == "full" else
             LoraDelta(shapes(base), rank=4, std=0.1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    lin = LinearizedModel(base, NAMES, delta).train()
    assert not lin.readout.model.training
    spec = {"name": "nuclear_prox_sgd", "lr": 0.5, "nuclear": 1e-3} if kind == "full" else \
        {"name": "sgd", "lr": 0.5, "weight_decay": 1e-3}
    opt = build_optimizer(lin, spec)
    examples = objective.data.train[:16]
    losses = []
    for _ in range(5):
        loss = objective.loss(lin, examples)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert {n for n, p in lin.named_parameters() if p.requires_grad} == {f"delta_module.{n}" for n, _ in
                                                                         delta.named_parameters()}
