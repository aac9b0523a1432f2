"""Throughput of the synthetic suites, as ratios measured side by side (they hold on a loaded machine).

1. GFLOP/s of the library's factorization steps (seeds batched) against the same matrix products
   written as bare torch calls on tensors of the same shapes: the share of matmul speed the library
   keeps after its own overhead. Steps alternate with their bare twin; the result is the median over
   adjacent pairs. Target: ≥ 0.5.
2. Batched seeds against one job per seed: NoRA Figure 1(a)'s runner at the default scale for 10
   seeds in one process, against 10 processes of one seed each (what a rule per seed would cost:
   each job starts Python and torch). Jobs alternate too. Target: ≥ 3× faster.

    python benchmarks/synthetic_throughput.py [--pairs 30] [--seeds 10]

Writes run records under results/benchmarks/synthetic_gflops/ and results/benchmarks/batched_seeds/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from lorarepro.config import experiment_settings, format_setting, validate_config
from lorarepro.experiments.nora.grid import runs
from lorarepro.optim.factorization import asym_gd, gd, scaled_gd
from lorarepro.problems.matrix_factorization import asymmetric_target, batch_generators, spectrum, symmetric_target
from lorarepro.records import Stopwatch, write_run

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks"
TARGET_GFLOPS_SHARE, TARGET_BATCH_SPEEDUP = 0.5, 3.0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def factorization_cases(m: int, r: int, seeds: int):
    """(name, library step, the same products as bare torch calls, FLOPs of one step)."""
    gens = batch_generators(range(seeds), "bench")
    values = spectrum("ep")
    sym = symmetric_target(values, m, gens)
    asym = asymmetric_target(values, m, m, gens)
    x = torch.randn(seeds, m, r, dtype=torch.float64)
    y = torch.randn(seeds, m, r, dtype=torch.float64)
    u, s, v = sym.left, sym.values.unsqueeze(-1), sym.right
    au, av = asym.left, asym.right
    r_a = sym.rank

    def bare_gd():
        return x - 0.01 * (x @ (x.mT @ x) - u @ (s * (v.mT @ x)))

    def bare_scaled_gd():
        q, tri = torch.linalg.qr(x)
        return 0.5 * x + 0.5 * (u @ torch.linalg.solve_triangular(tri.mT, s * (v.mT @ q), upper=False, left=False))

    def bare_asym_gd():
        return (x - 0.01 * (x @ (y.mT @ y) - au @ (s * (av.mT @ y))),
                y - 0.01 * (y @ (x.mT @ x) - av @ (s * (au.mT @ x))))

    products = 2 * (2 * m * r * r) + 2 * (2 * m * r_a * r)  # XᵀX, X(XᵀX), Vᵀx, U(·)
    qr = 4 * m * r * r  # Householder QR of m×r, leading term
    return [
        ("nora_gd_symmetric", lambda: gd(sym, x, 0.01), bare_gd, seeds * products),
        ("nora_scaledgd_symmetric", lambda: scaled_gd(sym, x, 0.5), bare_scaled_gd,
         seeds * (qr + 2 * (2 * m * r_a * r) + 2 * r_a * r * r)),
        ("nora_gd_asymmetric", lambda: asym_gd(asym, x, y, 0.01), bare_asym_gd, seeds * 2 * products),
    ]


def gflops(pairs: int, m: int, r: int, seeds: int, threads: int) -> None:
    torch.set_num_threads(threads)
    for name, library, bare, flops in factorization_cases(m, r, seeds):
        with Stopwatch("cpu") as watch:
            for fn in (library, bare):  # warm-up
                fn()
            times = [(_timed(library), _timed(bare)) for _ in range(pairs)]
        share = statistics.median(b / a for a, b in times)
        metrics = {"gflops_library": flops / statistics.median(a for a, _ in times) / 1e9,
                   "gflops_bare": flops / statistics.median(b for _, b in times) / 1e9,
                   "share_of_bare": share, "target_share": TARGET_GFLOPS_SHARE,
                   "meets_target": share >= TARGET_GFLOPS_SHARE}
        write_run(OUT / "synthetic_gflops" / name / format_setting({"m": m, "r": r, "seeds": seeds}) / "seed=0",
                  paper="benchmarks", experiment="synthetic_gflops", method=name, seed=0, scale="default",
                  params={"m": m, "r": r, "seeds": seeds, "pairs": pairs, "threads": threads}, metrics=metrics,
                  runtime=watch.runtime())
        print(f"{name:28s} library {metrics['gflops_library']:.2f} GFLOP/s, bare {metrics['gflops_bare']:.2f}: "
              f"{share:.2f} of bare (target ≥ {TARGET_GFLOPS_SHARE})")


def nora_fig1a_params(seeds: list[int]) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate_config(config)
    settings = experiment_settings(config, "nora", "fig1a", scale="default")
    return {**settings, "seeds": seeds, "scale": "default", "device": "cpu"}


def nora_job(seeds: list[int], folder: Path) -> list[str]:
    """The command of one NoRA Figure 1(a) job over `seeds`, writing its records under `folder`."""
    params = nora_fig1a_params(seeds)
    records = [str(folder / method / setting / f"seed={s}" / "metrics.json")
               for method, setting, _ in runs(params) for s in seeds]
    return [sys.executable, "-m", "lorarepro.experiments.nora.run", "--params", json.dumps(params),
            "--experiment", "fig1a", "--threads", "1", "--records", *records]


def batched_seeds(n_seeds: int, repeats: int) -> None:
    seeds = list(range(n_seeds))
    with tempfile.TemporaryDirectory() as tmp, Stopwatch("cpu") as watch:
        folder = Path(tmp)
        pairs = []
        for _ in range(repeats):
            one_job = _timed(lambda: subprocess.run(nora_job(seeds, folder / "batched"), check=True, stdout=subprocess.DEVNULL))
            per_seed = _timed(lambda: [subprocess.run(nora_job([s], folder / "per_seed"), check=True, stdout=subprocess.DEVNULL) for s in seeds])
            pairs.append((one_job, per_seed))
    speedup = statistics.median(p / b for b, p in pairs)
    metrics = {"batched_s": statistics.median(b for b, _ in pairs), "per_seed_jobs_s": statistics.median(p for _, p in pairs),
               "speedup": speedup, "target_speedup": TARGET_BATCH_SPEEDUP, "meets_target": speedup >= TARGET_BATCH_SPEEDUP}
    write_run(OUT / "batched_seeds" / "nora_fig1a" / format_setting({"seeds": n_seeds}) / "seed=0",
              paper="benchmarks", experiment="batched_seeds", method="nora_fig1a", seed=0, scale="default",
              params={"seeds": n_seeds, "repeats": repeats}, metrics=metrics, runtime=watch.runtime())
    print(f"NoRA Figure 1(a), {n_seeds} seeds: one batched job {metrics['batched_s']:.1f} s, one job per seed "
          f"{metrics['per_seed_jobs_s']:.1f} s: {speedup:.1f}× (target ≥ {TARGET_BATCH_SPEEDUP}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--r", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="alternations of batched and per-seed jobs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    gflops(args.pairs, args.m, args.r, args.seeds, args.threads)
    batched_seeds(args.seeds, args.repeats)


if __name__ == "__main__":
    main()
