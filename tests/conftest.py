"""Shared fixtures and helpers: the repository root, scratch copies of the workflow, one smoke-scale run
of the whole DAG, and what two runs of it must agree on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lorarepro.records import is_machine_metric

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a clean checkout holds; generated folders stay behind.
_SKIP = {".git", ".venv", "results", "reports", "resources", ".snakemake", ".pytest_cache", "__pycache__"}


def copy_workflow(dest: Path) -> Path:
    """A scratch copy of the workflow (sources only) to run Snakemake in without touching the checkout."""
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in _SKIP or n.endswith(".egg-info")])
    return dest


def job_env(src: Path) -> dict[str, str]:
    """The environment jobs run in: this interpreter's bin first on PATH (jobs call `python`), offline hub."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def snakemake(workdir: Path, *args: str, timeout: int = 1800, check: bool = True) -> subprocess.CompletedProcess:
    env = job_env(workdir / "src")
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def machine_claims(workdir: Path) -> set[str]:
    """Claims computed from machine metrics (wall-time ratios, GFLOP/s): their values differ between reruns."""
    def metrics(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("metric", "column") and isinstance(value, str):
                    yield value
                yield from metrics(value)
        elif isinstance(node, list):
            for value in node:
                yield from metrics(value)

    ids = set()
    for path in (workdir / "workflow" / "claims").glob("*.yaml"):
        for claim in yaml.safe_load(path.read_text()) or []:
            if any(is_machine_metric(m) for m in metrics(claim)):
                ids.add(claim["id"])
    return ids


def comparable_outputs(workdir: Path, under: str = "results") -> dict[str, object]:
    """Every run record, table and claim check of a finished run (below `under`, e.g. results/nora),
    without what measures the machine: records' runtime blocks and timing/memory metrics, such table
    columns, claims computed from them. Two runs of the same DAG must agree on all of it."""
    out = {}
    for path in sorted((workdir / under).rglob("metrics.json")):
        if "benchmarks" in path.parts:
            continue
        record = json.loads(path.read_text())
        record.pop("runtime", None)
        record["metrics"] = {k: v for k, v in record["metrics"].items() if not is_machine_metric(k)}
        out[str(path.relative_to(workdir))] = record
    skip = machine_claims(workdir)
    for path in sorted((workdir / under).rglob("*.csv")):
        if "benchmarks" in path.parts:
            continue
        table = pd.read_csv(path)
        table = table.drop(columns=[c for c in table.columns if is_machine_metric(str(c))])
        if "claim" in table.columns:
            table = table[~table["claim"].isin(skip)]
        out[str(path.relative_to(workdir))] = table.to_csv(index=False)
    return out


def generator(seed: int):
    """A seeded torch generator: tests draw their random instances from one, never from the global state."""
    import torch

    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The complete DAG at smoke scale, run once per test session; returns its working directory."""
    if shutil.which("espeak-ng") is None:  # voices NTK-LoRA's speech task
        pytest.skip("the smoke DAG needs the espeak-ng program: apt-get install espeak-ng "
                    "(scripts/bootstrap.sh installs it when run as root)")
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / "workflow")
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke")
    return workdir


@pytest.fixture(scope="module")
def torch_one_thread():
    """Many tiny tensor products: extra threads only add contention on a shared machine
    (opt in per module with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
