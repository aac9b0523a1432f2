"""The runs of LoRA-One's language-model experiments (Table 2, Figure 6), from the experiment's settings.

One job per task runs every (method, learning rate, seed) of the task in one process; the rules and the
job script both read the run list from here, so they agree. Methods are of two kinds:

- engine methods (`init` + `optimizer`, as the leaderboard's): fine-tuned through the engine;
- untrained methods: the pretrained model (`{}`), or with a `one_step` block the one-step full-gradient
  update W₀ − η·∇W, or its rank-r approximation W₀ − η·P_r(∇W) (`one_step.rank`), η chosen by the loss
  on the gradient batch (see lora_one.lm_runs).

Table 2 uses each method's own `lr` (or the shared `lr`); Figure 6 sweeps every method over `lrs`.
"""

from __future__ import annotations

from typing import Any, Mapping

from lorarepro.config import format_setting, seeds_of

PAPER = "lora_one"


def is_trained(method: Mapping[str, Any]) -> bool:
    return "init" in method


def method_lrs(settings: Mapping[str, Any], name: str) -> list[float | None]:
    """The learning rates a method runs at: `lrs` (a sweep), else its own or the shared `lr`; None when
    it does not train."""
    method = settings["methods"][name]
    if not is_trained(method):
        return [None]
    if "lrs" in settings:
        return [float(lr) for lr in settings["lrs"]]
    return [float(method.get("lr", settings["lr"]))]


def setting_folder(settings: Mapping[str, Any], task: str, lr: float | None) -> str:
    """`task=<task>`, plus `_lr=<lr>` in a learning-rate sweep."""
    values: dict[str, Any] = {"task": task}
    if "lrs" in settings and lr is not None:
        values["lr"] = lr
    return format_setting(values)


def task_methods(settings: Mapping[str, Any], task: str) -> list[str]:
    """The methods run on a task: the task's own list if it has one, else every method."""
    return list(settings["tasks"][task].get("methods") or settings["methods"])


def runs(settings: Mapping[str, Any], task: str) -> list[tuple[str, float | None, str, int]]:
    """(method, lr, setting folder, seed) of every run of a task's job."""
    return [(method, lr, setting_folder(settings, task, lr), seed) for method in task_methods(settings, task)
            for lr in method_lrs(settings, method) for seed in seeds_of(settings)]


def run_records(settings: Mapping[str, Any], experiment: str, task: str, name: str = "metrics.json") -> list[str]:
    return [f"results/{PAPER}/{experiment}/{method}/{setting}/seed={seed}/{name}"
            for method, _, setting, seed in runs(settings, task)]
