"""The training loop on a tiny BERT: it learns, accumulates gradients exactly, resumes from a checkpoint as
if never stopped, and records a diverged run instead of crashing."""

from __future__ import annotations

import pytest
import torch

import engine_tiny
from lorarepro.adapters.build import build_adapter
from lorarepro.data.tasks import load_task
from lorarepro.models.load import load_model, load_tokenizer
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.train.loop import TrainConfig, train
from lorarepro.train.objectives import make_objective

ADAPTER = {"init": "default", "r": 4, "alpha": 8, "targets": ["query", "value"], "train_modules": ["head"]}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"root": root, "data": engine_tiny.datasets(root), "bert": engine_tiny.bert_folder(root),
            "bert_nodrop": engine_tiny.bert_folder(root, dropout=0.0)}


def setup(assets, *, folder="bert", kind="classification", dataset="sentiment", adapter=ADAPTER, seed=0):
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(str(assets[folder]))
    data = load_task({"dataset": str(assets["data"][dataset]), "kind": kind}, tokenizer)
    model = load_model({"name": str(assets[folder])}, num_labels=data.num_labels)
    objective = make_objective(data, model_kind="encoder", device="cpu")
    model, info = build_adapter(model, adapter, seed=seed)
    return model, objective, info


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_it_learns_the_tiny_sentiment_task(assets):
    model, objective, _ = setup(assets)
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-2})
    result = train(model, objective, opt, TrainConfig(steps=40, batch_size=16, eval_every=20, progress=False), seed=0)
    assert [e["step"] for e in result.evals] == [0, 20, 40]
    assert result.evals[-1]["accuracy"] >= 0.9 > result.evals[0]["accuracy"]
    rows = {r["step"]: r for r in result.trace}
    assert {"loss", "lr", "step_s", "peak_rss_mb"} <= set(rows[1]) and "eval_accuracy" in rows[40]
    assert "eval_f1" not in rows[39]


def test_gradient_accumulation_equals_one_large_batch(assets):
    """Two accumulated batches of 8 equal one batch of 16: the sampler draws the same permutation."""
    runs = []
    for batch_size, accum in ((16, 1), (8, 2)):
        model, objective, _ = setup(assets, folder="bert_nodrop")
        opt = build_optimizer(model, {"name": "adamw", "lr": 1e-2})
        config = TrainConfig(steps=3, batch_size=batch_size, grad_accum=accum, eval_at_start=False, progress=False)
        train(model, objective, opt, config, seed=0)
        runs.append(trainable(model))
    for name in runs[0]:
        torch.testing.assert_close(runs[0][name], runs[1][name], rtol=1e-5, atol=1e-6)


def test_a_resumed_run_equals_an_uninterrupted_one(assets, tmp_path, monkeypatch):
    """Dropout is on and the schedule decays, so the RNG, sampler and schedule states all matter."""
    config = TrainConfig(steps=6, batch_size=8, schedule="linear", checkpoint_every=3, eval_every=3, progress=False)
    spec = {**ADAPTER, "init": "pissa"}  # moves base weights, which the checkpoint must keep

    model, objective, info = setup(assets, adapter=spec)
    whole = train(model, objective, build_optimizer(model, {"name": "adamw", "lr": 1e-2}), config, seed=0,
                  checkpoint_dir=tmp_path / "whole", extra_state=info.moved_base)
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}

    model, objective, info = setup(assets, adapter=spec)
    calls = {"n": 0}
    real_loss = objective.loss

    def dying_loss(m, examples):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return real_loss(m, examples)

    monkeypatch.setattr(objective, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(model, objective, build_optimizer(model, {"name": "adamw", "lr": 1e-2}), config, seed=0,
              checkpoint_dir=tmp_path / "resumed", extra_state=info.moved_base)
    monkeypatch.undo()

    model, objective, info = setup(assets, adapter=spec)
    torch.manual_seed(123)  # a restarted job's RNG state is not the killed one's: the checkpoint restores it
    resumed = train(model, objective, build_optimizer(model, {"name": "adamw", "lr": 1e-2}), config, seed=0,
                    checkpoint_dir=tmp_path / "resumed", extra_state=info.moved_base)
    for name, value in model.named_parameters():
        torch.testing.assert_close(value.detach(), expected[name], rtol=0, atol=0)
    assert [r["step"] for r in resumed.trace] == [r["step"] for r in whole.trace]
    assert resumed.evals == whole.evals


def test_a_nonfinite_loss_ends_the_run_as_diverged(assets, monkeypatch):
    model, objective, _ = setup(assets)
    real_loss, calls = objective.loss, {"n": 0}

    def blowing_up(m, examples):
        calls["n"] += 1
        loss = real_loss(m, examples)
        return loss * float("inf") if calls["n"] == 3 else loss

    monkeypatch.setattr(objective, "loss", blowing_up)
    result = train(model, objective, build_optimizer(model, {"name": "adamw", "lr": 1e-3}),
                   TrainConfig(steps=10, eval_at_start=False, progress=False), seed=0)
    assert result.diverged_at == 3 and result.trace[-1]["step"] == 3 and result.evals == []


def test_unknown_training_settings_are_errors():
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"steps": 3, "epochs": 2})
