"""The NoRA matrix-factorization runs of one experiment: every method × setting, seeds batched as a
leading tensor dimension.

    python -m lorarepro.experiments.nora.run --params '<json>' --experiment fig1a --threads 1 \
        --records results/nora/fig1a/<method>/<setting>/seed=<s>/metrics.json …

`--params` holds the experiment's settings; its runs (method × grid point) come from `grid.runs`.
One process runs them all: most take about a second, less than starting a Python process with torch.
Every traced step's optimality error ‖XXᵀ − A‖_F (‖XYᵀ − A‖_F), residual ‖(I − QQᵀ)X‖_F (absolute
and relative to ‖X‖_F) and weak-optimality error go to trace.parquet (and the gap to ‖Σ₂‖_F when
r < r_A); the convergence summaries the claims check go to metrics.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.nystrom import nystrom_init, perturbed_nystrom_init, small_init, unbalanced_sketch_init
from lorarepro.config import seeds_of
from lorarepro.experiments.nora.grid import METHODS, run_values, runs
from lorarepro.metrics.convergence import (iters_to, level_name, linear_rate, log_spaced_steps,
                                           quadratic_constant, value_at)
from lorarepro.optim.factorization import STEPS, run
from lorarepro.problems.matrix_factorization import (FactoredTarget, asymmetric_target, batch_generators,
                                                     optimality_error, reduce_to_span, residual_norm,
                                                     spectrum, symmetric_target, weak_optimality_error)
from lorarepro.records import Stopwatch, first_nonfinite, write_run

PAPER = "nora"
# Settings that describe the job rather than the run (they are in the record's own fields or its runtime).
NOT_RECORDED = ("analysis", "seeds", "resources", "methods", "scale", "device")


def make_target(v: dict, seeds) -> FactoredTarget:
    values = spectrum(v["spectrum"], v.get("up_variant", "r_a_40"))
    generators = batch_generators(seeds, "target")
    if v["symmetric"]:
        return symmetric_target(values, v["m"], generators)
    return asymmetric_target(values, v["m"], v["n"], generators)


def initial_factors(init: str, target: FactoredTarget, v: dict, seeds) -> tuple[torch.Tensor, ...]:
    """X₀ (symmetric) or (X₀, Y₀); Y₀ = 0 for the asymmetric Nyström start (eq. 4)."""
    generators = batch_generators(seeds, "init")
    (m, n), r = target.shape, v["r"]
    if init == "small":
        x = small_init((m, r), v["zeta"], generators)
        return (x,) if target.symmetric else (x, small_init((n, r), v["zeta"], generators))
    if init == "nystrom":
        x = nystrom_init(target, r, v["xi"], generators)
        return (x,) if target.symmetric else (x, torch.zeros(len(seeds), n, r, dtype=x.dtype))
    if init == "perturbed":
        return (perturbed_nystrom_init(target, r, v["xi"], v["xi_n"], generators),)
    if init == "sketch":
        return unbalanced_sketch_init(target, r, v["xi"], v["zeta"], target.values[..., :1, None], generators)
    raise ValueError(f"unknown initialisation {init!r}")


def step_for(algorithm: str, init: str, symmetric: bool):
    if symmetric:
        return STEPS["symmetric", algorithm]
    # Eq. (5): from Y₀ = 0, ScaledGD's first step updates Y only.
    modified = algorithm == "scaledgd" and init == "nystrom"
    return STEPS["asymmetric", "scaledgd_modified" if modified else algorithm]


def observables(target: FactoredTarget, factors, r: int) -> dict[str, torch.Tensor]:
    """Per-seed quantities at one step."""
    x, y = factors[0], (factors[1] if len(factors) > 1 else None)
    error = optimality_error(target, x, y)
    out = {"error": error, "weak_error": weak_optimality_error(target, x, y)}
    if r < target.rank:
        out["gap"] = error - target.tail_norm(r)
    bases = [(target.left, x)] + ([(target.right, y)] if y is not None else [])
    out["residual"] = torch.sqrt(sum(residual_norm(b, f) ** 2 for b, f in bases))
    out["relative_residual"] = out["residual"] / torch.sqrt(sum(torch.linalg.matrix_norm(f) ** 2 for _, f in bases))
    return out


def one_step_metrics(target: FactoredTarget, factors, eta: float) -> dict[str, torch.Tensor]:
    """Theorems 5/6 at t = 1 from X₀ = AΩ, Y₀ = 0: X₁Y₁ᵀ = ηA (EP) and Y₁ᵀA†X₁ = ηI (EP and UP)."""
    x, y = factors
    norm = target.frobenius_norm()
    scaled = FactoredTarget(target.left, eta * target.values, target.right)
    return {
        "one_step_error": optimality_error(target, x, y) / norm,
        "one_step_weak_error": weak_optimality_error(target, x, y),
        # ‖X₁Y₁ᵀ − ηA‖_F/‖A‖_F and ‖Y₁ᵀA†X₁ − ηI‖_F = η‖Y₁ᵀ(ηA)†X₁ − I‖_F
        "one_step_error_vs_eta": optimality_error(scaled, x, y) / norm,
        "one_step_weak_vs_eta": eta * weak_optimality_error(scaled, x, y),
    }


def convergence_metrics(trace: pd.DataFrame, v: dict) -> dict:
    """Summaries of one seed's trace (finite part) for the claims. Iterations to a level not reached
    within the horizon are recorded as iters + 1, a lower bound."""
    a = v["analysis"]
    censor = v["iters"] + 1
    metrics: dict = {}
    for column, prefix, window in [("error", "", "linear_window"), ("weak_error", "weak_", "weak_window"),
                                   ("gap", "gap_", "gap_window")]:
        if column not in trace:
            continue
        series = pd.Series(trace[column].to_numpy(), index=trace["step"].to_numpy())
        for level in a["levels"]:
            hit = iters_to(series, level)
            metrics[f"{prefix}iters_to_{level_name(level)}"] = censor if hit is None else hit
        metrics[f"final_{column}"] = float(series.iloc[-1])
        metrics[f"min_{column}"] = float(series.min())
        metrics[f"{prefix}linear_rate"] = linear_rate(series, *a[window])
    error = pd.Series(trace["error"].to_numpy(), index=trace["step"].to_numpy())
    metrics["max_quadratic_constant"] = quadratic_constant(error, *a["quadratic_window"])
    for step in a["report_steps"]:
        metrics[f"error_at_{step}"] = value_at(error, step)
    metrics["max_relative_residual"] = float(trace["relative_residual"].max())
    residual = pd.Series(trace["residual"].to_numpy(), index=trace["step"].to_numpy())
    metrics["residual_rate"] = linear_rate(residual, *a["residual_window"])
    return metrics


def run_batch(experiment: str, method: str, setting: str, params: dict, records: list[str]) -> None:
    """One run (method × setting), its seeds batched; writes one record per seed to `records`."""
    v = run_values(params, method, setting) | {"setting": setting}
    seeds = seeds_of(params)
    algorithm, init = METHODS[method]
    with Stopwatch("cpu") as sw:
        target = make_target(v, seeds)
        factors = initial_factors(init, target, v, seeds)
        if v.get("reduce", False):
            target, *factors = reduce_to_span(target, *factors)
            factors = tuple(f for f in factors if f is not None)
        at = log_spaced_steps(v["iters"], **v["analysis"]["trace"])
        rows: list[dict[str, torch.Tensor]] = []
        one_step: dict[str, torch.Tensor] = {}

        def observe(t, current):
            rows.append(observables(target, current, v["r"]))
            if t == 1 and init == "nystrom" and not target.symmetric:
                one_step.update(one_step_metrics(target, current, v["eta"]))

        run(step_for(algorithm, init, v["symmetric"]), target, factors, v["eta"], v["iters"], at, observe)
    runtime = sw.runtime(seeds_in_job=len(seeds))

    recorded = {k: val for k, val in v.items() if k not in NOT_RECORDED} | {"dtype": "float64"}
    columns = {name: torch.stack([row[name] for row in rows]).numpy() for name in rows[0]}
    for i, (seed, record) in enumerate(zip(seeds, records)):
        trace = pd.DataFrame({"step": at, **{name: values[:, i] for name, values in columns.items()}})
        diverged_at = first_nonfinite(trace["error"].to_numpy(), at)
        finite = trace if diverged_at is None else trace[trace["step"] < diverged_at]
        metrics = convergence_metrics(finite, v) if len(finite) else {}
        metrics.update({k: float(t[i]) for k, t in one_step.items()})
        write_run(Path(record).parent, paper=PAPER, experiment=experiment, method=method, seed=seed,
                  scale=params["scale"], params=recorded, metrics=metrics, runtime=runtime, trace=trace,
                  diverged_at=diverged_at)
    print(f"{experiment}/{method}/{setting}: {len(seeds)} seeds, {runtime['wall_s']:.2f}s, "
          f"final error median {np.median(columns['error'][-1]):.3g}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, help="JSON: the experiment's settings, scale and device")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--records", nargs="+", required=True,
                        help="every run's metrics.json, …/<method>/<setting>/seed=<s>/metrics.json")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    params = json.loads(args.params)
    torch.set_num_threads(args.threads)
    by_run = {Path(r).parts[-4:-1]: r for r in args.records}
    for method, setting, _ in runs(params):
        wanted = [(method, setting, f"seed={seed}") for seed in seeds_of(params)]
        missing = [w for w in wanted if w not in by_run]
        if missing:
            raise SystemExit(f"no record path given for {['/'.join(m) for m in missing]}")
        run_batch(args.experiment, method, setting, params, [by_run[w] for w in wanted])


if __name__ == "__main__":
    main()
