"""The runs of a NoRA experiment. Its config block has a `methods` map; inside a method, a list-valued
key is swept (e.g. `xi: [0.001, 0.1, 1, 10]`) and names the run folder (`xi=0.001`), a method with
no list is one run in `base`. The rules and the scripts read the grid from here, so they agree."""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from lorarepro.config import format_setting

# method -> (algorithm, initialisation)
METHODS = {
    "gd_small": ("gd", "small"),
    "scaledgd_small": ("scaledgd", "small"),
    "scaledgd_nystrom": ("scaledgd", "nystrom"),
    "scaledgd_perturbed": ("scaledgd", "perturbed"),
    "altgd_sketch": ("altgd", "sketch"),
}


def runs(settings: Mapping[str, Any]) -> list[tuple[str, str, dict]]:
    """(method, setting folder, the method's values at that grid point) for every run."""
    out = []
    for method, values in settings["methods"].items():
        swept = sorted(k for k, v in values.items() if isinstance(v, list))
        for combo in itertools.product(*(values[k] for k in swept)):
            point = dict(zip(swept, combo))
            out.append((method, format_setting(point) if point else "base", {**values, **point}))
    return out


def run_values(settings: Mapping[str, Any], method: str, setting: str) -> dict:
    """The experiment's settings with one run's method values on top (what that run used)."""
    for m, s, values in runs(settings):
        if (m, s) == (method, setting):
            shared = {k: v for k, v in settings.items() if k != "methods"}
            return {**shared, **values}
    raise KeyError(f"no run {method}/{setting} in this experiment; runs: {[r[:2] for r in runs(settings)]}")


def lm_tasks(settings: Mapping[str, Any]) -> dict[str, dict]:
    """The tasks of a language-model experiment (Tables 2 and 4) at this scale: each task block with the
    scale's `task_sizes` (train/eval sizes, max_length) under it, so that a task's own size wins (ReCoRD's
    and SQuAD's long passages); a task set to null at a scale is dropped (the paper scale swaps the
    offline stand-ins for the paper's tasks)."""
    sizes = settings.get("task_sizes") or {}
    return {name: {**sizes, **block} for name, block in settings["tasks"].items() if block is not None}


def lm_runs(settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(method, task, setting folder `task=<task>`) of every language-model run (all seeds in one job)."""
    return [(method, task, format_setting({"task": task}))
            for method in settings["methods"] for task in lm_tasks(settings)]
