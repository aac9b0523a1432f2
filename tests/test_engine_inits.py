"""The adapter inits on a tiny BERT (float64): orientation, what each init does to the model's function,
and the subspaces the gradient- and sketch-based inits must land in."""

from __future__ import annotations

import copy

import pytest
import torch

import engine_tiny
from lorarepro.adapters.build import build_adapter
from lorarepro.adapters.deep_adapter import FactoredLinear, factored_layers
from lorarepro.adapters.gradient import target_linears, weight_gradients
from lorarepro.adapters.peft_adapters import PEFT_INITS, lora_layers
from lorarepro.data.tasks import load_task
from lorarepro.metrics.subspace import orthonormal_basis, projection_residual, sin_theta
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.train.objectives import make_objective

TARGETS = ["query", "value", "intermediate.dense"]  # intermediate.dense is 48×32: orientation shows
R, ALPHA = 4, 8


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folder = engine_tiny.bert_folder(root)
    data_dir = engine_tiny.datasets(root)["similarity"]
    tokenizer = load_tokenizer(str(folder))
    data = load_task({"dataset": str(data_dir), "kind": "regression", "max_length": 16}, tokenizer)
    torch.manual_seed(0)
    model = load_model({"name": str(folder), "dtype": "float64"}, num_labels=1)
    objective = make_objective(data, model_kind="encoder", device="cpu")
    batches = [data.train[i: i + 4] for i in range(0, 8, 4)]
    return model, objective, batches


def pretrained(setting, init):
    """A copy of the pretrained model; float32 for the inits PEFT computes itself (it refuses float64)."""
    model = copy.deepcopy(setting[0])
    return model.float() if PEFT_INITS.get(init) and PEFT_INITS[init].reinit is None else model


def tolerance(model) -> dict[str, float]:
    return {"rtol": 0, "atol": 1e-10 if next(model.parameters()).dtype == torch.float64 else 1e-5}


def adapted(setting, init, **spec):
    _, objective, batches = setting
    spec = {"init": init, "r": R, "alpha": ALPHA, "targets": TARGETS, **spec}
    return build_adapter(pretrained(setting, init), spec, seed=0, loss_fn=objective.loss, init_batches=batches)


def outputs(model, objective, batches):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(**objective.inputs(objective.batch(b))).logits for b in batches])


def gradients(setting):
    model, objective, batches = setting
    layers = target_linears(model, TARGETS)
    return layers, weight_gradients(model, {n: m.weight for n, m in layers.items()}, batches, objective.loss)


def merged(setting, peft_model):
    """The pretrained model with each layer's W₀ replaced by base + scaling·B·A of `peft_model`."""
    model = copy.deepcopy(setting[0])
    with torch.no_grad():
        for name, layer in lora_layers(peft_model).items():
            model.get_submodule(name).weight.copy_(layer.get_base_layer().weight + layer.get_delta_weight("default"))
    return model


@pytest.mark.parametrize("init", sorted(PEFT_INITS))
def test_peft_factors_have_torch_orientation(setting, init):
    model, info = adapted(setting, init)
    layers = lora_layers(model)
    assert sorted(layers) == info.targets and len(layers) == 6
    for name, layer in layers.items():
        base = layer.get_base_layer()
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        assert A.shape == (R, base.in_features) and B.shape == (base.out_features, R)
        assert A.requires_grad and B.requires_grad and not base.weight.requires_grad
        torch.testing.assert_close(layer.get_delta_weight("default"), layer.scaling["default"] * B @ A)


@pytest.mark.parametrize("init", ["default", "gaussian", "nora", "pissa", "olora", "lora_ga"])
def test_function_preserving_inits_leave_the_model_unchanged(setting, init):
    model, info = adapted(setting, init)
    torch.testing.assert_close(outputs(model, *setting[1:]), outputs(pretrained(setting, init), *setting[1:]),
                               **tolerance(model))
    moved = {n for n, _ in model.named_parameters() if n in info.moved_base}
    assert bool(moved) == PEFT_INITS[init].moves_base and len(moved) == (6 if moved else 0)


