"""Cluster execution through a real single-node SLURM (scripts/local-slurm.sh): jobs go through
sbatch and squeue, a failed job is retried, an unsatisfiable request is an error, not a hang."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT, SNAKEMAKE, comparable_outputs, copy_workflow, job_env

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


def run_on_slurm(workdir, *args, timeout=420, src=ROOT / "src"):
    """snakemake with the local-SLURM profile; SIGINT at the timeout (Snakemake ignores SIGTERM there)."""
    env = job_env(src)
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


# The whole NoRA paper at smoke scale (matrix factorization, language-model fine-tuning, tables,
# figures, claims, report). One synthetic experiment asks for a GPU, so it is submitted alone with
# --gpus=1; the other jobs go as group jobs (the profile's group-components); claims and the report
# run in the Snakemake process (localrules).
GPU_FOR_FIG1A = "nora:\n  experiments:\n    fig1a:\n      smoke:\n        resources: {gpu: 1}\n"
LOCAL_RULES = {"check_claims", "paper_report", "nora"}


def _dag_rules(workdir, *args):
    """Rule name -> job count of the DAG Snakemake would run (its dry-run job statistics)."""
    proc = subprocess.run([*SNAKEMAKE, "-n", *args], cwd=workdir, env=job_env(workdir / "src"),
                          capture_output=True, text=True, check=True)
    stats = proc.stdout.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_paper_smoke_dag_on_slurm_matches_the_local_run(local_slurm, smoke_run, tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (tmp_path / "gpu.yaml").write_text(GPU_FOR_FIG1A)
    args = ["--config", "scale=smoke", "--configfile", str(tmp_path / "gpu.yaml"), "--", "nora"]
    dag = _dag_rules(workdir, *args)
    assert {"nora_fig1a", "nora_table4_sst2", "materialize_model", "paper_report"} <= dag.keys(), dag
    proc, seen = run_on_slurm(workdir, *args, timeout=1200, src=workdir / "src")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]

    submitted = dict(re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", log))
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log)
    assert set(submitted.values()) & seen, "no submitted job was ever seen in squeue"
    # Every job of the DAG ran, the cluster ones through SLURM in fewer submissions than jobs.
    assert sorted(finished) == sorted(rule for rule, count in dag.items() for _ in range(count)), (dag, finished)
    cluster_jobs = sum(count for rule, count in dag.items() if rule not in LOCAL_RULES)
    assert 0 < len(submitted) < cluster_jobs, (submitted, dag)

    # The experiment that asked for a GPU was submitted alone and SLURM allocated it one.
    fig1a_job = re.search(r"rule nora_fig1a:\n(?:[ \t]+\w+:.*\n)*?[ \t]+jobid: (\d+)", log).group(1)
    tres = subprocess.run(["scontrol", "show", "job", submitted[fig1a_job]], capture_output=True, text=True).stdout
    assert re.search(r"gres[/:]gpu[=:]1\b", tres), tres
    assert f"rule_nora_fig1a/{submitted[fig1a_job]}.log" in log

    # Same records, tables and claim checks as the local run of the same DAG (timings aside).
    cluster, local = comparable_outputs(workdir, "results/nora"), comparable_outputs(smoke_run, "results/nora")
    assert local.keys() == cluster.keys()
    assert any("/table4/" in key for key in local) and "results/nora/claims.csv" in local
    for key in local:
        assert cluster[key] == local[key], key
    assert (workdir / "reports" / "nora.html").stat().st_size > 0
