"""Meta-LoRA retraining with PEFT multi-adapters: per-task adapters over a shared base, and one step of
the paper's Algorithm 1 against the same step written out by hand."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lorarepro.adapters.multitask import adapter_parameters, base_parameters, build_task_adapters, task_adapter_names
from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.train.meta import meta_step

D = torch.float64
NAMES = task_adapter_names(3)


def shallow(seed=0):
    """The paper's shallow model: Linear(d, d) -> sigmoid -> Linear(d, 1), LoRA on the first layer."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 6, bias=False), nn.Sigmoid(), nn.Linear(6, 1, bias=False)).to(D)
    model = build_task_adapters(net, {"init": "gaussian", "r": 2, "alpha": 2, "targets": ["0"],
                                      "init_options": {"std": 0.5}}, NAMES, seed=seed)
    with torch.no_grad():  # nonzero B, so every parameter gets a gradient
        for layer in lora_layers(model).values():
            for name in NAMES:
                layer.lora_B[name].weight.normal_()
    gen = torch.Generator().manual_seed(1)
    data = {name: (torch.randn(10, 6, generator=gen, dtype=D), torch.randn(10, 1, generator=gen, dtype=D))
            for name in NAMES}
    return model, data


def loss_fn(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def optimizers(model, lr):
    adapters = [p for name in NAMES for p in adapter_parameters(model, name)]
    return torch.optim.SGD(adapters, lr=lr), torch.optim.SGD(base_parameters(model), lr=lr)


def test_each_task_has_its_own_adapter_and_the_base_trains():
    model, _ = shallow()
    layer = lora_layers(model)["0"]
    assert sorted(layer.lora_A) == NAMES
    assert not torch.equal(layer.lora_A["task_0"].weight, layer.lora_A["task_1"].weight)
    assert len(base_parameters(model)) == 2
    model.set_adapter("task_1")
    assert all(p.requires_grad for p in base_parameters(model))


def test_paper_step_updates_adapters_at_once_and_the_base_with_the_summed_gradient():
    lr = 0.1
    model, data = shallow()
    reference = copy.deepcopy(model)
    expected_adapters, base_grad = {}, None
    base = base_parameters(reference)
    for name in NAMES:  # every gradient at the starting point: W is updated only after all tasks
        reference.set_adapter(name)
        params = adapter_parameters(reference, name)
        grads = torch.autograd.grad(loss_fn(reference, data[name]), params + base)
        expected_adapters[name] = [p - lr * g for p, g in zip(params, grads[: len(params)])]
        g_base = grads[len(params):]
        base_grad = list(g_base) if base_grad is None else [a + b for a, b in zip(base_grad, g_base)]
    expected_base = [p - lr * g for p, g in zip(base, base_grad)]

    adapter_opt, base_opt = optimizers(model, lr)
    losses = meta_step(model, data, loss_fn, adapter_opt, base_opt, mode="paper")
    assert list(losses) == NAMES
    for name in NAMES:
        for got, want in zip(adapter_parameters(model, name), expected_adapters[name]):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    for got, want in zip(base_parameters(model), expected_base):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_round_robin_moves_the_base_after_every_task():
    lr = 0.1
    paper, data = shallow()
    robin = copy.deepcopy(paper)
    meta_step(paper, data, loss_fn, *optimizers(paper, lr), mode="paper")
    meta_step(robin, data, loss_fn, *optimizers(robin, lr), mode="round_robin")
    # Task 0 sees the same starting point in both modes; later tasks see a moved base in round robin.
    for a, b in zip(adapter_parameters(paper, "task_0"), adapter_parameters(robin, "task_0")):
        torch.testing.assert_close(a, b)
    assert not all(torch.allclose(a, b) for a, b in zip(adapter_parameters(paper, "task_2"),
                                                         adapter_parameters(robin, "task_2")))


def test_unload_returns_the_retrained_base_for_fine_tuning():
    model, data = shallow()
    meta_step(model, data, loss_fn, *optimizers(model, 0.1))
    retrained = [p.detach().clone() for p in base_parameters(model)]
    base = model.unload()
    assert isinstance(base, nn.Sequential) and isinstance(base[0], nn.Linear)
    for got, want in zip(base.parameters(), retrained):
        assert torch.equal(got, want)


def test_gradient_inits_are_refused_for_task_adapters():
    with pytest.raises(ValueError, match="per-task adapters"):
        build_task_adapters(nn.Sequential(nn.Linear(3, 3)), {"init": "lora_one", "r": 1, "targets": ["0"]},
                            NAMES, seed=0)
