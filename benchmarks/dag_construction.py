"""How long Snakemake takes to build the whole paper-scale DAG (`snakemake -n`), the wait a user
has before anything runs. Target: under 15 s.

    python benchmarks/dag_construction.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lorarepro.records import write_run

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15.0


def dry_run(scale: str) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--config", f"scale={scale}"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    totals = re.findall(r"^total\s+(\d+)\s*$", proc.stdout, flags=re.M)
    return elapsed, int(totals[-1]) if totals else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "dag_construction"))
    args = parser.parse_args()
    metrics = {}
    for scale in ("paper", "default"):
        times, jobs = zip(*(dry_run(scale) for _ in range(args.repeats)))
        metrics[f"{scale}_median_s"] = statistics.median(times)
        metrics[f"{scale}_jobs"] = jobs[0]
    metrics["target_s"] = TARGET_S
    metrics["meets_target"] = metrics["paper_median_s"] <= TARGET_S
    write_run(args.out, paper="benchmarks", experiment="dag_construction", method="snakemake_dry_run", seed=0,
              scale="paper", params={"repeats": args.repeats}, metrics=metrics, runtime={})
    print(f"paper-scale DAG: {metrics['paper_jobs']} jobs in {metrics['paper_median_s']:.1f} s "
          f"(target {TARGET_S:.0f} s); default: {metrics['default_jobs']} jobs in {metrics['default_median_s']:.1f} s")


if __name__ == "__main__":
    main()
