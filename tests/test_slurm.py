"""Cluster execution through a real single-node SLURM (scripts/local-slurm.sh): jobs go through
sbatch and squeue, a failed job is retried, an unsatisfiable request is an error, not a hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT, SNAKEMAKE, job_env

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def local_slurm():
    """Start the local SLURM (installing it where apt can); stop it afterwards if we started it."""
    running = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    if not running:
        if os.geteuid() != 0 or not (shutil.which("apt-get") or shutil.which("slurmctld")):
            pytest.skip("a local SLURM needs root and Debian's packages (scripts/local-slurm.sh)")
        subprocess.run(["bash", str(ROOT / "scripts" / "local-slurm.sh"), "start"], check=True, timeout=600)
    yield
    if not running:
        subprocess.run(["bash", str(ROOT / "scripts" / "local-slurm.sh"), "stop"], timeout=60)


class SqueueWatcher(threading.Thread):
    """Polls squeue while a run is going, to prove the jobs really sat in SLURM's queue."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
            self.seen.update(line.split()[0] for line in out.splitlines() if line.strip())
            time.sleep(1)


def run_on_slurm(workdir, *args, timeout=420):
    """snakemake with the local-SLURM profile; SIGINT at the timeout (Snakemake ignores SIGTERM there)."""
    env = job_env(ROOT / "src")
    cmd = ["timeout", "-s", "INT", "-k", "30", str(timeout), *SNAKEMAKE,
           "--workflow-profile", str(ROOT / "profiles" / "slurm-local"), *args]
    watcher = SqueueWatcher()
    watcher.start()
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    finally:
        watcher.done.set()
        watcher.join()
    return proc, watcher.seen


def test_failed_job_is_retried_and_gpu_job_gets_a_gpu(local_slurm, tmp_path):
    shutil.copy(ROOT / "tests" / "slurm_flaky" / "Snakefile", tmp_path / "Snakefile")
    proc, seen = run_on_slurm(tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert (tmp_path / "attempted").exists()  # the first attempt ran and failed
    flaky_job = (tmp_path / "flaky.txt").read_text().split("=")[1].strip()
    gpu_line = (tmp_path / "gpu.txt").read_text()
    assert flaky_job.isdigit() and "gpus=1" in gpu_line and "cuda=0" in gpu_line
    assert flaky_job in seen or gpu_line.split()[0].split("=")[1] in seen


def test_unsatisfiable_request_is_an_error_not_a_hang(local_slurm, tmp_path):
    shutil.copy(ROOT / "tests" / "slurm_flaky" / "Snakefile", tmp_path / "Snakefile")
    (tmp_path / "attempted").touch()
    started = time.monotonic()
    proc, _ = run_on_slurm(tmp_path, "--set-resources", "flaky:gpu=2", "--retries", "0", timeout=240)
    assert proc.returncode not in (0, 124, 130), proc.stdout[-3000:]
    assert time.monotonic() - started < 200
    assert "Requested node configuration is not available" in proc.stdout + proc.stderr
    assert not (tmp_path / "flaky.txt").exists()
