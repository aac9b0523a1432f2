"""Table 1's language-model pipeline: the k-candidate selection task and objective, SR as Algorithm 1's
step without adapters, the engine blocks of each stage, and the table's median-then-mean."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lorarepro.adapters.multitask import base_parameters, build_task_adapters, task_adapter_names
from lorarepro.data.tasks import TaskData, selection_rows
from lorarepro.experiments.meta_lora import lm
from lorarepro.experiments.meta_lora.lm_table import table_1
from lorarepro.metrics.tasks import accuracy
from lorarepro.train.meta import meta_step
from lorarepro.train.objectives import Selection

POOL = pd.DataFrame({
    "sentence1": ["a cat sits on the mat", "a cat sits on the mat", "dogs run in the park", "the sun is hot",
                  "a man plays guitar"],
    "sentence2": ["a cat is sitting on a mat", "a cat sat on the mat", "dogs are running in a park",
                  "it is cold today", "the cat sits by the door"],
    "label": [5.0, 4.5, 4.0, 0.5, 1.0],
})


def anchors():
    return POOL.query("label >= 4").reset_index(drop=True)


@pytest.mark.parametrize("negatives", ["hard", "random"])
def test_selection_rows_hold_the_true_answer_once_and_no_other_answer(negatives):
    rows = selection_rows(POOL, anchors(), 3, negatives=negatives, seed=3)
    answers = anchors().groupby("sentence1")["sentence2"].agg(set).to_dict()
    for first, candidates, label, true in zip(rows["sentence1"], rows["candidates"], rows["label"],
                                              anchors()["sentence2"], strict=True):
        assert len(candidates) == len(set(candidates)) == 3
        assert candidates[label] == true
        distractors = set(candidates) - {true}
        assert not distractors & (answers[first] | {first})


def test_hard_negatives_are_the_pool_sentences_sharing_most_words():
    rows = selection_rows(POOL, anchors().iloc[[2]], 2, negatives="hard")
    # "dogs run in the park" shares only "the" with other sentences: Jaccard 1/9 with "the cat sits by
    # the door", 1/10 with "a cat sat on the mat", 0 with the rest
    (candidates,) = rows["candidates"]
    assert set(candidates) == {"dogs are running in a park", "the cat sits by the door"}


def test_selection_rows_refuse_too_few_distractors():
    with pytest.raises(ValueError, match="distractors"):
        selection_rows(POOL, anchors(), 5)


class LengthScorer(nn.Module):
    """A one-output 'encoder' whose score is a weighted token count, so scores are known in closed form."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))

    def forward(self, input_ids, attention_mask, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=(self.w * attention_mask.sum(-1, keepdim=True).float()))


def selection_objective():
    examples = [{"input_ids": [1], "label": 2, "choices": [{"input_ids": [1] * n} for n in (1, 3, 2)]},
                {"input_ids": [1], "label": 1, "choices": [{"input_ids": [1] * n} for n in (2, 4, 1)]}]
    data = TaskData("selection", examples, examples, ["accuracy"], pad_id=0, num_labels=1)
    return Selection(data, model_kind="encoder", device="cpu"), examples


def test_selection_loss_is_cross_entropy_over_each_examples_candidates():
    objective, examples = selection_objective()
    model = LengthScorer()
    scores = 0.5 * torch.tensor([[1.0, 3.0, 2.0], [2.0, 4.0, 1.0]])
    torch.testing.assert_close(objective.scores(model, examples), scores)
    torch.testing.assert_close(objective.loss(model, examples), F.cross_entropy(scores, torch.tensor([2, 1])))


def test_selection_accuracy_counts_the_best_scored_candidate():
    objective, examples = selection_objective()
    predictions = objective.predict(LengthScorer(), examples)
    assert predictions == [1, 1]
    assert accuracy(predictions, [e["label"] for e in examples]) == 0.5


