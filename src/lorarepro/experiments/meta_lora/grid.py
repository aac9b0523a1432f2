"""The runs of the Meta-LoRA synthetic experiments, read from one model's config block (`linear` or
`shallow`). The rules and the scripts both take the grid from here, so they agree on every path.

A model block has a `base` point (T, n, N, k, d) and `sweeps`: each sweep (a figure panel) varies one
of those keys over `values`, optionally from its own base (the linear k sweep runs at d = 20,
N = 1000). A fine-tuning run is (sweep, method, value), in the folder `<key>=<value>`; retraining
depends on the point without n, so runs that share (T, N, k, d) share one retraining job (e.g. the
default point appears in every sweep but is retrained once per method).

`protocol: code` replaces the paper's settings by the authors' code's (the block's `code` entry).
"""

from __future__ import annotations

from typing import Any, Mapping

from lorarepro.config import deep_merge, format_setting

METHODS = ("sr", "lora_ml")
RETRAIN_KEYS = ("T", "N", "k", "d")


def resolve(settings: Mapping[str, Any]) -> dict:
    """The settings in force: the paper's, or with `protocol: code` the authors' code's on top."""
    out = {k: v for k, v in settings.items() if k != "code"}
    return deep_merge(out, settings.get("code", {})) if settings.get("protocol") == "code" else out


def point(settings: Mapping[str, Any], sweep: str, value: int) -> dict[str, int]:
    """The full (T, n, N, k, d) of one run of a sweep."""
    spec = settings["sweeps"][sweep]
    return {**settings["base"], **spec.get("base", {}), sweep: value}


def finetune_runs(settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(sweep, method, setting folder) of every fine-tuning run."""
    settings = resolve(settings)
    return [(sweep, method, format_setting({sweep: value}))
            for sweep, spec in settings["sweeps"].items() for value in spec["values"] for method in METHODS]


def retrain_setting(p: Mapping[str, int]) -> str:
    return format_setting({k: p[k] for k in RETRAIN_KEYS})


def retrain_runs(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(method, setting folder) of every distinct retraining run."""
    settings = resolve(settings)
    folders = {retrain_setting(point(settings, sweep, value)): None
               for sweep, spec in settings["sweeps"].items() for value in spec["values"]}
    return [(method, folder) for folder in folders for method in METHODS]


def parse_setting(setting: str) -> dict[str, int]:
    """`N=1000_T=3_d=10_k=1` -> {'N': 1000, ...} (every key of these grids is an integer)."""
    return {key: int(value) for key, value in (part.split("=") for part in setting.split("_"))}


def finetune_point(settings: Mapping[str, Any], sweep: str, setting: str) -> dict[str, int]:
    """The point of one fine-tuning run folder (settings resolved)."""
    (key, value), = parse_setting(setting).items()
    if key != sweep or value not in settings["sweeps"][sweep]["values"]:
        raise KeyError(f"no run {setting} in sweep {sweep}")
    return point(settings, sweep, value)


def finetune_rank(settings: Mapping[str, Any], p: Mapping[str, int]) -> int:
    """Rank of the fine-tuning adapter: k, or `rank_factor_at_T2`·k when T = 2 (3k in the linear runs,
    where Theorem 5 leaves a rank-2k error in Â)."""
    factor = settings["finetune"].get("rank_factor_at_T2", 1) if p["T"] == 2 else 1
    return factor * p["k"]


def finetune_steps(settings: Mapping[str, Any], sweep: str) -> int:
    """The sweep's own step count, else the model's (settings resolved)."""
    return settings["sweeps"][sweep].get("finetune_steps", settings["finetune"]["steps"])
