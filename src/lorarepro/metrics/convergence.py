"""Convergence summaries of an error trace: iterations to a level, the quadratic constant
e_{t+1}/e_t², the linear (per-step) rate, and the value at a step.

A trace is a 1-D sequence of values, optionally with the steps they were taken at (for traces kept
on a log-spaced subset of a long run); a pandas Series uses its index as the steps. Values must be
finite: pass the part of a run before it diverged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _steps_values(trace, steps=None) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(trace, pd.Series) and steps is None:
        steps = trace.index.to_numpy()
    values = np.asarray(trace, dtype=float)
    steps = np.arange(len(values)) if steps is None else np.asarray(steps)
    if steps.shape != values.shape:
        raise ValueError(f"{len(steps)} steps for {len(values)} values")
    return steps, values


def iters_to(trace, level: float, steps=None) -> int | None:
    """The first traced step whose value is ≤ level (None if none is). On a subsampled trace it is
    an upper bound, exact to the sampling resolution."""
    steps, values = _steps_values(trace, steps)
    hit = np.flatnonzero(values <= level)
    return int(steps[hit[0]]) if hit.size else None


def quadratic_constant(trace, lo: float, hi: float, steps=None) -> float:
    """max e_{t+1}/e_t² over consecutive steps with lo ≤ e_t ≤ hi (NaN if no such pair).

    Bounded for a quadratically convergent sequence (Theorem 3: ≤ 3κ²/4 once close); a linear one,
    e_{t+1} = ρe_t, gives ρ/e_t, which grows without bound as the window extends down. Keep `lo`
    well above the round-off floor, where the ratio measures noise.
    """
    steps, values = _steps_values(trace, steps)
    now, nxt = values[:-1], values[1:]
    pairs = (np.diff(steps) == 1) & (now >= lo) & (now <= hi)
    return float(np.max(nxt[pairs] / now[pairs] ** 2)) if pairs.any() else math.nan


def linear_rate(trace, lo: float, hi: float, steps=None) -> float:
    """The average per-step contraction (e_b/e_a)^{1/(b−a)} between the first and the last traced
    steps a < b whose values lie in [lo, hi] (NaN if fewer than two do). 1 − η for ScaledGD's
    linear phases."""
    steps, values = _steps_values(trace, steps)
    inside = np.flatnonzero((values >= lo) & (values <= hi))
    if inside.size < 2:
        return math.nan
    a, b = inside[0], inside[-1]
    return float((values[b] / values[a]) ** (1.0 / (steps[b] - steps[a])))


def value_at(trace, step: int, steps=None) -> float:
    """The value at the last traced step ≤ `step` (NaN if the trace starts later)."""
    steps, values = _steps_values(trace, steps)
    at = np.flatnonzero(steps <= step)
    return float(values[at[-1]]) if at.size else math.nan


def level_name(level: float) -> str:
    """A level as metric names spell it: 1e-08 -> '1e-8' (iters_to_1e-8), 2.5e-05 -> '2.5e-5'."""
    mantissa, exponent = f"{level:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def log_spaced_steps(iters: int, dense_until: int, per_decade: int) -> np.ndarray:
    """0, 1, …, dense_until, then about `per_decade` log-spaced steps per decade up to `iters`
    (always included): a long run's trace at a fixed cost per decade."""
    dense = np.arange(min(iters, dense_until) + 1)
    if iters <= dense_until:
        return dense
    decades = math.log10(iters / max(dense_until, 1))
    tail = np.unique(np.round(np.logspace(math.log10(max(dense_until, 1)), math.log10(iters),
                                          max(2, int(math.ceil(decades * per_decade)) + 1))).astype(int))
    return np.union1d(dense, np.append(tail, iters))
