"""The leaderboard's statistics: the learning rate a sweep selects, ranks per task, and the paired
comparison of every method with the task's best over the same seeds.

Seeds are paired: on one task, seed s gives every method the same training subset, batch order and
head initialisation, so the comparison uses per-seed differences (a paired t-test), which removes
the seed-to-seed variation the methods share. For each difference we also report how many seeds a
difference of the observed size and spread would need to be significant — the honest answer to
"is this noise?" when a default run has only three seeds.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

MAX_SEEDS = 100_000  # beyond this, a difference is reported as never significant (inf)


def select_rate(scores: Mapping[float, float | None]) -> float:
    """The learning rate with the best validation score (higher is better); the first one in the
    grid's order on a tie; the smallest rate when every run diverged (no finite score)."""
    finite = {lr: s for lr, s in scores.items() if s is not None and math.isfinite(s)}
    if not finite:
        return min(scores)
    best = max(finite.values())
    return next(lr for lr, s in finite.items() if s == best)


def summarize_methods(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method) from one row per run (columns task, method, seed, value, wall_s, peak_mb):
    mean and std (ddof 1) of the value over seeds with a finite value, their count, the runs that
    diverged (no value), and mean wall time and the largest peak memory of the runs."""
    grouped = runs.groupby(["task", "method"], sort=False)
    out = grouped["value"].agg(mean="mean", std="std", seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["diverged"] = grouped["value"].apply(lambda v: int(v.isna().sum())).to_numpy()
    out["wall_s"] = grouped["wall_s"].mean().to_numpy()
    out["peak_mb"] = grouped["peak_mb"].max().to_numpy()
    return out


def rank_within_tasks(summary: pd.DataFrame) -> pd.Series:
    """Rank of each method on its task by mean (1 = best; ties share the better rank; no value = last)."""
    return summary.groupby("task")["mean"].rank(ascending=False, method="min", na_option="bottom").astype(int)


def average_ranks(summary: pd.DataFrame) -> pd.DataFrame:
    """Per method: its mean rank over the tasks that every method ran (a rank among fewer methods is not
    comparable: 2nd of 2 would count as better than 3rd of 13), the number of such tasks, and its mean
    wall time and peak memory over all its tasks."""
    methods = summary["method"].nunique()
    shared = summary.groupby("task")["method"].transform("nunique") == methods
    ranks = (summary[shared].groupby("method", sort=False)
             .agg(average_rank=("rank", "mean"), tasks=("task", "count")))
    costs = summary.groupby("method", sort=False).agg(wall_s=("wall_s", "mean"), peak_mb=("peak_mb", "max"))
    return (costs.join(ranks).reset_index()[["method", "average_rank", "tasks", "wall_s", "peak_mb"]]
            .sort_values(["average_rank", "method"], ignore_index=True))


def seeds_needed(diff: float, sd: float, alpha: float = 0.05) -> float:
    """The fewest paired seeds n ≥ 2 at which a mean difference `diff` with per-seed standard deviation
    `sd` is significant in a two-sided paired t-test at level `alpha` (|diff|·√n/sd > t_{1−α/2, n−1});
    inf for a zero difference (or beyond MAX_SEEDS), 2 when the differences do not vary."""
    if diff == 0 or not math.isfinite(diff):
        return math.inf
    if sd == 0:
        return 2
    n = np.arange(2, MAX_SEEDS + 1)
    hits = np.nonzero(abs(diff) * np.sqrt(n) / sd > stats.t.ppf(1 - alpha / 2, n - 1))[0]
    return int(n[hits[0]]) if hits.size else math.inf


def paired_test(best: pd.Series, other: pd.Series, alpha: float = 0.05) -> dict[str, float]:
    """Paired comparison of two methods over the seeds both have a value for (Series indexed by seed):
    the mean difference best − other, its per-seed std, the seeds used, the paired t-test's p-value
    and the seeds a difference of this size would need."""
    both = pd.concat([best, other], axis=1, keys=["best", "other"]).dropna()
    diffs = (both["best"] - both["other"]).to_numpy(float)
    n = len(diffs)
    diff = float(diffs.mean()) if n else math.nan
    sd = float(diffs.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        p = math.nan
    elif sd == 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(stats.ttest_rel(both["best"], both["other"]).pvalue)
    return {"diff": diff, "diff_std": sd, "paired_seeds": n, "p_value": p,
            "seeds_needed": seeds_needed(diff, sd, alpha) if n > 1 else math.nan}


def verdict(p_value: float, alpha: float) -> str:
    if math.isnan(p_value):
        return "untested"
    return "significant" if p_value < alpha else "noise"


def compare_with_best(runs: pd.DataFrame, summary: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per (task, method): the task's best method (rank 1; the first in the table on a tie) and the paired
    comparison with it (empty for the best itself)."""
    rows = []
    values = runs.set_index(["task", "method", "seed"])["value"]
    for task, part in summary.groupby("task", sort=False):
        best = part.sort_values("rank", kind="stable")["method"].iloc[0]
        for method in part["method"]:
            row = {"task": task, "method": method, "best": best}
            if method == best:
                row.update(verdict="best")
            else:
                test = paired_test(values.loc[(task, best)], values.loc[(task, method)], alpha)
                row.update(test, verdict=verdict(test["p_value"], alpha))
            rows.append(row)
    return pd.DataFrame(rows)


