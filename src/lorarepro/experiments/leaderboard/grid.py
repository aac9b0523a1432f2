"""The runs of the leaderboard and the engine parameters of each, from the `leaderboard:` config block.

Per task and method: a learning-rate sweep at the sweep seed, scored on the validation split
(`<task>/<method>/lr=<lr>/seed=<s>`), then every seed at the selected rate, scored on the held-out
split (`<task>/<method>/selected/seed=<s>`). The selected rate is only known once the sweep has run,
so the second kind of folder is named `selected` and its record says which rate it used. The rules
and the job script read the grid from here, so they agree.
"""

from __future__ import annotations

from typing import Any, Mapping

from lorarepro.config import ConfigError, deep_merge, format_setting, seeds_of

PAPER = "leaderboard"
SELECTED = "selected"
# Optimizers that act on PEFT's (lora_A, lora_B) pairs need a two-factor init, not one of these
# (adapters.build.FACTORED; named here so that parsing the workflow does not import torch).
FACTORED_INITS = ("deep", "lora_sb")
PAIR_OPTIMIZERS = ("loraplus", "preconditioned_adamw")


def leaderboard_settings(config: Mapping[str, Any], scale: str | None = None) -> dict:
    """The `leaderboard` block at the active (or given) scale: `common` merged with the scale's block."""
    block = config.get(PAPER) or {}
    settings = deep_merge(block.get("common", {}), block.get(scale or config["scale"], {}))
    check(settings)
    return settings


def check(settings: Mapping[str, Any]) -> None:
    """Cross-field checks the schema cannot express."""
    for name, method in settings.get("methods", {}).items():
        if "init" not in method:
            raise ConfigError(f"config key leaderboard.methods.{name}: no init (set it in `common` or the scale's block)")
        optimizer = method.get("optimizer", {}).get("name", "adamw")
        if optimizer in PAIR_OPTIMIZERS and method["init"] in FACTORED_INITS:
            raise ConfigError(f"config key leaderboard.methods.{name}: optimizer {optimizer!r} needs a LoRA "
                              f"(A, B) init, not {method['init']!r}")
    for name, task in settings.get("tasks", {}).items():
        unknown = sorted(set(task.get("methods") or []) - set(settings.get("methods", {})))
        if unknown:
            raise ConfigError(f"config key leaderboard.tasks.{name}.methods: unknown method(s) {unknown}")
        if task.get("cache_lower_layers") and task["model"].get("kind", "encoder") != "encoder":
            raise ConfigError(f"config key leaderboard.tasks.{name}: cache_lower_layers needs an encoder model")
    if settings.get("sweep_seed", 0) not in seeds_of(settings):
        raise ConfigError("config key leaderboard.sweep_seed: must be one of the seeds")


def job_settings(config: Mapping[str, Any], task: str) -> dict:
    """What one task's job reads: the leaderboard settings, with the task's own resources on top."""
    settings = leaderboard_settings(config)
    if task not in settings.get("tasks", {}):
        raise ConfigError(f"config has no leaderboard task {task!r} at scale {config['scale']!r}")
    resources = {**settings.get("resources", {}), **settings["tasks"][task].get("resources", {})}
    return {**settings, "resources": resources}


def task_methods(settings: Mapping[str, Any], task: str) -> list[str]:
    """The methods run on a task: the task's own list if it has one, else every method."""
    return list(settings["tasks"][task].get("methods") or settings["methods"])


def lr_grid(settings: Mapping[str, Any], method: str) -> list[float]:
    """The learning rates swept for `method`: its own grid if it has one, else the shared grid."""
    return [float(lr) for lr in settings["methods"][method].get("lr_grid", settings["lr_grid"])]


def lr_folder(lr: float) -> str:
    return format_setting({"lr": float(lr)})


def sweep_runs(settings: Mapping[str, Any], task: str) -> list[tuple[str, str]]:
    """(method, setting folder) of every sweep run of a task."""
    return [(method, lr_folder(lr)) for method in task_methods(settings, task) for lr in lr_grid(settings, method)]


def run_records(settings: Mapping[str, Any], task: str, name: str = "metrics.json") -> list[str]:
    """Every run file of a task's job: the sweep at the sweep seed, then the selected runs of every seed."""
    root = f"results/{PAPER}/{task}"
    sweep_seed = settings.get("sweep_seed", 0)
    sweep = [f"{root}/{method}/{setting}/seed={sweep_seed}/{name}" for method, setting in sweep_runs(settings, task)]
    final = [f"{root}/{method}/{SELECTED}/seed={seed}/{name}" for method in task_methods(settings, task)
             for seed in seeds_of(settings)]
    return sweep + final


def engine_params(settings: Mapping[str, Any], task: str, method: str, lr: float, seed: int,
                  eval_split: str) -> dict[str, Any]:
    """The engine's parameter blocks (see lorarepro.train.run) of one run."""
    spec, values = settings["tasks"][task], settings["methods"][method]
    adapter = {"init": values["init"], "r": settings["rank"], "alpha": settings.get("alpha", settings["rank"]),
               "rslora": bool(settings.get("rslora", False)),
               "targets": spec["targets"], "train_modules": spec.get("train_modules", []),
               "init_options": values.get("init_options", {}), "gradient": settings.get("gradient", {})}
    optimizer = deep_merge({"name": "adamw"}, values.get("optimizer", {}))
    optimizer["lr"] = float(lr)
    train = {**settings["train"], **spec.get("train", {}), "eval_every": 0, "eval_at_start": False, "progress": False}
    return {"paper": PAPER, "experiment": task, "method": method, "seed": int(seed), "model": spec["model"],
            "task": {**spec["task"], "eval_split": eval_split}, "adapter": adapter, "optimizer": optimizer,
            "train": train, "adapt_top": spec.get("adapt_top"),
            "cache_lower_layers": bool(spec.get("cache_lower_layers", False))}
