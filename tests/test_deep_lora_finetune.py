"""Deep LoRA fine-tuning pieces on a tiny BERT: the learned update ΔW of each adapter kind, the numerical
rank of Figure 7, the bi-encoder cosine head, and the engine parameters of a few-shot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import engine_tiny
from lorarepro.adapters.build import build_adapter, delta_weights
from lorarepro.adapters.deep_adapter import factored_layers
from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.data.materialize import load_split
from lorarepro.data.tasks import collate, load_task
from lorarepro.experiments.deep_lora.finetune import run_params
from lorarepro.metrics.spectral import matrix_rank
from lorarepro.models.load import load_model, load_tokenizer, mean_pool

TARGETS = ["query", "value", "intermediate.dense"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return engine_tiny.bert_folder(root, dropout=0.0), engine_tiny.datasets(root)["similarity"]


def test_delta_weights_are_each_adapters_update(tiny):
    folder, _ = tiny
    torch.manual_seed(0)
    lora, _ = build_adapter(load_model({"name": str(folder)}, num_labels=1),
                            {"init": "gaussian", "init_options": {"std": 1.0}, "r": 4, "alpha": 8, "targets": TARGETS},
                            seed=0)
    with torch.no_grad():  # B = 0 at init: give it a value so that ΔW is not trivially zero
        for layer in lora_layers(lora).values():
            layer.lora_B["default"].weight.normal_()
    deltas = delta_weights(lora, dtype=torch.float64)
    assert sorted(deltas) == sorted(lora_layers(lora))
    for name, layer in lora_layers(lora).items():
        assert deltas[name].dtype == torch.float64
        torch.testing.assert_close(deltas[name].float(), layer.get_delta_weight("default"))
        assert matrix_rank(deltas[name]).item() == 4
    deep, _ = build_adapter(load_model({"name": str(folder)}, num_labels=1),
                            {"init": "deep", "init_options": {"width": 4, "eps": 0.5}, "r": 4, "targets": TARGETS},
                            seed=0)
    deltas = delta_weights(deep)
    for name, layer in factored_layers(deep).items():
        f1, f2, f3 = (f.detach() for f in layer.factors)
        torch.testing.assert_close(deltas[name], f3 @ f2 @ f1)


def test_matrix_rank_counts_as_numpy_with_an_absolute_floor():
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(30, 3, generator=gen, dtype=torch.float64) @ torch.randn(3, 20, generator=gen, dtype=torch.float64)
    noisy = low + 1e-12 * torch.randn(30, 20, generator=gen, dtype=torch.float64)
    for matrix in (low, noisy):
        assert matrix_rank(matrix).item() == np.linalg.matrix_rank(matrix.numpy())
    assert matrix_rank(noisy, atol=1e-8).item() == 3  # the paper's floor of 1e-8 drops the noise
    assert matrix_rank(1e-11 * low, atol=1e-8).item() == 0  # an update that stayed at ε³ scale has rank 0
    batch = torch.stack([low, torch.zeros_like(low)])
    assert matrix_rank(batch).tolist() == [3, 0]


def test_cosine_head_scores_each_pair_by_the_cosine_of_its_mean_pooled_sentences(tiny):
    folder, data_dir = tiny
    tokenizer = load_tokenizer(str(folder))
    data = load_task({"dataset": str(data_dir), "kind": "regression", "pair_encoding": "bi", "label_scale": 5.0,
                      "max_length": 16}, tokenizer)
    assert (data.label_mean, data.label_std) == (0.0, 5.0)
    model = load_model({"name": str(folder), "head": "cosine"}, num_labels=1).eval()
    batch = collate(data.eval[:6], tokenizer.pad_token_id)
    with torch.no_grad():
        scores = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.squeeze(-1)
        encoder = model.encoder
        first = mean_pool(encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                          .last_hidden_state, batch["attention_mask"])
        second = mean_pool(encoder(input_ids=batch["input_ids_b"], attention_mask=batch["attention_mask_b"])
                           .last_hidden_state, batch["attention_mask_b"])
    torch.testing.assert_close(scores, torch.nn.functional.cosine_similarity(first, second, dim=-1))
    # Each sentence is encoded alone: the second input is the second sentence's own encoding.
    second_ids = tokenizer(load_split(data_dir, "validation")["sentence2"].iloc[0], max_length=16,
                           truncation=True)["input_ids"]
    assert batch["input_ids_b"][0, : len(second_ids)].tolist() == second_ids


def test_run_params_of_a_few_shot_run():
    params = {"scale": "default", "targets": ["query"], "model": {"name": "m"}, "task": {"dataset": "stsb"},
              "train": {"steps": 10, "batch_size": 16},
              "methods": {"deep": {"adapter": {"init": "deep", "init_options": {"width": "r", "compressed": False}},
                                   "optimizer": {"lr": 1e-4}}}}
    run = run_params(params, "fewshot", "deep", n=4, r=8, seed=3, threads=1)
    assert run["adapter"] == {"init": "deep", "init_options": {"width": 8, "compressed": False}, "r": 8,
                              "alpha": 8, "targets": ["query"]}
    assert run["task"] == {"dataset": "stsb", "train_size": 4, "subset_seed": 3}
    assert run["train"]["batch_size"] == 4 and run["experiment"] == "fewshot" and run["seed"] == 3
    assert params["methods"]["deep"]["adapter"]["init_options"]["width"] == "r"  # the settings stay untouched
