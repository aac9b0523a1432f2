"""Convergence summaries of error traces (metrics/convergence.py) on sequences with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lorarepro.metrics.convergence import iters_to, linear_rate, log_spaced_steps, quadratic_constant, value_at


def quadratic(e0=0.5, c=3.0, n=6):
    e = [e0]
    for _ in range(n - 1):
        e.append(c * e[-1] ** 2)
    return np.array(e)


def test_iters_to_is_the_first_step_at_or_below_the_level():
    trace = [1.0, 0.1, 1e-3, 1e-3, 1e-9]
    assert iters_to(trace, 1e-3) == 2 and iters_to(trace, 1e-9) == 4 and iters_to(trace, 1e-10) is None
    assert iters_to(trace, 1e-3, steps=[0, 10, 100, 1000, 10000]) == 100
    assert iters_to(pd.Series(trace, index=[5, 6, 7, 8, 9]), 0.1) == 6


def test_quadratic_constant_recovers_c_and_grows_for_linear_sequences():
    e = quadratic(e0=0.1, c=3.0)
    assert quadratic_constant(e, 1e-30, 1.0) == pytest.approx(3.0)
    linear = 0.5 ** np.arange(40)
    assert quadratic_constant(linear, 1e-6, 1e-2) == pytest.approx(0.5 / linear[linear >= 1e-6].min())
    assert math.isnan(quadratic_constant(linear, 1e-30, 1e-40))
    # only consecutive steps count: on a subsampled trace a jump of several steps is no pair
    assert math.isnan(quadratic_constant(e[:3], 1e-30, 1.0, steps=[0, 2, 4]))


def test_linear_rate_of_a_geometric_sequence():
    steps = np.array([0, 1, 2, 5, 10, 20, 50])
    values = 0.9 ** steps
    assert linear_rate(values, 1e-6, 1.0, steps=steps) == pytest.approx(0.9)
    assert linear_rate(values, 0.5, 0.95, steps=steps) == pytest.approx(0.9)
    assert math.isnan(linear_rate(values, 0.95, 0.99, steps=steps))


def test_value_at_reads_the_last_traced_step():
    steps = [0, 1, 10, 100]
    assert value_at([4.0, 3.0, 2.0, 1.0], 50, steps=steps) == 2.0
    assert value_at([4.0, 3.0, 2.0, 1.0], 100, steps=steps) == 1.0
    assert math.isnan(value_at([4.0], 5, steps=[10]))


@pytest.mark.parametrize("iters,dense,per_decade", [(20000, 1000, 50), (60, 1000, 50), (100000, 10, 20)])
def test_log_spaced_steps(iters, dense, per_decade):
    steps = log_spaced_steps(iters, dense, per_decade)
    assert steps[0] == 0 and steps[-1] == iters and np.all(np.diff(steps) > 0)
    assert set(range(min(iters, dense) + 1)) <= set(steps)
    if iters > dense:
        decades = math.log10(iters / dense)
        assert len(steps) - (dense + 1) <= decades * per_decade + 2
