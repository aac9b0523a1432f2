"""What the paper-scale reproduction asks of a cluster: per rule, the jobs, what each one requests and
the total GPU-hours. Read from Snakemake's dry-run through profiles/slurm, so the README's
table (this module's output between its markers) cannot drift from the rules and config behind it.

    python -m lorarepro.report.cluster_plan            # print the table
    python -m lorarepro.report.cluster_plan --readme README.md   # rewrite the README's table
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

BEGIN, END = "<!-- cluster-plan:begin -->", "<!-- cluster-plan:end -->"
_HEADER = re.compile(r"^(\s*)rule (\w+):$")



def dry_run(root: Path, scale: str = "paper") -> str:
    """Snakemake's dry-run of the whole DAG (--forceall: existing results do not hide jobs)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--workflow-profile", "profiles/slurm",
           "--config", f"scale={scale}"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout + proc.stderr


def _job_blocks(text: str):
    """(rule, {field: value}) for each job a dry-run prints, inside group jobs too."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if not header:
            continue
        indent, fields = len(header.group(1)), {}
        for body in lines[i + 1:]:
            key, _, value = body.strip().partition(": ")
            if not body.strip() or len(body) - len(body.lstrip()) <= indent or not value:
                break
            fields[key] = value
        yield header.group(2), fields


def local_rules(root: Path) -> set[str]:
    """Rules that run in the Snakemake process itself (`localrule: True`), never on the cluster."""
    found, rule = set(), None
    for smk in (root / "workflow" / "rules").glob("*.smk"):
        for line in smk.read_text().splitlines():
            if line.startswith("rule "):
                rule = line[len("rule "):].rstrip(":")
            elif line.strip() == "localrule: True" and rule:
                found.add(rule)
    return found


def jobs_of(dry_run_text: str, skip: set[str] = frozenset()) -> pd.DataFrame:
    """One row per cluster job: rule, threads, mem_mb, runtime (min), gpu, gpu_model."""
    rows = []
    for rule, fields in _job_blocks(dry_run_text):
        if rule in skip or "output" not in fields:
            continue  # a local rule, or a target rule (nothing runs)
        res = dict(item.split("=", 1) for item in fields["resources"].split(", ") if "=" in item)
        rows.append({
            "rule": rule,
            "threads": int(fields.get("threads", 1)),
            "mem_mb": int(res.get("mem_mb", 0)),
            "runtime": int(res.get("runtime", 0)),
            "gpu": int(res.get("gpu") or 0),
            "gpu_model": res.get("gpu_model", ""),
        })
    return pd.DataFrame(rows, columns=["rule", "threads", "mem_mb", "runtime", "gpu", "gpu_model"])


def plan(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: job count, the largest request, and hours summed over jobs (GPUs × runtime)."""
    jobs = jobs.assign(gpu_hours=jobs.gpu * jobs.runtime / 60)
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("rule", "size"), gpus=("gpu", "max"), gpu_model=("gpu_model", "max"), threads=("threads", "max"),
        mem_gb=("mem_mb", "max"), runtime_h=("runtime", "max"), gpu_hours=("gpu_hours", "sum"),
    )
    table["mem_gb"] = table.mem_gb / 1000
    table["runtime_h"] = table.runtime_h / 60
    return table.sort_values(["gpu_hours", "jobs"], ascending=False, kind="stable").reset_index()


def to_markdown(table: pd.DataFrame) -> str:
    head = ("| rule | jobs | GPUs/job | GPU model | threads/job | memory/job (GB) | time limit/job (h) "
            "| GPU-hours |\n|---|---:|---:|---|---:|---:|---:|---:|\n")
    rows = "".join(
        f"| `{r.rule}` | {r.jobs} | {r.gpus} | {r.gpu_model or '–'} | {r.threads} | {r.mem_gb:g} | {r.runtime_h:g} "
        f"| {r.gpu_hours:.1f} |\n"
        for r in table.itertuples()
    )
    total = f"| **total** | {table.jobs.sum()} | | | | | | {table.gpu_hours.sum():.1f} |\n"
    return head + rows + total


def with_table(readme: str, table_md: str) -> str:
    """The README with the text between the cluster-plan markers replaced."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table_md + readme[end:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd())
    ap.add_argument("--readme", type=Path, help="rewrite this file's table between the cluster-plan markers")
    args = ap.parse_args(argv)
    table_md = to_markdown(plan(jobs_of(dry_run(args.root), skip=local_rules(args.root))))
    if args.readme:
        args.readme.write_text(with_table(args.readme.read_text(), table_md))
    else:
        print(table_md, end="")


if __name__ == "__main__":
    main()
