"""Figure 1 of NTK-LoRA: the rank-1 global minimisers of the three toy problems, computed exactly."""

from __future__ import annotations

import numpy as np
import pytest

from lorarepro.problems.ntk_toy import PANELS, Quadratic, solve_panel, zero_set


def test_the_paper_objectives_are_encoded():
    a, b, c = PANELS
    w, x, y, z = 0.3, -1.2, 0.7, 2.5
    assert a.loss(w, x, y, z) == pytest.approx((x + y) ** 2)
    assert b.loss(w, x, y, z) == pytest.approx(0.5 * (z + 4) ** 2 + 0.5 * (x + y) ** 2)
    assert c.loss(w, x, y, z) == pytest.approx(((w - 1) ** 2 + (z - 4) ** 2 + (np.sqrt(3) * x + np.sqrt(3) * y) ** 2) / 3)


def test_intersection_counts_are_a_curve_two_points_and_none():
    a, b, c = (solve_panel(p) for p in PANELS)
    assert (a.minimisers.dimension, a.rank_one.dimension, a.min_rank) == (2, 1, 1)   # plane ∩ surface = curve
    assert (b.minimisers.dimension, b.rank_one.dimension, b.min_rank) == (1, 0, 1)   # line ∩ surface = 2 points
    assert (c.minimisers.dimension, c.rank_one.dimension, c.min_rank) == (1, -1, 2)  # line misses the surface
    np.testing.assert_allclose(sorted(map(tuple, b.rank_one_points)), [(-2, 2, -4), (2, -2, -4)], atol=1e-12)
    assert len(c.rank_one_points) == 0


def test_the_rank_one_curve_of_panel_a_is_x_minus_x_minus_x_squared():
    curve = solve_panel(PANELS[0]).rank_one_curve(np.linspace(-2, 2, 21))
    assert len(curve) >= 21
    np.testing.assert_allclose(curve[:, 1], -curve[:, 0], atol=1e-12)
    np.testing.assert_allclose(curve[:, 2], -curve[:, 0] ** 2, atol=1e-12)
    np.testing.assert_allclose(PANELS[0].loss(1.0, *curve.T), 0, atol=1e-20)


@pytest.mark.parametrize(
    "q, dimension, points",
    [
        (Quadratic(np.diag([1.0, 1.0]), np.zeros(2), 0.0), 0, [[0.0, 0.0]]),   # t1² + t2² = 0: one point
        (Quadratic(np.diag([1.0, 0.0]), np.zeros(2), 0.0), 1, None),           # t1² = 0: a line
        (Quadratic(np.diag([1.0, 1.0]), np.zeros(2), 1.0), -1, []),            # no zeros
        (Quadratic(np.diag([1.0, -1.0]), np.zeros(2), 1.0), 1, None),          # a hyperbola
        (Quadratic(np.diag([1.0, 0.0]), np.array([0.0, 1.0]), 5.0), 1, None),  # a parabola
        (Quadratic(np.array([[1.0]]), np.array([-3.0]), 2.0), 0, [[1.0], [2.0]]),
        (Quadratic(np.array([[1.0]]), np.array([-2.0]), 1.0), 0, [[1.0]]),     # a double root
    ],
)
def test_zero_set_of_a_quadratic(q, dimension, points):
    zeros = zero_set(q)
    assert zeros.dimension == dimension
    if points is not None:
        np.testing.assert_allclose(zeros.points.reshape(-1, len(q.c)), np.reshape(points, (-1, len(q.c))), atol=1e-7)
