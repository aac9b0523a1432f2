"""Adapting the top layers with the lower layers cached is the same function (and gradient) as the full
model: on a tiny BERT, outputs and LoRA gradients agree with the uncached model whose adapter sits on
the same top layer."""

from __future__ import annotations

import copy

import pytest
import torch

import engine_tiny
from lorarepro.adapters.build import build_adapter
from lorarepro.data.tasks import load_task
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.models.top_layers import cache_lower_layers, layer_stack, top_layer_targets
from lorarepro.train.objectives import make_objective

ADAPTER = {"init": "gaussian", "r": 2, "alpha": 4, "train_modules": ["head"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data_dir = engine_tiny.datasets(root)["sentiment"]
    folder = engine_tiny.bert_folder(root, dropout=0.0)
    tokenizer = load_tokenizer(str(folder))
    data = load_task({"dataset": str(data_dir), "kind": "classification"}, tokenizer)
    torch.manual_seed(0)
    model = load_model({"name": str(folder)}, num_labels=2).eval()
    return data, model


def test_top_layer_targets_names_only_the_last_layers(tiny):
    _, model = tiny
    name, layers = layer_stack(model)
    assert name == "encoder.encoder.layer" and len(layers) == 2
    assert top_layer_targets(model, ["query", "value"], 1) == [
        "encoder.encoder.layer.1.attention.self.query", "encoder.encoder.layer.1.attention.self.value"]
    with pytest.raises(ValueError, match="between 1 and"):
        top_layer_targets(model, ["query"], 3)


def test_cached_lower_layers_give_the_full_models_outputs_and_gradients(tiny):
    data, model = tiny
    full, _ = build_adapter(copy.deepcopy(model), {**ADAPTER, "targets": top_layer_targets(model, ["query", "value"], 1)},
                            seed=0)
    cached = cache_lower_layers(copy.deepcopy(model), data.train + data.eval, adapt_top=1, pad_id=data.pad_id)
    cached, _ = build_adapter(cached, {**ADAPTER, "targets": ["query", "value"]}, seed=0)
    assert len(layer_stack(cached)[1]) == 1
    objective = make_objective(data, model_kind="encoder", device="cpu")
    examples = data.eval[:12]  # mixed lengths: the lookup must strip each row's padding
    assert len({len(e["input_ids"]) for e in examples}) > 1
    grads = []
    for m in (full, cached):
        m.eval()
        for p in m.parameters():
            p.grad = None
        loss = objective.loss(m, examples)
        loss.backward()
        grads.append({n.split("layer.")[-1].split(".", 1)[-1]: p.grad for n, p in m.named_parameters()
                      if p.requires_grad and "lora_B" in n})
        grads[-1]["loss"] = loss.detach()
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 3
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-5, atol=1e-6)


def test_copies_share_one_cache(tiny):
    data, model = tiny
    cached = cache_lower_layers(copy.deepcopy(model), data.train, adapt_top=1, pad_id=data.pad_id)
    twin = copy.deepcopy(cached)
    assert twin.encoder.embeddings.cache is cached.encoder.embeddings.cache


def test_an_example_outside_the_cache_is_an_error(tiny):
    data, model = tiny
    cached = cache_lower_layers(copy.deepcopy(model), data.train[:4], adapt_top=1, pad_id=data.pad_id)
    objective = make_objective(data, model_kind="encoder", device="cpu")
    with pytest.raises(KeyError):
        objective.loss(cached, data.eval[:2])
