"""The claim checker: pass only from matching runs, fail on a wrong record, not-run without runs."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from lorarepro.records import RECORD_FILE, load_records, write_run
from lorarepro.report.claims import check_claims, evaluate_query, load_claims, passes

CLAIMS = [
    {"id": "toy-fast", "where": "Figure 1", "statement": "Nyström reaches 1e-8 within 20 iterations",
     "paper_value": "≤ 20", "scales": ["default"],
     "quantity": {"runs": {"experiment": "fig1", "method": "nystrom"}, "metric": "iters", "over": "max"},
     "check": {"op": "<=", "value": 20}},
    {"id": "toy-ratio", "where": "Figure 1", "statement": "small init needs at least twice the iterations",
     "paper_value": "≥ 2x", "scales": ["default"],
     "quantity": {"runs": {"experiment": "fig1", "method": "small"}, "metric": "iters", "over": "median"},
     "versus": {"runs": {"experiment": "fig1", "method": "nystrom"}, "metric": "iters", "over": "median"},
     "combine": "ratio", "check": {"op": ">=", "value": 2}},
    {"id": "toy-sweep", "where": "Figure 1b", "statement": "every xi converges fast",
     "paper_value": "insensitive", "scales": ["default"],
     "quantity": {"runs": {"experiment": "fig1", "method": "nystrom", "params": {"xi": [0.1, 1.0]}},
                  "metric": "iters", "over": "median", "group_by": ["params.xi"], "across": "max"},
     "check": {"op": "between", "range": [1, 20]}},
    {"id": "toy-missing", "where": "Table 9", "statement": "an experiment nobody ran", "paper_value": 1.0,
     "scales": ["default"], "quantity": {"runs": {"experiment": "table9"}, "metric": "acc"},
     "check": {"op": "within", "value": 1.0, "rel_tol": 0.1}},
]


def records(tmp_path, iters: dict) -> pd.DataFrame:
    paths = []
    for (method, xi, seed), value in iters.items():
        out = tmp_path / method / f"xi={xi}" / f"seed={seed}"
        write_run(out, paper="toy", experiment="fig1", method=method, seed=seed, scale="default",
                  params={"xi": xi}, metrics={"iters": value}, runtime={})
        paths.append(out / RECORD_FILE)
    return load_records(paths)


GOOD = {("nystrom", 0.1, 0): 11, ("nystrom", 0.1, 1): 12, ("nystrom", 1.0, 0): 9, ("nystrom", 1.0, 1): 10,
        ("small", 1.0, 0): 30, ("small", 1.0, 1): 31}


def test_claims_pass_from_matching_runs(tmp_path):
    table = check_claims("toy", CLAIMS, records(tmp_path, GOOD), "default").set_index("claim")
    assert table.loc["toy-fast", "verdict"] == "pass" and table.loc["toy-fast", "reproduced"] == 12
    assert table.loc["toy-ratio", "verdict"] == "pass"
    assert table.loc["toy-ratio", "reproduced"] == pytest.approx(30.5 / 10.5)
    assert table.loc["toy-sweep", "reproduced"] == 11.5 and table.loc["toy-sweep", "verdict"] == "pass"
    assert table.loc["toy-missing", "verdict"] == "not-run"
    assert "no matching runs" in table.loc["toy-missing", "note"]


def test_a_wrong_run_record_fails(tmp_path):
    wrong = {**GOOD, ("nystrom", 1.0, 1): 45}
    table = check_claims("toy", CLAIMS, records(tmp_path, wrong), "default").set_index("claim")
    assert table.loc["toy-fast", "verdict"] == "fail" and table.loc["toy-fast", "reproduced"] == 45
    assert table.loc["toy-sweep", "verdict"] == "fail"  # median at xi=1 is 27
    slow_nystrom = {**GOOD, ("small", 1.0, 0): 15, ("small", 1.0, 1): 16}
    table = check_claims("toy", CLAIMS, records(tmp_path / "b", slow_nystrom), "default").set_index("claim")
    assert table.loc["toy-ratio", "verdict"] == "fail"  # 15.5 / 10.5 < 2


def test_no_records_means_not_run_never_pass():
    table = check_claims("toy", CLAIMS, pd.DataFrame(), "default")
    assert set(table["verdict"]) == {"not-run"}


def test_other_scale_records_are_ignored_and_unmeant_scales_are_not_checked(tmp_path):
    recs = records(tmp_path, GOOD)
    assert set(check_claims("toy", CLAIMS, recs, "paper")["verdict"]) == {"not-run"}
    smoke = recs.assign(scale="smoke")
    table = check_claims("toy", CLAIMS, smoke, "smoke").set_index("claim")
    assert table.loc["toy-fast", "verdict"] == "not-run" and table.loc["toy-fast", "reproduced"] == 12
    assert "checked only at scale default" in table.loc["toy-fast", "note"]


def test_unknown_metric_is_an_error_not_a_verdict(tmp_path):
    recs = records(tmp_path, GOOD)
    with pytest.raises(KeyError, match="has metric 'speed'"):
        evaluate_query(recs, {"runs": {"experiment": "fig1"}, "metric": "speed"})


def test_check_operators():
    assert passes(5, {"op": "within", "value": 5.4, "rel_tol": 0.1})
    assert not passes(5, {"op": "within", "value": 6, "abs_tol": 0.5})
    assert passes(3, {"op": "between", "range": [3, 4]})
    assert not passes(float("nan"), {"op": "<=", "value": 1})
    assert not passes(None, {"op": ">=", "value": 0})


def test_claim_files_are_validated(tmp_path, repo_root):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump([{**CLAIMS[0], "check": {"op": "≈", "value": 1}}]))
    with pytest.raises(ValueError, match="bad.yaml: claim entry 0/check/op"):
        load_claims(path)
    path.write_text(yaml.safe_dump([CLAIMS[0], CLAIMS[0]]))
    with pytest.raises(ValueError, match="duplicate claim ids"):
        load_claims(path)


def test_shipped_claim_files_are_valid(repo_root):
    for path in sorted((repo_root / "workflow" / "claims").glob("*.yaml")):
        claims = load_claims(path)
        assert all(c["id"].startswith(path.stem) for c in claims), path
