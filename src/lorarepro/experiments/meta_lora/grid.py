"""The runs of the Meta-LoRA synthetic experiments, read from one model's config block (`linear` or
`shallow`). The rules and the scripts both take the grid from here, so they agree on every path.

A model block has a `base` point (T, n, N, k, d) and `sweeps`: each sweep (a figure panel) varies one
of those keys over `values`, optionally from its own base (the linear k sweep runs at d = 20,
N = 1000). A fine-tuning run is (sweep, method, value), in the folder `<key>=<value>`; retraining
depends on the point without n, so runs that share (T, N, k, d) share one retrained base (e.g. the
default point appears in every sweep but is retrained once per method).

`protocol: code` replaces the paper's settings by the authors' code's (the block's `code` entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lorarepro.config import deep_merge, format_setting

PAPER = "meta_lora"
METHODS = ("sr", "lora_ml")
RETRAIN_KEYS = ("T", "N", "k", "d")
# Each sweep figure and its panels, the fine-tuning experiments <model>_<sweep> (Figure 5 is the theory's).
FIGURES = {
    "figure_1": ["linear_T", "linear_n"],
    "figure_2": ["shallow_T", "shallow_n"],
    "figure_3": ["linear_N", "linear_k", "linear_d"],
    "figure_4": ["shallow_N", "shallow_k", "shallow_d"],
}


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


def retrain_points(settings: Mapping[str, Any]) -> list[str]:
    """The setting folder of every distinct retraining point, in sweep order."""
    settings = resolve(settings)
    return list(dict.fromkeys(retrain_setting(point(settings, sweep, value))
                              for sweep, spec in settings["sweeps"].items() for value in spec["values"]))


def bases_file(root: str | Path, model: str, method: str, point: str) -> Path:
    """Where the retraining job leaves a point's retrained bases (all trials) for fine-tuning."""
    return Path(root) / PAPER / f"{model}_retrain" / method / point / "bases.pt"


def results_root(record: str) -> Path:
    """The results folder of a run record <root>/<paper>/<experiment>/<method>/<setting>/seed=<s>/metrics.json."""
    return Path(record).parents[5]


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


# Theory checks: (record experiment, method, per-run setting key) of each config entry.
THEORY = {"thm2": ("theory_thm2", "monte_carlo"), "prop3": ("theory_prop3", "monte_carlo"),
          "gd_population": ("theory_gd", "gd"), "e1_family": ("theory_e1", "gd")}


def theory_points(settings: Mapping[str, Any], check: str) -> list[dict]:
    """The runs of one theory check: its (T, k, d) points, task counts, or E.1 parameters s."""
    spec = settings[check]
    if check == "thm2":
        return list(spec["points"])
    if check == "e1_family":
        return [{"s": float(s)} for s in spec["s"]]
    return [{"T": T, "k": spec["k"], "d": spec["d"]} for T in spec["Ts"]]


def theory_runs(settings: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(experiment, method, setting folder) of every theory-check run."""
    return [(*THEORY[check], format_setting(p)) for check in THEORY for p in theory_points(settings, check)]
