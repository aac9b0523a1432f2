"""How a trajectory of matrices evolves: the singular value decomposition over time of a weight matrix
(Deep LoRA's Figure 3 and Theorem 2.1) and the principal components of end-to-end trajectories (Figures 4
and 5). A trajectory is a tensor with time as its leading dimension."""

from __future__ import annotations

import torch

from lorarepro.metrics.subspace import largest_angle, paired_angles


def nearest_block(values: torch.Tensor, centre: torch.Tensor, size: int) -> torch.Tensor:
    """Per time, the (ascending) indices of the `size` entries of `values` (T, n) closest to `centre` (T,)."""
    distance = (values - centre.unsqueeze(-1)).abs()
    return distance.topk(size, dim=-1, largest=False).indices.sort(dim=-1).values


def block_relative_error(values: torch.Tensor, centre: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """Per time, max over the block of |value − centre| / |centre|."""
    picked = values.gather(-1, block)
    return ((picked - centre.unsqueeze(-1)).abs() / centre.abs().unsqueeze(-1)).amax(-1)


def singular_vector_angles(vectors: torch.Tensor, block: torch.Tensor, reference: int = 1) -> torch.Tensor:
    """Angle of every singular vector with its counterpart at time `reference`, shape (T, n).

    vectors: (T, d, n) singular vectors (columns, sorted as the singular values); block: (T, m) indices of a
    repeated singular value. A vector outside the block is compared with the same index at the reference
    time; inside the block single vectors are arbitrary, so every index of the block gets the largest
    principal angle between the block's subspaces at t and at the reference (Figure 3's convention).
    """
    angles = paired_angles(vectors, vectors[reference].expand_as(vectors)).clone()
    ref_block = _columns(vectors[reference], block[reference])
    for t in range(len(vectors)):
        angles[t, block[t]] = largest_angle(ref_block, _columns(vectors[t], block[t]))
    return angles


def principal_directions(snapshots: torch.Tensor, k: int) -> torch.Tensor:
    """The top-k right singular vectors (D × k) of the stacked, vectorised snapshots (T, ...), uncentred.

    Computed from the T×T Gram matrix, so a trajectory of a few hundred d×d matrices costs O(T²d²).
    """
    x = snapshots.reshape(len(snapshots), -1)
    evals, evecs = torch.linalg.eigh(x @ x.T)
    top = evals.flip(0)[:k].clamp_min(torch.finfo(x.dtype).tiny)
    return x.T @ evecs.flip(1)[:, :k] / top.sqrt()


def project(snapshots: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Coordinates (T × k) of each vectorised snapshot along the given directions."""
    return snapshots.reshape(len(snapshots), -1) @ directions


def _columns(matrix: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return matrix.index_select(-1, index)
