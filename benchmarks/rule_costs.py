"""Wall time and peak memory of a finished reproduction, per paper and per rule, from the
`benchmark:` files Snakemake wrote for every job (results/benchmarks/rules/). Targets for the
default scale on 2 cores: the whole run under 3 hours, every job's peak memory under 8 GB.

    python benchmarks/rule_costs.py            # after `snakemake --cores 2` at default scale
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lorarepro.records import write_run
from lorarepro.report.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
TOTAL_TARGET_H = 3.0
PEAK_TARGET_MB = 8192


def collect(folder: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(folder.rglob("*.tsv")):
        parts = tsv.relative_to(folder).parts
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"group": parts[0] if len(parts) > 1 else "workflow",
                     "rule": parts[1] if len(parts) > 2 else tsv.stem, "job": str(tsv.relative_to(folder)),
                     "wall_s": float(bench["s"].iloc[-1]), "max_rss_mb": float(pd.to_numeric(bench["max_rss"], errors="coerce").iloc[-1])})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules-dir", default=str(ROOT / "results" / "benchmarks" / "rules"))
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "rule_costs"))
    parser.add_argument("--scale", default="default")
    args = parser.parse_args()
    jobs = collect(Path(args.rules_dir))
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {args.rules_dir}: run the reproduction first")
    per_rule = (jobs.groupby(["group", "rule"]).agg(jobs=("job", "count"), wall_s=("wall_s", "sum"),
                                                  max_rss_mb=("max_rss_mb", "max")).reset_index()
                .sort_values("wall_s", ascending=False))
    per_group = jobs.groupby("group").agg(wall_s=("wall_s", "sum"), max_rss_mb=("max_rss_mb", "max")).reset_index()
    out = Path(args.out)
    write_table(per_rule, out / "per_rule.csv", title="Wall time and peak memory per rule", scale=args.scale,
                notes="Sums of job wall times (serial-equivalent), from Snakemake's benchmark files.")
    write_table(per_group, out / "per_paper.csv", title="Wall time and peak memory per paper", scale=args.scale)
    total_h = jobs["wall_s"].sum() / 3600
    metrics = {"total_wall_h": total_h, "peak_rss_mb": float(jobs["max_rss_mb"].max()), "jobs": int(len(jobs)),
               "meets_time_target": total_h <= TOTAL_TARGET_H,
               "meets_memory_target": float(jobs["max_rss_mb"].max()) <= PEAK_TARGET_MB}
    write_run(out, paper="benchmarks", experiment="rule_costs", method="snakemake_benchmark", seed=0,
              scale=args.scale, params={"total_target_h": TOTAL_TARGET_H, "peak_target_mb": PEAK_TARGET_MB},
              metrics=metrics, runtime={})
    print(per_group.to_string(index=False))
    print(f"total {total_h:.2f} h of job time, peak {metrics['peak_rss_mb']:.0f} MB over {len(jobs)} jobs")


if __name__ == "__main__":
    main()
