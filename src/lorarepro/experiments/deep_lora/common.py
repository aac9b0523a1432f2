"""What the deep_lora scripts share: the command line, the device, the seeded problem (target and mask are
drawn once and shared by every trial, trials differ only in their initialisation, as in the authors'
code), a `descend` monitor that logs each trial, and writing one run record per trial.

    python -m lorarepro.experiments.deep_lora.<script> --params '<json>' --out results/deep_lora/<exp> --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.compression import orthogonal_factors
from lorarepro.config import format_setting
from lorarepro.metrics.convergence import crossing, log_interpolate
from lorarepro.problems.deep_factorization import Check, Completion, Descent, low_rank_target, observation_mask
from lorarepro.records import first_nonfinite, write_run
from lorarepro.seeding import seed_everything

PAPER = "deep_lora"
DTYPE = torch.float64
# Independent random streams per purpose, so that trial 0's initialisation never reuses the target's draws.
STREAMS = {"problem": 0, "init": 1, "narrow": 2}


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="JSON object of resolved settings")
    parser.add_argument("--out", type=Path, required=True, help="the experiment's folder of run records")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    seed_everything(args.params.get("problem_seed", 0), threads=args.threads)
    return args


def start(description: str) -> tuple[dict, Path, torch.device, Completion]:
    """Parse the command line, seed, and build the problem: (params, output folder, device, problem)."""
    args = parse_args(description)
    device = device_of(args.params)
    return args.params, args.out, device, make_problem(args.params, device)


def device_of(params: dict) -> torch.device:
    """`auto` is CUDA when a GPU is visible, else the CPU."""
    requested = params.get("device", "auto")
    return torch.device("cuda" if requested == "auto" and torch.cuda.is_available() else
                        "cpu" if requested == "auto" else requested)


def generator(seed: int, stream: str) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def seeds_of(params: dict) -> list[int]:
    seeds = params.get("seeds", 1)
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def make_problem(params: dict, device: torch.device) -> Completion:
    """Φ (rank r* = params['rank'], d×d) and, if params['observed'] is set, a mask with that fraction."""
    gen = generator(params.get("problem_seed", 0), "problem")
    d = params["d"]
    target = low_rank_target(d, d, params["rank"], generator=gen, dtype=DTYPE)
    observed = params.get("observed")
    mask = observation_mask(d, d, observed, generator=gen, dtype=DTYPE) if observed else None
    return Completion(target, mask).to(device)


def init_trials(seeds: list[int], *, d: int, width: int, depth: int, eps: float, device: torch.device,
                stream: str = "init") -> list[torch.Tensor]:
    """Initialisation (3) for each seed, stacked along a leading trial dimension (one factor per layer)."""
    per_seed = [orthogonal_factors(d, d, width, depth, eps, generator=generator(s, stream), dtype=DTYPE)
                for s in seeds]
    return [torch.stack(layer).to(device) for layer in zip(*per_seed)]


class TrialLog:
    """A `descend` monitor: per trial, one trace row per check (step, loss, recovery error, seconds of
    descent plus `offset`, e.g. a compression's setup time); `tol` is the descent's tolerance."""

    def __init__(self, problem: Completion, n_trials: int, offset: float = 0.0, tol: float | None = None):
        self.problem, self.offset, self.tol = problem, offset, tol
        self.rows: list[list[dict]] = [[] for _ in range(n_trials)]

    def __call__(self, check: Check) -> None:
        recovery = (self.problem.recovery_error(check.output).double().cpu()
                    if self.problem.mask is not None else None)
        for i, trial in enumerate(check.trials.tolist()):
            row = {"step": check.step, "loss": check.loss[i].item(), "wall_s": self.offset + check.elapsed}
            if recovery is not None:
                row["recovery_error"] = recovery[i].item()
            self.rows[trial].append(row)

    def trace(self, trial: int) -> pd.DataFrame:
        return pd.DataFrame(self.rows[trial])

    def metrics(self, trial: int, reached: float) -> dict:
        """Iterations and seconds to the tolerance (NaN if never reached) and the values at the last check."""
        trace = self.trace(trial)
        last = trace.iloc[-1]
        hit = trace[trace["step"] == reached]
        out = {
            "reached_tol": float(not math.isnan(reached)),
            "iters_to_tol": reached,
            "wall_s_to_tol": float(hit["wall_s"].iloc[0]) if len(hit) else float("nan"),
            "iterations": int(last["step"]),
            "wall_s": float(last["wall_s"]),
            "final_loss": float(last["loss"]),
        }
        if "recovery_error" in trace:
            out["final_recovery_error"] = float(last["recovery_error"])
            out["recovery_error_at_tol"] = self.at_tolerance(trace, "recovery_error")
            # Where the run converged, the error when the loss crossed the tolerance (independent of where
            # the check that caught it landed), else the error at the end.
            out["recovery_error"] = (out["final_recovery_error"] if math.isnan(out["recovery_error_at_tol"])
                                     else out["recovery_error_at_tol"])
        return out

    def at_tolerance(self, trace: pd.DataFrame, column: str) -> float:
        """`column` when the training loss first fell to the tolerance, log-interpolated between the checks
        around that moment (NaN if it never did)."""
        if self.tol is None:
            return float("nan")
        step = crossing(trace["loss"], self.tol, steps=trace["step"])
        return float("nan") if math.isnan(step) else log_interpolate(trace[column], step, steps=trace["step"])

    def diverged_at(self, trial: int) -> int | None:
        trace = self.trace(trial)
        return first_nonfinite(trace["loss"].to_numpy(), trace["step"].to_numpy())


def logged_descent(factors: list[torch.Tensor], problem: Completion, steps: list[float], params: dict, *,
                   tol: float, offset: float = 0.0,
                   also: Callable[[Check], None] | None = None) -> tuple[Descent, TrialLog]:
    """A single-trial `Descent` with the experiment's horizon and check interval, logged (and `also`
    monitored); `offset` is added to its clock, e.g. the compressed model's setup time."""
    log = TrialLog(problem, 1, offset, tol)

    def monitor(check: Check) -> None:
        log(check)
        if also is not None:
            also(check)

    run = Descent(factors, problem, steps, iters=params["max_iters"], check_every=params["check_every"], tol=tol,
                  monitor=monitor)
    return run, log


def write_record(out: Path, *, method: str, setting: dict, seed: int, params: dict, metrics: dict,
                 runtime: dict, trace: pd.DataFrame | None = None, diverged_at: int | None = None) -> None:
    """One run folder, <out>/<method>/<setting>/seed=<s>/, where <out> is results/<paper>/<experiment>;
    the setting's values are also run parameters."""
    folder = Path(out) / method / format_setting(setting) / f"seed={seed}"
    write_run(folder, paper=PAPER, experiment=Path(out).name, method=method, seed=seed, scale=params["scale"],
              params={**params, **setting}, metrics=metrics, runtime=runtime, trace=trace,
              diverged_at=diverged_at)
