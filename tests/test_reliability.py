"""Reliability of the whole workflow: a run killed mid-way resumes with --rerun-incomplete and ends
with exactly the outputs of an uninterrupted run (timing fields aside)."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT, SNAKEMAKE, comparable_outputs, job_env, snakemake

pytestmark = pytest.mark.workflow


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


def _unsafe_loads(tree: ast.AST) -> list[int]:
    """Lines of `import pickle`, `np.load(..., allow_pickle=True)` and `torch.load` without weights_only=True."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any(name.split(".")[0] in ("pickle", "dill", "cloudpickle") for name in names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            kwargs = {k.arg: k.value for k in node.keywords}
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            weights_only = kwargs.get("weights_only")
            if owner == "torch" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                lines.append(node.lineno)
            allow = kwargs.get("allow_pickle")
            if owner in ("np", "numpy") and isinstance(allow, ast.Constant) and allow.value is True:
                lines.append(node.lineno)
    return lines


def test_no_file_is_unpickled_unsafely():
    """Checkpoints and weights are read as tensors only: torch.load always with weights_only=True,
    models through safetensors, never pickle — a results folder or model path may come from elsewhere."""
    offenders = {}
    for path in sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")):
        lines = _unsafe_loads(ast.parse(path.read_text()))
        if lines:
            offenders[str(path.relative_to(ROOT))] = lines
    assert not offenders, offenders


def test_the_unsafe_load_check_sees_nested_calls():
    bad = "import torch\nx = torch.load(folder(run(p)))\ny = torch.load(f, weights_only=False)\nimport pickle\n"
    good = "import torch\nx = torch.load(folder(run(p)), weights_only=True, map_location='cpu')\n"
    assert sorted(_unsafe_loads(ast.parse(bad))) == [2, 3, 4]
    assert _unsafe_loads(ast.parse(good)) == []
