"""Reliability of the whole workflow: a run killed mid-way resumes with --rerun-incomplete and ends
with exactly the outputs of an uninterrupted run (timing fields aside)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SNAKEMAKE, job_env, snakemake

pytestmark = pytest.mark.workflow


def comparable_outputs(workdir: Path) -> dict[str, object]:
    """Every run record (without its runtime block), table and claim check of a finished run."""
    out = {}
    for path in sorted((workdir / "results").rglob("metrics.json")):
        if "benchmarks" in path.parts:
            continue
        record = json.loads(path.read_text())
        record.pop("runtime", None)
        out[str(path.relative_to(workdir))] = record
    for path in sorted((workdir / "results").rglob("*.csv")):
        if "benchmarks" not in path.parts:
            out[str(path.relative_to(workdir))] = path.read_text()
    return out


def test_killed_run_resumes_to_identical_outputs(smoke_run, tmp_path):
    workdir = tmp_path / "workflow"
    # The resources and Snakemake's metadata come along, so the rerun starts at the experiments.
    shutil.copytree(smoke_run, workdir, ignore=shutil.ignore_patterns("results", "reports"))
    proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2", "--config", "scale=smoke"], cwd=workdir,
                            env=job_env(workdir / "src"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in (workdir / "results").rglob("*") if p.is_file() and "logs" not in p.parts]
            if len(done) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started, without warning
    finally:
        proc.wait(timeout=60)
    assert not (workdir / "reports" / "index.html").exists()
    # After a SIGKILL the directory lock stays behind; releasing it is the documented first step.
    snakemake(workdir, "--unlock", "--config", "scale=smoke")
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke", "--rerun-incomplete")
    resumed, reference = comparable_outputs(workdir), comparable_outputs(smoke_run)
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert resumed[key] == reference[key], key
    assert (workdir / "reports" / "index.html").exists()
