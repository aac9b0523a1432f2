"""Synthetic NTK features (NTK-LoRA spec, CPU variant (a)): every theorem of the paper holds for any
linearised model, so the N-sweep of the rank threshold runs on random features of transformer shape.

For example i, output j and trained matrix l, G_l^(j)(X_i) = Σ_{t ≤ T} g_t h_tᵀ with Gaussian g_t (per
example and output) and h_t (per example: the layer input is shared by all outputs). The pretrained
outputs f0 are Gaussian, and the labels come from a planted low-rank update: y_i = argmax_j of
f0 + ⟨G, δ_true⟩, with δ_true scaled so that its contribution has standard deviation `signal`.
"""

from __future__ import annotations

import torch

from lorarepro.models.ntk_features import Features, compress_outer_sums


def synthetic_features(n_samples: int, *, classes: int = 2, shape: tuple[int, int] = (64, 64), matrices: int = 2,
                       positions: int = 16, true_rank: int = 2, signal: float = 3.0,
                       generator: torch.Generator) -> Features:
    m, n = shape
    factors, planted = {}, torch.zeros(n_samples, classes, dtype=torch.float64)
    for index in range(matrices):
        g = torch.randn(n_samples, classes, positions, m, generator=generator, dtype=torch.float64) / m**0.5
        h = torch.randn(n_samples, positions, n, generator=generator, dtype=torch.float64) / n**0.5
        u = torch.linalg.qr(torch.randn(m, true_rank, generator=generator, dtype=torch.float64))[0]
        v = torch.linalg.qr(torch.randn(n, true_rank, generator=generator, dtype=torch.float64))[0]
        # ⟨Σ_t g_t h_tᵀ, u vᵀ⟩ = Σ_t (g_t·u)(h_t·v), summed over the planted rank
        planted += torch.einsum("njtr,ntr->nj", g @ u, h @ v)
        factors[f"w{index}"] = compress_outer_sums(g, h)
    f0 = 0.5 * torch.randn(n_samples, classes, generator=generator, dtype=torch.float64)
    logits = f0 + signal * planted / planted.std()
    factors = {k: (u.float(), v.float()) for k, (u, v) in factors.items()}
    return Features(f0, logits.argmax(-1), factors)
