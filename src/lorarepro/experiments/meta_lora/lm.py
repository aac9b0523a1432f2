"""Table 1's language-model experiment, shared by its scripts and rules: which tasks, runs and
records exist, and the engine parameters of each stage.

Tasks are groups of a multi-task data set (`group` column; at the default scale the STS-B source
corpora: headlines, images, MSRpar, ...), each a `selection` task of the engine (pick the true
paraphrase of a sentence among `candidates`). Retraining (`lm_retrain`) fits a base to the
`retrain_tasks` by standard retraining (SR) or LoRA-ML with rank-r adapters (`lora_ml_<r>`); every
retrained base is then fine-tuned (`lm_finetune`) with a new rank-`finetune_rank` LoRA on each of the
held-out `test_tasks`, few-shot, one task at a time.
"""

from __future__ import annotations

from typing import Any, Mapping

from lorarepro.config import format_setting

PAPER = "meta_lora"
RETRAIN, FINETUNE = "lm_retrain", "lm_finetune"
BASE_FILE = "base.pt"


def task_block(settings: Mapping[str, Any], task: str, split: str, **extra) -> dict[str, Any]:
    """The engine's task block of one task: the shared block restricted to the task's group."""
    where = f"{settings['group']} == {task!r}"
    return {**settings["task"], "where": where, "train_split": split, **extra}


def retrain_tasks(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Task name -> task block of every retraining task (all of its anchors, in the split that holds it)."""
    splits = settings.get("task_splits", {})
    return {task: task_block(settings, task, splits.get(task, "train")) for task in settings["retrain_tasks"]}


def test_task(settings: Mapping[str, Any], task: str) -> dict[str, Any]:
    """A held-out task: `finetune.train_size` anchors to fine-tune on, the rest (at most `eval_size`)
    to score, both from the split that holds the task (`task_splits`, else train)."""
    spec = settings["finetune"]
    split = settings.get("task_splits", {}).get(task, "train")
    return task_block(settings, task, split, train_size=spec["train_size"],
                      eval_split="rest", eval_size=spec.get("eval_size"))


def retrain_methods(settings: Mapping[str, Any]) -> list[str]:
    return list(settings["retrain_methods"])


def finetune_ranks(settings: Mapping[str, Any], method: str) -> list[int]:
    return list(settings["finetune"]["ranks"][method])


def finetune_setting(rank: int, task: str) -> str:
    return format_setting({"r": rank, "task": task})


def finetune_runs(settings: Mapping[str, Any], method: str) -> list[tuple[int, str]]:
    """(rank, task) of every fine-tuning run of one retrained base, in the order its job runs them."""
    return [(rank, task) for rank in finetune_ranks(settings, method) for task in settings["test_tasks"]]


def retrain_adapter(settings: Mapping[str, Any], method: str) -> dict[str, Any] | None:
    """The per-task adapter spec of a retraining method (None for SR)."""
    rank = settings["methods"][method].get("r")
    return None if rank is None else {**settings["adapter"], "init": "default", "r": rank}


def finetune_params(settings: Mapping[str, Any], method: str, seed: int, rank: int, task: str,
                    base: str) -> dict[str, Any]:
    """The engine's parameters of one fine-tuning run: the retrained base (frozen), a new rank-`rank`
    LoRA on the same layers, the retrained head trained with it."""
    spec = settings["finetune"]
    return {
        "paper": PAPER, "experiment": FINETUNE, "method": method, "seed": seed, "scale": settings["scale"],
        "device": settings["device"], "threads": settings.get("threads"),
        "test_task": task, "finetune_rank": rank,
        "model": {**settings["model"], "weights": base},
        "task": test_task(settings, task),
        "adapter": {**settings["adapter"], "init": "default", "r": rank, "train_modules": ["head"]},
        "optimizer": dict(spec["optimizer"]),
        "train": {**spec["train"], "progress": False},
    }


# Table 1 of the paper (spec §3): median accuracy (%) over 5 trials on test personas T1..T10 and
# their mean, by fine-tuning rank and retraining method.
PAPER_TABLE_1 = {
    (8, "sr"): [43.75, 40.00, 43.48, 41.94, 41.03, 37.23, 42.73, 43.20, 41.13, 40.76, 41.52],
    (8, "lora_ml_8"): [50.00, 50.00, 47.82, 48.39, 46.15, 41.49, 44.55, 44.00, 42.55, 42.68, 45.76],
    (16, "sr"): [43.75, 43.33, 39.13, 38.71, 39.74, 35.11, 38.18, 39.20, 39.72, 38.85, 39.57],
    (16, "lora_ml_8"): [50.0, 53.33, 50.0, 50.0, 48.72, 42.55, 45.45, 44.80, 45.39, 44.59, 47.48],
    (16, "lora_ml_16"): [43.75, 33.33, 36.96, 40.32, 43.59, 39.36, 42.73, 41.60, 40.43, 40.13, 40.22],
}
