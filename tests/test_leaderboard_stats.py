"""The leaderboard's statistics on hand-made frames: rate selection, ranks, and the paired t-test with the
number of seeds that makes a difference significant (values worked out by hand; a t distribution with 2
degrees of freedom has the closed-form two-sided p = 1 − |t|/√(t² + 2))."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lorarepro.report.leaderboard import (average_ranks, leaderboard, paired_test, seeds_needed, select_rate,
                                          summarize_methods)


def runs(values: dict[tuple[str, str], list[float | None]], wall: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "method": m, "seed": s, "value": v, "wall_s": wall * (s + 1), "peak_mb": 100.0 + s}
                         for (t, m), vs in values.items() for s, v in enumerate(vs)])


def test_select_rate_takes_the_best_finite_score_first_on_ties_smallest_if_all_diverged():
    assert select_rate({3e-4: 0.5, 1e-3: 0.7, 3e-3: float("nan")}) == 1e-3
    assert select_rate({3e-4: 0.7, 1e-3: 0.7, 3e-3: 0.1}) == 3e-4
    assert select_rate({1e-3: None, 3e-4: float("nan")}) == 3e-4
    assert select_rate({1e-3: None, 3e-3: -0.2}) == 3e-3


def test_summary_counts_diverged_seeds_and_averages_the_rest():
    summary = summarize_methods(runs({("t", "a"): [1.0, None, 3.0]}))
    row = summary.iloc[0]
    assert (row["mean"], row["std"], row["seeds"], row["diverged"]) == (2.0, math.sqrt(2.0), 2, 1)
    assert (row["wall_s"], row["peak_mb"]) == (2.0, 102.0)


def test_paired_t_test_on_three_seeds():
    # differences 1, 1, 2: mean 4/3, std 1/√3, t = (4/3)/(1/3) = 4, p = 1 − 4/√18
    test = paired_test(pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 1.0, 1.0]))
    assert test["diff"] == pytest.approx(4 / 3)
    assert test["diff_std"] == pytest.approx(1 / math.sqrt(3))
    assert test["p_value"] == pytest.approx(1 - 4 / math.sqrt(18), rel=1e-9)
    # t(n) = 4·√(n/3): 3.27 < 12.71 (n=2), 4.00 < 4.30 (n=3), 4.62 > 3.18 (n=4)
    assert (test["paired_seeds"], test["seeds_needed"]) == (3, 4)


def test_paired_test_uses_only_seeds_both_methods_have():
    test = paired_test(pd.Series([1.0, 2.0, 3.0, 5.0]), pd.Series([0.0, 1.0, 1.0, None]))
    assert test["paired_seeds"] == 3 and test["diff"] == pytest.approx(4 / 3)


def test_seeds_needed_edge_cases():
    assert seeds_needed(0.0, 1.0) == math.inf
    assert seeds_needed(0.5, 0.0) == 2
    assert seeds_needed(1e-9, 1.0) == math.inf
    # a huge effect: significant with two seeds (|t| = 100·√2 > 12.71)
    assert seeds_needed(100.0, 1.0) == 2


def test_leaderboard_ranks_compares_with_the_best_and_averages_ranks():
    frame = runs({("x", "a"): [1.0, 2.0, 3.0], ("x", "b"): [0.0, 1.0, 1.0], ("x", "c"): [1.0, 2.0, 3.05],
                  ("y", "a"): [0.25, 0.5, 0.75], ("y", "b"): [0.75, 1.0, 1.25], ("y", "c"): [0.75, 1.0, 1.25]})
    table = leaderboard(frame, alpha=0.05)
    x = table[table["task"] == "x"].set_index("method")
    assert list(x.index) == ["c", "a", "b"] and list(x["rank"]) == [1, 2, 3]
    assert (x.loc["c", "best"], x.loc["c", "verdict"]) == ("c", "best")
    # c − a = 0, 0, 0.05: mean 1/60, std 0.05/√3, t = 1, p = 1 − 1/√3
    assert x.loc["a", "p_value"] == pytest.approx(1 - 1 / math.sqrt(3), rel=1e-6)
    assert x.loc["a", "verdict"] == "noise"
    # c − b = 1, 1, 2.05: t = (4.05/3)/std > t_crit(2)?  std = 0.6062; t = 3.857 < 4.303 -> noise
    assert x.loc["b", "verdict"] == "noise" and x.loc["b", "seeds_needed"] == 4
    y = table[table["task"] == "y"].set_index("method")
    # b and c tie at rank 1; b comes first in the table and is the reference; c − b is 0 on every seed
    assert list(y["rank"]) == [1, 1, 3] and y.loc["c", "best"] == "b"
    assert (y.loc["c", "p_value"], y.loc["c", "verdict"], y.loc["c", "seeds_needed"]) == (1.0, "noise", math.inf)
    # a is 0.5 below b on every seed: no spread, significant
    assert (y.loc["a", "p_value"], y.loc["a", "verdict"], y.loc["a", "seeds_needed"]) == (0.0, "significant", 2)
    ranks = average_ranks(table).set_index("method")
    assert ranks["average_rank"].to_dict() == {"c": 1.0, "a": 2.5, "b": 2.0} and list(ranks.index) == ["c", "b", "a"]
    assert set(ranks["tasks"]) == {2}


def test_average_rank_leaves_out_tasks_not_every_method_ran():
    frame = runs({("x", "a"): [1.0, 2.0], ("x", "b"): [0.0, 1.0], ("x", "c"): [2.0, 3.0],
                  ("z", "b"): [1.0, 1.0], ("z", "c"): [0.0, 0.0]})
    table = leaderboard(frame, alpha=0.05)
    ranks = average_ranks(table).set_index("method")
    # On z, b ranks 1st of two; counted, it would lift b's average above a's.
    assert ranks["average_rank"].to_dict() == {"c": 1.0, "a": 2.0, "b": 3.0}
    assert set(ranks["tasks"]) == {1}


def test_job_budget_counts_the_selected_sweep_run_once():
    from lorarepro.report.leaderboard import job_budget

    rows = [("t/a/lr=0.1/seed=0", 0, 10, 0.5, 6.0), ("t/a/lr=0.2/seed=0", 0, 10, 0.3, 4.0),
            ("t/a/selected/seed=0", 0, 10, 0.3, 4.5), ("t/a/selected/seed=1", 1, 10, 0.4, 5.0)]
    records = pd.DataFrame([{"path": f"results/leaderboard/{p}/metrics.json", "seed": s, "experiment": "t",
                             "metrics.steps_done": n, "metrics.step_s_median": st, "runtime.wall_s": w,
                             "runtime.job_setup_s": 2.0} for p, s, n, st, w in rows])
    row = job_budget(records).iloc[0]
    assert (row["runs"], row["steps"], row["step_s_median"]) == (3, 10, 0.4)
    assert row["train_s"] == pytest.approx(12.0) and (row["runs_wall_s"], row["job_s"]) == (15.0, 17.0)
