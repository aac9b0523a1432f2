"""What a reproduction cost: job wall time and peak memory from the `benchmark:` files Snakemake writes
for every job (results/benchmarks/rules/<paper>/<rule>[...].tsv), and the records the scripts under
benchmarks/ leave in results/benchmarks/<name>/. The index report and benchmarks/rule_costs.py read both."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lorarepro.records import load_records

BENCHMARKS_DIR = Path("results") / "benchmarks"
RULES_DIR = BENCHMARKS_DIR / "rules"


def job_costs(folder: str | Path) -> pd.DataFrame:
    """One row per finished job: the paper (first folder), rule, wall seconds and peak resident MB."""
    folder = Path(folder)
    rows = []
    for tsv in sorted(folder.rglob("*.tsv")):
        parts = tsv.relative_to(folder).parts
        bench = pd.read_csv(tsv, sep="\t")
        if bench.empty:
            continue
        rows.append({
            "paper": parts[0] if len(parts) > 1 else "workflow",
            "rule": parts[1] if len(parts) > 2 else tsv.stem,
            "job": str(tsv.relative_to(folder)),
            "wall_s": float(bench["s"].iloc[-1]),
            # Snakemake writes "-" for memory it could not measure (jobs shorter than its sampling).
            "max_rss_mb": float(pd.to_numeric(bench["max_rss"], errors="coerce").iloc[-1]),
        })
    return pd.DataFrame(rows, columns=["paper", "rule", "job", "wall_s", "max_rss_mb"])


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Job count, summed wall time (serial-equivalent) and the largest peak memory per rule."""
    return (jobs.groupby(["paper", "rule"]).agg(jobs=("job", "count"), wall_s=("wall_s", "sum"),
                                                 max_rss_mb=("max_rss_mb", "max"))
            .reset_index().sort_values("wall_s", ascending=False, ignore_index=True))


def per_paper(jobs: pd.DataFrame) -> pd.DataFrame:
    """The same per paper, with its most expensive rule."""
    rules = per_rule(jobs)
    top = rules.loc[rules.groupby("paper")["wall_s"].idxmax(), ["paper", "rule"]].rename(columns={"rule": "costliest_rule"})
    papers = jobs.groupby("paper").agg(jobs=("job", "count"), wall_s=("wall_s", "sum"),
                                       max_rss_mb=("max_rss_mb", "max")).reset_index()
    return papers.merge(top, on="paper").sort_values("wall_s", ascending=False, ignore_index=True)


def benchmark_records(folder: str | Path) -> pd.DataFrame:
    """The run records the benchmark scripts wrote (results/benchmarks/<name>/**/metrics.json; the
    per-job timings beside them are .tsv files), one row per record with its metrics as columns."""
    paths = sorted(Path(folder).rglob("metrics.json"))
    return load_records(paths) if paths else pd.DataFrame()