@pytest.mark.parametrize("init", ["pissa", "olora", "lora_ga"])
def test_residual_inits_move_the_base_by_exactly_the_adapter(setting, init):
    model, _ = adapted(setting, init)
    for name, layer in lora_layers(model).items():
        w0 = pretrained(setting, init).get_submodule(name).weight
        torch.testing.assert_close(layer.get_base_layer().weight, w0 - layer.get_delta_weight("default"),
                                   **tolerance(model))


def test_pissa_adapter_is_the_top_r_part_of_w0(setting):
    model, _ = adapted(setting, "pissa")
    for name, layer in lora_layers(model).items():
        U, S, Vh = torch.linalg.svd(setting[0].get_submodule(name).weight)
        torch.testing.assert_close(layer.get_delta_weight("default").double(), (U[:, :R] * S[:R]) @ Vh[:R],
                                   rtol=1e-4, atol=1e-5)


def test_lora_ga_takes_directions_1_to_r_and_r_to_2r_of_the_gradient(setting):
    model, _ = adapted(setting, "lora_ga", init_options={"gamma": 16.0})
    _, grads = gradients(setting)
    for name, layer in lora_layers(model).items():
        U, _, Vh = torch.linalg.svd(grads[name])
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        factor = B.shape[0] ** 0.25 / 4.0
        assert sin_theta(orthonormal_basis(A.T), Vh[:R].T) < 1e-6
        assert sin_theta(orthonormal_basis(B), U[:, R:2 * R]) < 1e-6
        torch.testing.assert_close(A @ A.T, factor**2 * torch.eye(R, dtype=A.dtype))


@pytest.mark.parametrize("init", ["lora_one", "spectral"])
def test_gradient_inits_keep_the_base_and_add_exactly_their_update(setting, init):
    model, info = adapted(setting, init)
    assert info.moved_base == []
    for name, layer in lora_layers(model).items():
        assert torch.equal(layer.get_base_layer().weight, setting[0].get_submodule(name).weight)
    torch.testing.assert_close(outputs(model, *setting[1:]), outputs(merged(setting, model), *setting[1:]))
    assert not torch.allclose(outputs(model, *setting[1:]), outputs(setting[0], *setting[1:]))


def test_lora_one_spans_the_top_r_subspace_of_the_negative_gradient(setting):
    s = 64.0
    model, _ = adapted(setting, "lora_one", rslora=True, init_options={"scale": s})
    _, grads = gradients(setting)
    for name, layer in lora_layers(model).items():
        U, S, Vh = torch.linalg.svd(-grads[name])
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        assert sin_theta(orthonormal_basis(B), U[:, :R]) < 1e-6  # output side: left singular vectors
        assert sin_theta(orthonormal_basis(A.T), Vh[:R].T) < 1e-6  # input side: right singular vectors
        # Algorithm 1: B·A = P_r(−∇W)/σ₁/s, and rsLoRA's α/√r on top.
        torch.testing.assert_close(B @ A, (U[:, :R] * S[:R]) @ Vh[:R] / S[0] / s)
        assert layer.scaling["default"] == pytest.approx(ALPHA / R**0.5)


def test_spectral_init_equals_the_rank_r_gradient_step(setting):
    model, _ = adapted(setting, "spectral", init_options={"gamma": 2.0})
    _, grads = gradients(setting)
    for name, layer in lora_layers(model).items():
        U, S, Vh = torch.linalg.svd(-grads[name])
        B, A = layer.lora_B["default"].weight, layer.lora_A["default"].weight
        torch.testing.assert_close(B @ A, 2.0 * (U[:, :R] * S[:R]) @ Vh[:R])


def test_nora_sketches_the_row_space_of_the_pretrained_weight(setting):
    """With a rank-3 W₀, NoRA's lora_A lies in W₀'s 3-dimensional row space; a random A does not."""
    model, objective, batches = setting
    low = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in target_linears(low, TARGETS).values():
            out_f, in_f = layer.weight.shape
            layer.weight.copy_(torch.randn(out_f, 3, generator=gen, dtype=torch.float64)
                               @ torch.randn(3, in_f, generator=gen, dtype=torch.float64))
    nora, _ = build_adapter(copy.deepcopy(low), {"init": "nora", "r": R, "alpha": ALPHA, "targets": TARGETS,
                                                 "init_options": {"xi": 0.1}}, seed=0)
    default, _ = build_adapter(copy.deepcopy(low), {"init": "default", "r": R, "alpha": ALPHA, "targets": TARGETS},
                               seed=0)
    for name, layer in lora_layers(nora).items():
        rows = orthonormal_basis(layer.get_base_layer().weight.T, 3)
        A = layer.lora_A["default"].weight
        assert projection_residual(rows, A.T) < 1e-10 * A.norm()
        assert torch.count_nonzero(layer.lora_B["default"].weight) == 0
        random_A = lora_layers(default)[name].lora_A["default"].weight
        assert projection_residual(rows, random_A.T) > 0.1 * random_A.norm()


