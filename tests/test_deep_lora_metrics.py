"""Metrics of the deep_lora experiments: small-angle accuracy, SVD-dynamics blocks, trajectory PCA, the
moment a checked run crossed its tolerance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lorarepro.metrics.convergence import crossing, log_interpolate
from lorarepro.metrics.dynamics import (
    block_relative_error,
    nearest_block,
    principal_directions,
    project,
    singular_vector_angles,
)
from lorarepro.metrics.subspace import largest_angle, paired_angles, principal_angles


def rotation(n: int, i: int, j: int, theta: float) -> torch.Tensor:
    r = torch.eye(n, dtype=torch.float64)
    r[i, i] = r[j, j] = math.cos(theta)
    r[i, j], r[j, i] = -math.sin(theta), math.sin(theta)
    return r


def test_small_angles_are_resolved_where_arccos_cannot():
    theta = 1e-9
    basis = torch.eye(6, dtype=torch.float64)[:, :2]
    turned = rotation(6, 1, 4, theta) @ basis
    assert math.isclose(largest_angle(basis, turned).item(), theta, rel_tol=1e-6)
    assert principal_angles(basis, turned).max().item() < 1e-7  # arccos: lost in rounding (0 or ~1e-8)
    angles = paired_angles(basis, -turned)  # the sign of a singular vector does not matter
    assert math.isclose(angles[1].item(), theta, rel_tol=1e-6) and angles[0].item() == 0.0
    assert math.isclose(largest_angle(basis, rotation(6, 0, 5, 0.3) @ basis).item(), 0.3, rel_tol=1e-12)


def test_nearest_block_and_its_relative_error():
    values = torch.tensor([[5.0, 2.0, 2.0, 2.0, 0.5], [6.0, 1.9, 1.9, 1.8, 0.4]], dtype=torch.float64)
    centre = torch.tensor([2.0, 1.9], dtype=torch.float64)
    block = nearest_block(values, centre, 3)
    assert block.tolist() == [[1, 2, 3], [1, 2, 3]]
    torch.testing.assert_close(block_relative_error(values, centre, block),
                               torch.tensor([0.0, 0.1 / 1.9], dtype=torch.float64))


def test_singular_vector_angles_per_index_and_per_block():
    n = 5
    base = torch.eye(n, dtype=torch.float64)
    # t = 1 is the reference; at t = 2 vector 0 turns by 0.2 and the block {2, 3} rotates inside itself
    # (no change of subspace) while vector 4 stays.
    frames = torch.stack([base, base, rotation(n, 2, 3, 0.7) @ rotation(n, 0, 1, 0.2) @ base])
    block = torch.tensor([[2, 3]] * 3)
    angles = singular_vector_angles(frames, block)
    assert math.isclose(angles[2, 0].item(), 0.2, rel_tol=1e-12)
    assert angles[2, 2:4].max().item() < 1e-15  # the block's subspace did not move
    assert angles[2, 4].item() == 0.0


def test_principal_directions_match_the_svd_of_the_stacked_trajectory():
    snapshots = torch.randn(12, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    directions = principal_directions(snapshots, 3)
    _, _, vh = torch.linalg.svd(snapshots.reshape(12, -1), full_matrices=False)
    assert largest_angle(vh[:3].T, directions).item() < 1e-10
    coords = project(snapshots, directions)
    torch.testing.assert_close(coords.abs(), (snapshots.reshape(12, -1) @ vh[:3].T).abs())


def test_crossing_interpolates_the_level_between_two_checks_in_log_scale():
    steps = np.array([0, 100, 200, 300])
    loss = np.array([1.0, 1e-2, 1e-6, 1e-12])
    # log-linear between (100, 1e-2) and (200, 1e-6): 1e-4 is reached half way.
    assert crossing(loss, 1e-4, steps=steps) == pytest.approx(150.0)
    assert crossing(loss, 1e-6, steps=steps) == pytest.approx(200.0)
    assert crossing(loss, 2.0, steps=steps) == 0.0
    assert math.isnan(crossing(loss, 1e-13, steps=steps))
    # A quantity decaying at the same rate is read off at the crossing, wherever the checks fall.
    error = 30 * loss
    assert log_interpolate(error, crossing(loss, 1e-4, steps=steps), steps=steps) == pytest.approx(30 * 1e-4)
