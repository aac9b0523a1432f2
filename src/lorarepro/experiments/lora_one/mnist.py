"""The MNIST toy of Figure 1(c), after PiSSA's `loss_landscape` code that the paper cites:
odd digits for pretraining, even digits for fine-tuning, labels digit // 2 (5 classes), pixels
normalised with MNIST's mean/std and PCA-reduced to 8 features fitted on both subsets together,
and a bias-free 8→128→5 ReLU net trained full-batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lorarepro.data.materialize import load_split
from lorarepro.models.mlp import mlp_loss

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def odd_even_features(folder: str, split: str, n_odd: int, n_even: int, n_components: int, *,
                      rng: np.random.Generator, dtype=torch.float32):
    """(x_odd, y_odd), (x_even, y_even): random subsets of the split, PCA features, labels digit // 2."""
    frame = load_split(folder, split)
    pixels = np.stack(frame["pixels"].to_numpy()).astype(np.float64) / 255.0
    labels = frame["label"].to_numpy()
    subsets = []
    for parity, n in ((1, n_odd), (0, n_even)):
        pool = np.flatnonzero(labels % 2 == parity)
        if n > len(pool):
            raise ValueError(f"{folder}/{split} has {len(pool)} {'odd' if parity else 'even'} digits; {n} requested")
        subsets.append(rng.choice(pool, size=n, replace=False))
    x = torch.from_numpy((pixels[np.concatenate(subsets)] - MNIST_MEAN) / MNIST_STD)
    centred = x - x.mean(0)
    _, _, Vh = torch.linalg.svd(centred, full_matrices=False)
    features = (centred @ Vh[:n_components].T).to(dtype)
    y = torch.from_numpy(labels[np.concatenate(subsets)] // 2)
    return (features[:n_odd], y[:n_odd]), (features[n_odd:], y[n_odd:])


def fit(params: list[torch.Tensor], weights_of: Callable[[list[torch.Tensor]], list[torch.Tensor]],
        x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float, optimizer: str):
    """Full-batch training of `params`; the network's weights are `weights_of(params)`.

    Returns the effective weights (flattened, one row per step 0..steps) and the loss at each of them."""
    params = [p.detach().clone().requires_grad_() for p in params]
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer](params, lr=lr)
    path, losses = [], []
    for step in range(steps + 1):
        weights = weights_of(params)
        loss = mlp_loss(x, y, weights)
        path.append(torch.cat([W.detach().reshape(-1) for W in weights]))
        losses.append(float(loss.detach()))
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return torch.stack(path), np.array(losses)


def unflatten(theta: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """Flattened weight vectors (…×P) back to per-layer weights (…×out×in)."""
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(theta[..., start:start + size].reshape(*theta.shape[:-1], *shape))
        start += size
    return out