def test_nora_released_code_keeps_the_kaiming_init(setting):
    released, _ = adapted(setting, "nora", init_options={"released_code": True})
    default, _ = adapted(setting, "default")
    for name, layer in lora_layers(released).items():
        assert torch.equal(layer.lora_A["default"].weight, lora_layers(default)[name].lora_A["default"].weight)


def test_inits_are_seeded(setting):
    model, objective, batches = setting
    spec = {"init": "gaussian", "r": R, "alpha": ALPHA, "targets": TARGETS}
    a = [p.clone() for p in build_adapter(copy.deepcopy(model), spec, seed=3)[0].parameters() if p.requires_grad]
    b = [p.clone() for p in build_adapter(copy.deepcopy(model), spec, seed=3)[0].parameters() if p.requires_grad]
    c = [p.clone() for p in build_adapter(copy.deepcopy(model), spec, seed=4)[0].parameters() if p.requires_grad]
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not all(torch.equal(x, y) for x, y in zip(a, c))


def test_train_modules_and_only_the_adapter_train(setting):
    model, info = adapted(setting, "default", train_modules=["head"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or ".head." in n for n in trainable) and any(".head." in n for n in trainable)
    assert info.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_deep_lora_full_width_factors_and_function(setting):
    eps = 0.1
    model, _ = adapted(setting, "deep", init_options={"depth": 3, "eps": eps})
    layers = factored_layers(model)
    assert sorted(layers) == sorted(target_linears(setting[0], TARGETS))
    for name, layer in layers.items():
        out_f, in_f = layer.base_layer.weight.shape
        w = max(out_f, in_f)
        assert [tuple(f.shape) for f in layer.factors] == [(w, in_f), (w, w), (out_f, w)]
        # ε-scaled (semi-)orthogonal factors: the product's singular values are all ε³.
        torch.testing.assert_close(torch.linalg.svdvals(layer.delta_weight()),
                                   torch.full((min(out_f, in_f),), eps**3, dtype=torch.float64))
    merged_model = copy.deepcopy(setting[0])
    with torch.no_grad():
        for name, layer in layers.items():
            merged_model.get_submodule(name).weight.add_(layer.delta_weight())
    torch.testing.assert_close(outputs(model, *setting[1:]), outputs(merged_model, *setting[1:]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.factors.{i}" for n in layers for i in range(3)}


def test_deep_lora_narrow_width(setting):
    model, _ = adapted(setting, "deep", init_options={"width": R})
    for layer in factored_layers(model).values():
        assert [f.shape[0] for f in layer.factors[:-1]] == [R, R]


def test_lora_sb_trains_only_r_between_frozen_gradient_singular_vectors(setting):
    model, _ = adapted(setting, "lora_sb", init_options={"scale": 2.0})
    _, grads = gradients(setting)
    for name, layer in factored_layers(model).items():
        assert isinstance(layer, FactoredLinear)
        V_t, Rm, U = layer.factors
        assert [V_t.requires_grad, Rm.requires_grad, U.requires_grad] == [False, True, False]
        Ug, S, Vh = torch.linalg.svd(-grads[name])
        torch.testing.assert_close(layer.delta_weight(), (Ug[:, :R] * S[:R] / 2.0) @ Vh[:R])


@pytest.mark.parametrize("d_out,d_in", [(12, 8), (8, 12)])
def test_compressed_deep_lora_follows_the_full_width_trajectory(d_out, d_in):
    """On ½‖ΔW − Φ‖² with rank(Φ) = h (a linear layer fed the standard basis), the compressed adapter
    (inner width r = 2h) tracks the full-width one: ‖ΔW_full − ΔW_comp‖² ≤ (w − 2h)·ε^{2L} (Prop. 2.2)."""
    h, eps, depth, steps, lr = 2, 0.3, 3, 60, 0.3
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(d_out, h, generator=gen, dtype=torch.float64) @ torch.randn(h, d_in, generator=gen,
                                                                                  dtype=torch.float64)
    phi = phi / torch.linalg.matrix_norm(phi, ord=2)
    base = torch.nn.Linear(d_in, d_out, bias=False).to(torch.float64)
    x = torch.eye(d_in, dtype=torch.float64)
    y = base(x).detach() + x @ phi.T

    def loss_fn(m, batch):
        return 0.5 * ((m(batch) - y) ** 2).sum()

    def trained(compressed):
        spec = {"init": "deep", "r": 2 * h, "targets": ["0"],
                "init_options": {"depth": depth, "eps": eps, "compressed": compressed}}
        model, _ = build_adapter(torch.nn.Sequential(copy.deepcopy(base)), spec, seed=0, loss_fn=loss_fn,
                                 init_batches=[x])
        opt = build_optimizer(model, {"name": "sgd", "lr": lr, "lr_scale": {"outer": 0.0}})
        deltas = []
        for _ in range(steps):
            loss_fn(model, x).backward()
            opt.step()
            opt.zero_grad()
            deltas.append(factored_layers(model)["0"].delta_weight().detach())
        return model, deltas

    full, full_deltas = trained(False)
    small, small_deltas = trained(True)
    chain = factored_layers(small)["0"].factors
    assert [tuple(f.shape) for f in chain] == [(2 * h, d_in)] + [(2 * h, 2 * h)] * depth + [(d_out, 2 * h)]
    bound = (max(d_out, d_in) - 2 * h) * eps ** (2 * depth)
    moved = (full_deltas[-1] - full_deltas[0]).norm()
    assert moved > 0.5  # the adapter really learned something
    for a, b in zip(full_deltas, small_deltas):
        assert (a - b).square().sum() <= bound * (1 + 1e-6)


def test_lora_one_matches_a_hand_computation_of_algorithm_1(setting):
    """Algorithm 1 as the authors' code does it, computed here without the engine's helpers: ∇W summed
    over single-example backward passes on the first 8 training examples and divided by their number,
    the SVD of −∇W, S/S₀ and 1/√s on both factors, rsLoRA's α/√r on top, W₀ untouched."""
    from lorarepro.train.run import attach_adapter

    pretrained_model, objective, _ = setting
    s, examples = 16.0, 8
    spec = {"init": "lora_one", "r": R, "alpha": ALPHA, "rslora": True, "targets": TARGETS,
            "init_options": {"scale": s, "svd": "full"}, "gradient": {"examples": examples, "batch_size": 1}}
    model, _ = attach_adapter(copy.deepcopy(pretrained_model), objective, spec, seed=0)

    reference = copy.deepcopy(pretrained_model).eval()
    weights = {name: m.weight for name, m in target_linears(reference, TARGETS).items()}
    total = {name: torch.zeros_like(w) for name, w in weights.items()}
    for example in objective.data.train[:examples]:
        grads = torch.autograd.grad(objective.loss(reference, [example]), list(weights.values()))
        for name, g in zip(weights, grads):
            total[name] += g / examples
    for name, layer in lora_layers(model).items():
        U, S, Vh = torch.linalg.svd(-total[name], full_matrices=False)
        root = torch.sqrt(S[:R] / S[0] / s)
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        # The factors up to the sign of each singular pair: their Gram matrices and their product.
        torch.testing.assert_close(A @ A.T, torch.diag(root**2), rtol=0, atol=1e-10)
        torch.testing.assert_close(B.T @ B, torch.diag(root**2), rtol=0, atol=1e-10)
        torch.testing.assert_close(B @ A, (U[:, :R] * root) @ (root[:, None] * Vh[:R]), rtol=0, atol=1e-10)
        torch.testing.assert_close(layer.get_delta_weight("default"), ALPHA / R**0.5 * B @ A)
        assert torch.equal(layer.get_base_layer().weight, weights[name])
