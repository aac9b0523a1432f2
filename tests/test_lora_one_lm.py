"""LoRA-One's untrained Table 2 rows on a tiny BERT (float64): the one-step update moves every chosen
weight by exactly −η·∇W (or −η·P_r(∇W)), with η the grid value of least loss on the gradient batch; and
the run list the rules and the job share."""

from __future__ import annotations

import copy

import pytest
import torch

import engine_tiny
from lorarepro.adapters.gradient import target_linears
from lorarepro.data.tasks import load_task
from lorarepro.experiments.lora_one.lm_grid import run_records, runs
from lorarepro.experiments.lora_one.lm_runs import batch_loss, one_step
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.train.objectives import make_objective

SPEC = {"targets": ["query", "value"], "train_modules": ["head"]}
ETAS = [1e-3, 0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folder = engine_tiny.bert_folder(root)
    data = load_task({"dataset": str(engine_tiny.datasets(root)["sentiment"]), "kind": "classification",
                      "max_length": 16}, load_tokenizer(str(folder)))
    torch.manual_seed(0)
    model = load_model({"name": str(folder), "dtype": "float64"}, num_labels=2)
    return model, make_objective(data, model_kind="encoder", device="cpu")


@pytest.mark.parametrize("rank", [None, 2])
def test_one_step_is_the_best_eta_times_the_negative_gradient(setting, rank):
    pretrained, objective = setting
    step = {"examples": 6, "batch_size": 3, "etas": ETAS, **({"rank": rank} if rank else {})}
    model = copy.deepcopy(pretrained)
    chosen = one_step(model, objective, SPEC, step, seed=0)

    reference = copy.deepcopy(pretrained).eval()
    layers = target_linears(reference, SPEC["targets"] + SPEC["train_modules"])
    assert "head" in layers and len(layers) == 5  # q, v of two layers and the head
    batches = [objective.data.train[0:3], objective.data.train[3:6]]
    grads = [torch.zeros_like(m.weight) for m in layers.values()]
    for batch in batches:
        for total, g in zip(grads, torch.autograd.grad(objective.loss(reference, batch) / 2,
                                                         [m.weight for m in layers.values()])):
            total += g
    directions = []
    for g in grads:
        if rank:
            U, S, Vh = torch.linalg.svd(g, full_matrices=False)
            g = (U[:, :rank] * S[:rank]) @ Vh[:rank]
        directions.append(-g)
    losses = {}
    for eta in ETAS:
        trial = copy.deepcopy(reference)
        with torch.no_grad():
            for m, d in zip(target_linears(trial, list(layers)).values(), directions):
                m.weight += eta * d
        losses[eta] = batch_loss(trial, objective, batches)
    assert chosen["eta"] == min(losses, key=losses.get)
    for (name, m), d in zip(layers.items(), directions):
        torch.testing.assert_close(model.get_submodule(name).weight, m.weight + chosen["eta"] * d,
                                   rtol=0, atol=1e-10)


def test_runs_sweep_rates_only_in_a_sweep_and_untrained_rows_run_once_per_seed():
    settings = {"methods": {"pretrain": {}, "lora": {"init": "default", "lr": 3e-4}, "lora_one": {"init": "lora_one"}},
                "lr": 1e-3, "seeds": 2, "tasks": {"rt": {}}}
    assert runs(settings, "rt") == [("pretrain", None, "task=rt", 0), ("pretrain", None, "task=rt", 1),
                                    ("lora", 3e-4, "task=rt", 0), ("lora", 3e-4, "task=rt", 1),
                                    ("lora_one", 1e-3, "task=rt", 0), ("lora_one", 1e-3, "task=rt", 1)]
    sweep = {**settings, "lrs": [1e-3, 1e-4], "seeds": 1}
    assert run_records(sweep, "fig6", "rt")[1:3] == ["results/lora_one/fig6/lora/lr=0.001_task=rt/seed=0/metrics.json",
                                                     "results/lora_one/fig6/lora/lr=0.0001_task=rt/seed=0/metrics.json"]
