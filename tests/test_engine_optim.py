"""The fine-tuning optimizers: preconditioned AdamW against a step computed by hand, LoRA+ and factor-role
learning rates, the nuclear-norm proximal step, and the schedules."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from lorarepro.adapters.build import build_adapter
from lorarepro.adapters.deep_adapter import factored_layers
from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.optim.lora_optimizers import build_optimizer, lora_pairs
from lorarepro.optim.prox import svt
from lorarepro.optim.schedules import lr_schedule

D = torch.float64
LR, WD, BETAS, EPS = 0.05, 0.01, (0.9, 0.999), 1e-8


def toy(seed: int = 0):
    """A 2-layer network with LoRA (r = 2) on both layers and nonzero B, so that both preconditioners act."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).to(D)
    model, _ = build_adapter(net, {"init": "default", "r": 2, "alpha": 4, "targets": ["0", "2"]}, seed=seed)
    with torch.no_grad():
        for A, B in lora_pairs(model):
            B.copy_(torch.randn_like(B) * 0.5)
    x, y = torch.randn(16, 5, dtype=D), torch.randn(16, 3, dtype=D)
    return model, lambda m: ((m(x) - y) ** 2).mean()


def hand_steps(model, loss_fn, steps: int, lam: float, normalize: bool):
    """AdamW on (BᵀB+λI)⁻¹∇_A and ∇_B(AAᵀ+λI)⁻¹, written out from the formulas."""
    params = [p for p in model.parameters() if p.requires_grad]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = dict(zip(map(id, params), torch.autograd.grad(loss_fn(model), params)))
        with torch.no_grad():
            for A, B in lora_pairs(model):
                eye = torch.eye(2, dtype=D)
                p_b = torch.linalg.inv(B.T @ B + lam * eye)
                p_a = torch.linalg.inv(A @ A.T + lam * eye)
                if normalize:
                    p_b, p_a = p_b / torch.linalg.norm(p_b), p_a / torch.linalg.norm(p_a)
                grads[id(A)], grads[id(B)] = p_b @ grads[id(A)], grads[id(B)] @ p_a
            for i, p in enumerate(params):
                g = grads[id(p)]
                m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * g
                v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * g * g
                m_hat, v_hat = m[i] / (1 - BETAS[0] ** t), v[i] / (1 - BETAS[1] ** t)
                p.mul_(1 - LR * WD).sub_(LR * m_hat / (v_hat.sqrt() + EPS))
    return params


@pytest.mark.parametrize("normalize", [False, True])
def test_preconditioned_adamw_matches_the_hand_computed_steps(normalize):
    lam = 0.1
    model, loss_fn = toy()
    expected = hand_steps(copy.deepcopy(model), loss_fn, 2, lam, normalize)
    opt = build_optimizer(model, {"name": "preconditioned_adamw", "lr": LR, "weight_decay": WD, "lam": lam,
                                  "normalize": normalize, "eps": EPS})
    for _ in range(2):
        loss_fn(model).backward()
        opt.step()
        opt.zero_grad()
    got = [p for p in model.parameters() if p.requires_grad]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_loop_order_preconditions_once():
    """The loop preconditions before clipping, then steps; step() must not precondition again."""
    model, loss_fn = toy()
    expected = hand_steps(copy.deepcopy(model), loss_fn, 1, 0.1, False)
    opt = build_optimizer(model, {"name": "preconditioned_adamw", "lr": LR, "weight_decay": WD, "lam": 0.1})
    loss_fn(model).backward()
    opt.precondition_grads()
    opt.step()
    for a, b in zip([p for p in model.parameters() if p.requires_grad], expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_preconditioning_changes_the_step():
    model, loss_fn = toy()
    plain = copy.deepcopy(model)
    for m, name in ((model, "preconditioned_adamw"), (plain, "adamw")):
        opt = build_optimizer(m, {"name": name, "lr": LR, "lam": 0.1})
        for _ in range(2):
            loss_fn(m).backward()
            opt.step()
            opt.zero_grad()
    assert not torch.allclose(loss_fn(model), loss_fn(plain))


def test_loraplus_gives_lora_b_the_larger_rate():
    model, _ = toy()
    opt = build_optimizer(model, {"name": "loraplus", "lr": 1e-3, "loraplus_ratio": 16})
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for layer in lora_layers(model).values():
        assert rate[id(layer.lora_A["default"].weight)] == pytest.approx(1e-3)
        assert rate[id(layer.lora_B["default"].weight)] == pytest.approx(16e-3)


def test_factor_roles_get_scaled_rates():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).to(D)
    x = torch.randn(8, 5, dtype=D)
    model, _ = build_adapter(net, {"init": "lora_sb", "r": 2, "targets": ["0", "2"]}, seed=0,
                             loss_fn=lambda m, b: m(b).square().mean(), init_batches=[x])
    for layer in factored_layers(model).values():  # make the outer factors trainable, as compressed Deep LoRA
        layer.factors[0].requires_grad_(True)
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-2, "lr_scale": {"outer": 0.01}})
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for layer in factored_layers(model).values():
        assert rate[id(layer.factors[0])] == pytest.approx(1e-4)
        assert rate[id(layer.factors[1])] == pytest.approx(1e-2)
        assert id(layer.factors[2]) not in rate  # frozen


def test_nuclear_prox_step_is_svt_of_the_gradient_step():
    gen = torch.Generator().manual_seed(0)
    w = nn.Parameter(torch.randn(6, 4, generator=gen, dtype=D))
    bias = nn.Parameter(torch.randn(6, generator=gen, dtype=D))
    g_w, g_b = torch.randn(6, 4, generator=gen, dtype=D), torch.randn(6, generator=gen, dtype=D)
    expected_w, expected_b = svt(w.detach() - 0.1 * g_w, 0.1 * 2.0), bias.detach() - 0.1 * g_b
    opt = build_optimizer(nn.ParameterList([w, bias]), {"name": "nuclear_prox_sgd", "lr": 0.1, "nuclear": 2.0})
    w.grad, bias.grad = g_w, g_b
    opt.step()
    torch.testing.assert_close(w.detach(), expected_w)
    torch.testing.assert_close(bias.detach(), expected_b)


def test_svt_thresholds_singular_values():
    u, _ = torch.linalg.qr(torch.randn(5, 3, dtype=D))
    v, _ = torch.linalg.qr(torch.randn(4, 3, dtype=D))
    m = (u * torch.tensor([3.0, 1.0, 0.2], dtype=D)) @ v.T
    torch.testing.assert_close(torch.linalg.svdvals(svt(m, 0.5))[:2], torch.tensor([2.5, 0.5], dtype=D))
    assert torch.linalg.matrix_rank(svt(m, 0.5)) == 2


@pytest.mark.parametrize("name,expected", [
    ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25]),
    ("cosine", [0.25, 0.5, 0.75] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in (0, 0, 1, 2, 3)]),
])
def test_schedules_warm_up_then_decay(name, expected):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_schedule(opt, name, steps=8, warmup=0.5)
    rates = []
    for _ in range(8):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates == pytest.approx(expected)