def test_sr_and_lora_ml_take_the_same_first_base_step():
    """Algorithm 1's base update is the SR update: with every task adapter at its function-preserving
    init (lora_B = 0, no dropout), one LoRA-ML step moves the base exactly as one SR step from the same
    weights on the same task batches (the base sees the sum of the tasks' gradients either way)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    names = task_adapter_names(3)
    gen = torch.Generator().manual_seed(1)
    batches = {n: (torch.randn(8, 5, generator=gen, dtype=torch.float64),
                   torch.randn(8, 1, generator=gen, dtype=torch.float64)) for n in names}

    def loss_fn(model, batch):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    sr = copy.deepcopy(net)
    meta_step(sr, batches, loss_fn, None, torch.optim.SGD(sr.parameters(), lr=0.1))
    ml = build_task_adapters(copy.deepcopy(net), {"init": "default", "r": 2, "alpha": 4, "targets": ["0", "2"]},
                             names, seed=0)
    adapters = [p for n, p in ml.named_parameters() if "lora_" in n]
    meta_step(ml, batches, loss_fn, torch.optim.SGD(adapters, lr=0.1), torch.optim.SGD(base_parameters(ml), lr=0.1))
    unloaded = ml.unload()
    for (name, expected), got in zip(sr.state_dict().items(), unloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(got, expected, msg=name)
    assert not torch.equal(sr[0].weight, net[0].weight)


SETTINGS = {
    "scale": "default", "device": "cpu", "model": {"name": "minilm_l6", "kind": "encoder"},
    "task": {"dataset": "stsb", "kind": "selection", "candidates": 5}, "group": "source",
    "retrain_tasks": ["images", "MSRvid"], "test_tasks": ["deft-news", "answer-answer"],
    "task_splits": {"answer-answer": "test"}, "retrain_methods": ["sr", "lora_ml_8"],
    "methods": {"sr": {"lr": 1e-4}, "lora_ml_8": {"r": 8, "lr": 1e-4, "adapter_lr": 1e-3}},
    "adapter": {"alpha": 16, "targets": ["query"]},
    "finetune": {"ranks": {"sr": [8, 16], "lora_ml_8": [8]}, "train_size": 16, "eval_size": 48,
                 "optimizer": {"name": "adamw", "lr": 1e-3}, "train": {"steps": 4}},
}


def test_stage_blocks_name_each_task_by_its_group_and_split():
    assert lm.retrain_tasks(SETTINGS)["MSRvid"]["where"] == "source == 'MSRvid'"
    assert lm.retrain_adapter(SETTINGS, "sr") is None and lm.retrain_adapter(SETTINGS, "lora_ml_8")["r"] == 8
    assert lm.finetune_runs(SETTINGS, "sr") == [(8, "deft-news"), (8, "answer-answer"), (16, "deft-news"),
                                                (16, "answer-answer")]
    params = lm.finetune_params(SETTINGS, "sr", 1, 16, "answer-answer", "base.pt")
    assert params["task"]["train_split"] == "test" and params["task"]["eval_split"] == "rest"
    assert params["model"]["weights"] == "base.pt" and params["adapter"]["r"] == 16
    assert (params["test_task"], params["finetune_rank"]) == ("answer-answer", 16)


def test_table_takes_the_median_over_seeds_then_the_mean_over_tasks():
    rows = [{"experiment": lm.FINETUNE, "method": method, "seed": seed, "params.finetune_rank": 8,
             "params.test_task": task, "metrics.best_accuracy": value}
            for method, task, values in [("sr", "a", [0.1, 0.5, 0.2]), ("sr", "b", [0.6, 0.6, 0.9]),
                                         ("lora_ml_8", "a", [0.3, 0.3, 0.3]), ("lora_ml_8", "b", [1.0, 0.0, 0.5])]
            for seed, value in enumerate(values)]
    frame = table_1(pd.DataFrame(rows), ["a", "b"], ["sr", "lora_ml_8"]).set_index("method")
    assert frame.loc["sr", "a"] == 20.0 and frame.loc["sr", "b"] == 60.0
    assert frame.loc["sr", "average"] == 40.0 and frame.loc["lora_ml_8", "average"] == 40.0
    assert frame.loc["lora_ml_8", "paper_average"] == 45.76
    assert np.isclose(frame.loc["sr", "paper_task_min"], 37.23)