def leaderboard(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The leaderboard: one row per (task, method), best first within a task, with the paired comparison."""
    summary = summarize_methods(runs)
    summary["rank"] = rank_within_tasks(summary)
    table = summary.merge(compare_with_best(runs, summary, alpha), on=["task", "method"])
    order = {task: i for i, task in enumerate(dict.fromkeys(runs["task"]))}
    return table.sort_values(["task", "rank", "method"], key=lambda c: c.map(order) if c.name == "task" else c,
                             ignore_index=True)


def primary_metric(task_params: Mapping) -> str:
    """The metric a task is ranked on: the first of its `metrics`, else its kind's default."""
    from lorarepro.data.tasks import DEFAULT_METRICS

    return (task_params.get("metrics") or DEFAULT_METRICS[task_params["kind"]])[0]


def runs_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per run (task, method, seed, metric, value, lr, wall_s, peak_mb) from flat run records
    (records.load_records); a diverged run has no value."""
    records = records.reset_index(drop=True)
    metric = records["params.task"].map(primary_metric)
    value = [row.get(f"metrics.{m}") for m, (_, row) in zip(metric, records.iterrows())]
    peak = records["runtime.peak_rss_mb"]
    if "runtime.peak_gpu_mb" in records and records["runtime.peak_gpu_mb"].notna().any():
        peak = records["runtime.peak_gpu_mb"]
    return pd.DataFrame({"task": records["experiment"], "method": records["method"], "seed": records["seed"],
                         "metric": metric, "value": pd.to_numeric(pd.Series(value), errors="coerce"),
                         "lr": records["params.optimizer"].map(lambda o: o["lr"]),
                         "wall_s": records["runtime.wall_s"], "peak_mb": peak})


def job_budget(records: pd.DataFrame, sweep_seed: int = 0) -> pd.DataFrame:
    """Per task's job, from its run records: the runs it trained, their median step time, the training
    time those steps add up to, the runs' summed wall time, the shared setup, and the job's total.
    (The selected run of the sweep seed is the sweep's own run, so it is not counted twice.)"""
    selected_copy = records["path"].astype(str).str.contains("/selected/") & (records["seed"] == sweep_seed)
    runs = records[~selected_copy]
    steps = pd.to_numeric(runs["metrics.steps_done"], errors="coerce")
    step_s = pd.to_numeric(runs["metrics.step_s_median"], errors="coerce")
    frame = pd.DataFrame({"task": runs["experiment"], "steps": steps, "step_s": step_s, "train_s": steps * step_s,
                          "wall_s": runs["runtime.wall_s"], "setup_s": runs["runtime.job_setup_s"]})
    out = frame.groupby("task", sort=False).agg(runs=("steps", "size"), steps=("steps", "median"),
                                                step_s_median=("step_s", "median"), train_s=("train_s", "sum"),
                                                runs_wall_s=("wall_s", "sum"), setup_s=("setup_s", "first"))
    out["job_s"] = out["runs_wall_s"] + out["setup_s"]
    return out.reset_index()
