"""Run records: every job writes `metrics.json` (what ran, how, and what came out) and `trace.parquet`
(per-step values) into its run folder. Tables, figures and claim checks are made only from these.

A run folder is `results/<paper>/<experiment>/<method>/<setting>/seed=<s>/`. Jobs that batch several
seeds into one tensor still write one folder per seed; `runtime.seeds_in_job` says how many shared
the wall time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from lorarepro import __version__
from lorarepro.io import read_json, write_json, write_parquet

RECORD_FILE = "metrics.json"
TRACE_FILE = "trace.parquet"
STATUSES = ("ok", "diverged")
# Metrics of the machine rather than of the method (times, throughput, memory): reruns of one seed
# differ in them, so comparisons of reruns (a resumed run, a cluster run) leave them out.
_MACHINE_METRIC = re.compile(r"(?:^|_)(?:s|ms|wall|gflops|speedup|efficiency|mb|gb|init_share)(?:_|$)")


def is_machine_metric(name: str) -> bool:
    """`wall_s_to_tol`, `step_s_median`, `peak_mb`, `gd_gflops`, `init_share`, a table column
    `memory overhead MB`: yes; `rank_zero_share`: no. Words are read apart whatever separates them."""
    return bool(_MACHINE_METRIC.search(re.sub(r"[^0-9a-z]+", "_", name.lower().replace("'", ""))))
# Fields that legitimately differ between two runs of the same job.
TIMING_FIELDS = ("runtime",)


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """Package versions and the git commit, so a record says which code produced it."""
    import torch

    env = {
        "lorarepro": __version__,
        "git": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    # Installed versions from the package metadata: importing peft/transformers just to read their
    # version would cost a job that never uses them tens of seconds.
    for name in ("transformers", "peft"):
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return env


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_CLEAR_REFS, _STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")


def reset_peak_rss() -> bool:
    """Restart the kernel's resident-memory high-water mark (Linux), so that a process running many
    runs reports each run's own peak; False where it cannot, and the peak is then the process's."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The resident-memory high-water mark since the last `reset_peak_rss` (since the process began
    where there is no /proc)."""
    for line in _STATUS.read_text().splitlines() if _STATUS.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """Wall time and peak memory (resident memory, and CUDA if it was used) of a block, read when the
    block ends. The peaks are the block's own (`peak_rss_scope: block`) where the platform lets them
    be reset, else the process's so far; blocks do not nest."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.wall_s: float | None = None
        self.peak_rss_mb: float | None = None
        self.peak_gpu_mb: float | None = None

    def __enter__(self) -> "Stopwatch":
        self._own_peak = reset_peak_rss()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_gpu_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        self.wall_s = time.perf_counter() - self._t0
        self.peak_rss_mb = round(peak_rss_mb(), 1)

    def runtime(self, seeds_in_job: int = 1) -> dict[str, Any]:
        import torch

        return {
            "wall_s": round(self.wall_s, 4) if self.wall_s is not None else None,
            "peak_rss_mb": self.peak_rss_mb,
            "peak_rss_scope": "block" if self._own_peak else "process",
            "peak_gpu_mb": self.peak_gpu_mb,
            "device": self.device,
            "threads": torch.get_num_threads(),
            "seeds_in_job": seeds_in_job,
            "host": platform.node(),
        }


def run_dir(root: str | os.PathLike, paper: str, experiment: str, method: str, setting: str, seed: int) -> Path:
    """The canonical folder of one run."""
    return Path(root) / paper / experiment / method / setting / f"seed={seed}"


def write_run(
    out_dir: str | os.PathLike,
    *,
    paper: str,
    experiment: str,
    method: str,
    seed: int,
    scale: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    runtime: Mapping[str, Any],
    trace: pd.DataFrame | Mapping[str, Any] | None = None,
    diverged_at: int | None = None,
) -> dict[str, Any]:
    """Write one run's record (and trace, if any) atomically; return the record.

    The trace is written first, so a metrics.json on disk always has its trace beside it.
    """
    out_dir = Path(out_dir)
    if trace is not None:
        frame = trace if isinstance(trace, pd.DataFrame) else pd.DataFrame(dict(trace))
        if "step" not in frame.columns:
            raise ValueError("a trace needs a 'step' column")
        write_parquet(out_dir / TRACE_FILE, frame)
    record = {
        "paper": paper,
        "experiment": experiment,
        "method": method,
        "seed": int(seed),
        "scale": scale,
        "params": dict(params),
        "status": "diverged" if diverged_at is not None else "ok",
        "diverged_at": None if diverged_at is None else int(diverged_at),
        "metrics": dict(metrics),
        "runtime": dict(runtime),
        "env": environment(),
    }
    write_json(out_dir / RECORD_FILE, record)
    return record


def first_nonfinite(values: np.ndarray, steps: np.ndarray | None = None) -> int | None:
    """The step at which a trace first becomes NaN/inf (a diverged run), or None."""
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return int(steps[i]) if steps is not None else i


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one metrics.json; a truncated or malformed record is an error naming the file."""
    path = Path(path)
    try:
        rec = read_json(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"run record {path} is unreadable ({err}); delete it and rerun its job") from err
    missing = [k for k in ("paper", "experiment", "method", "seed", "params", "status", "metrics") if k not in rec]
    if missing:
        raise ValueError(f"run record {path} lacks {missing}; delete it and rerun its job")
    if rec["status"] not in STATUSES:
        raise ValueError(f"run record {path} has unknown status {rec['status']!r}")
    return rec


def load_records(paths) -> pd.DataFrame:
    """Records as one flat table: paper, experiment, method, seed, status, params.*, metrics.*, runtime.*."""
    rows = []
    for path in paths:
        rec = read_record(path)
        row = {k: rec[k] for k in ("paper", "experiment", "method", "seed", "scale", "status", "diverged_at") if k in rec}
        row["path"] = str(path)
        for group in ("params", "metrics", "runtime"):
            for k, v in (rec.get(group) or {}).items():
                row[f"{group}.{k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def read_trace(run_folder: str | os.PathLike) -> pd.DataFrame:
    return pd.read_parquet(Path(run_folder) / TRACE_FILE)


def load_traces(paths) -> pd.DataFrame:
    """The traces of many runs in one long table, each row tagged with its run's method, seed and params."""
    frames = []
    for path in paths:
        rec = read_record(path)
        trace = read_trace(Path(path).parent)
        trace = trace.assign(experiment=rec["experiment"], method=rec["method"], seed=rec["seed"],
                             status=rec["status"], **{f"params.{k}": v for k, v in rec["params"].items()
                                                      if not isinstance(v, (list, dict))})
        frames.append(trace)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
