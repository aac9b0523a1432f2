"""Shared fixtures: the repository root, and one smoke-scale run of the whole DAG in a scratch copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
