"""Check a paper's claims (workflow/claims/<paper>.yaml) against its run records.

Each claim becomes one scorecard row: the paper's value, ours, and a verdict:
  pass     the reproduced quantity satisfies the check
  fail     it does not (reported as is; tolerances are never tuned to make a claim pass)
  not-run  no run of this scale matches the claim's query, or the claim is not meaningful at this
           scale (the `note` column says which) - never a silent pass.

    python -m lorarepro.report.claims nora workflow/claims/nora.yaml results/nora/claims.csv \
        --scale default --records results/nora/**/metrics.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import pandas as pd
import yaml

from lorarepro.config import SCHEMA_DIR
from lorarepro.io import atomic_path
from lorarepro.records import load_records

SCORECARD_COLUMNS = ["paper", "claim", "where", "statement", "paper_value", "reproduced", "verdict", "scale", "note"]


def load_claims(path: str | Path, schema_dir: Path = SCHEMA_DIR) -> list[dict]:
    claims = yaml.safe_load(Path(path).read_text()) or []
    schema = yaml.safe_load((schema_dir / "claims.schema.yaml").read_text())
    try:
        jsonschema.validate(claims, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path)
        raise ValueError(f"{path}: claim entry {where}: {err.message}") from None
    ids = [c["id"] for c in claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate claim ids {duplicates}")
    return claims


def _select(records: pd.DataFrame, runs: Mapping[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=records.index)
    filters = {"experiment": runs["experiment"], **({"method": runs["method"]} if "method" in runs else {})}
    filters.update({f"params.{k}": v for k, v in (runs.get("params") or {}).items()})
    for column, wanted in filters.items():
        if column not in records.columns:
            return records.iloc[0:0]
        values = wanted if isinstance(wanted, list) else [wanted]
        mask &= records[column].apply(lambda x: any(_equal(x, v) for v in values))
    return records[mask]


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=0.0)
    return x == y


def _aggregate(values: pd.Series, how: str) -> float:
    values = pd.to_numeric(values, errors="coerce")
    if how == "count":
        return float(values.notna().sum())
    if how == "first":
        return float(values.iloc[0])
    return float(getattr(values, how)())


def evaluate_query(records: pd.DataFrame, query: Mapping[str, Any]) -> tuple[float | None, int]:
    """The aggregated quantity of a query and the number of runs it used (None if none matched)."""
    selected = _select(records, query["runs"])
    if selected.empty:
        return None, 0
    metric = query["metric"]
    column = metric if metric.startswith("runtime.") else f"metrics.{metric}"
    if column not in selected.columns:
        raise KeyError(f"no run of {dict(query['runs'])} has metric {metric!r}; "
                       f"its metrics are {sorted(c[8:] for c in selected.columns if c.startswith('metrics.'))}")
    how = query.get("over", "mean")
    if query.get("group_by"):
        per_group = selected.groupby(query["group_by"], dropna=False)[column].apply(lambda v: _aggregate(v, how))
        return _aggregate(per_group, query["across"]), len(selected)
    return _aggregate(selected[column], how), len(selected)


def _combine(a: float, b: float, how: str) -> float:
    if how == "ratio":
        return a / b if b != 0 else math.copysign(math.inf, a)
    if how == "difference":
        return a - b
    if how == "log10_ratio":
        return math.log10(a / b) if a > 0 and b > 0 else math.nan
    raise ValueError(how)


def passes(value: float, check: Mapping[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    op = check["op"]
    if op == "between":
        lo, hi = check["range"]
        return lo <= value <= hi
    if op == "within":
        tol = check.get("abs_tol", 0.0) + check.get("rel_tol", 0.0) * abs(check["value"])
        return abs(value - check["value"]) <= tol
    return {"<=": value <= check["value"], ">=": value >= check["value"],
            "<": value < check["value"], ">": value > check["value"]}[op]


def describe_check(check: Mapping[str, Any]) -> str:
    if check["op"] == "between":
        return f"in [{check['range'][0]:g}, {check['range'][1]:g}]"
    if check["op"] == "within":
        tol = " ± ".join(filter(None, [f"{check.get('abs_tol', 0):g}" if "abs_tol" in check else "",
                                       f"{check['rel_tol']:.0%}" if "rel_tol" in check else ""]))
        return f"≈ {check['value']:g} ({tol})"
    return f"{check['op']} {check['value']:g}"


def check_claims(paper: str, claims: list[dict], records: pd.DataFrame, scale: str) -> pd.DataFrame:
    """One scorecard row per claim."""
    if not records.empty and "scale" in records.columns:
        records = records[records["scale"] == scale]
    rows = []
    for claim in claims:
        row = {"paper": paper, "claim": claim["id"], "where": claim["where"], "statement": claim["statement"],
               "paper_value": claim["paper_value"], "reproduced": None, "verdict": "not-run", "scale": scale,
               "note": claim.get("note", "")}
        value, n = (None, 0) if records.empty else evaluate_query(records, claim["quantity"])
        if value is not None and "versus" in claim:
            other, m = evaluate_query(records, claim["versus"])
            value = None if other is None else _combine(value, other, claim["combine"])
            n += m
        check = describe_check(claim["check"])
        if value is None:
            row["note"] = _join(row["note"], "no matching runs at this scale")
        elif scale not in claim["scales"]:
            row["reproduced"] = value
            row["note"] = _join(row["note"], f"checked only at scale {'/'.join(claim['scales'])}")
        else:
            row["reproduced"] = value
            row["verdict"] = "pass" if passes(value, claim["check"]) else "fail"
            row["note"] = _join(row["note"], f"check: {check}; {n} runs")
        rows.append(row)
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paper")
    parser.add_argument("claims")
    parser.add_argument("output")
    parser.add_argument("--scale", required=True)
    parser.add_argument("--records", nargs="*", default=[])
    args = parser.parse_args(argv)
    records = load_records(args.records) if args.records else pd.DataFrame()
    table = check_claims(args.paper, load_claims(args.claims), records, args.scale)
    write_csv(table, args.output)
    counts = table["verdict"].value_counts().to_dict()
    print(f"{args.paper}: {counts}")


if __name__ == "__main__":
    main()
