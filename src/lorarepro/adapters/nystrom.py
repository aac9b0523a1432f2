"""Nyström initialisation (Li et al., "On the Crucial Role of Initialization for Matrix Factorization").

The factor starts as a Gaussian sketch of the target, X₀ = AΩ, so every column lies in col(A) and
(I − QQᵀ)X_t stays 0 under ScaledGD; that alone turns ScaledGD's linear rate into a quadratic one.
For LoRA (NoRA) the target is the pretrained weight: lora_A = Ωᵀ W₀ / scaling sketches its row space
and lora_B = 0, so the adapted model starts exactly at W₀ (nothing is subtracted from W₀, unlike
PiSSA / OLoRA).

Matrix-level and batched over leading dimensions; the sketch Ω is drawn by the caller or from the
given generators, so a seed fixes the initialisation.
"""

from __future__ import annotations

from typing import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def gaussian(shape: Sequence[int], std: float, generators: Generators = None, *,
             dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """N(0, std²) entries. With a list of generators, one slice per generator along a new leading dim,
    so each batch entry is reproducible from its own seed whatever else shares the batch."""
    if generators is None or isinstance(generators, torch.Generator):
        return std * torch.randn(*shape, generator=generators, dtype=dtype).to(device)
    return torch.stack([gaussian(shape, std, g, dtype=dtype, device=device) for g in generators])


def nystrom_sketch(a, omega: torch.Tensor) -> torch.Tensor:
    """X₀ = AΩ for a dense (batched) tensor or any operator with `@` (e.g. a factored target)."""
    return a @ omega


def small_init(shape: Sequence[int], zeta: float, generators: Generators = None, **kwargs) -> torch.Tensor:
    """The usual small random start, [X₀]_ij ~ N(0, ζ²): close to the saddle at 0, not in col(A)."""
    return gaussian(shape, zeta, generators, **kwargs)


def nystrom_init(a, rank: int, xi: float, generators: Generators = None, **kwargs) -> torch.Tensor:
    """Eq. (3)/(4): X₀ = AΩ with [Ω]_ij ~ N(0, ξ²), Ω ∈ ℝ^{n×r} (n = columns of A). The magnitude ξ
    is free: ScaledGD is insensitive to it."""
    return nystrom_sketch(a, gaussian((a.shape[-1], rank), xi, generators, **kwargs))


def perturbed_nystrom_init(a, rank: int, xi: float, xi_n: float, generators: Generators = None,
                           **kwargs) -> torch.Tensor:
    """X₀ = AΩ + N, [N]_ij ~ N(0, ξ_n²): a sketch with a little mass in the residual space (Fig. 1b,
    dotted lines), which ScaledGD then removes only linearly. Ω is drawn before N from each generator,
    so for one seed the sketch part equals `nystrom_init`'s."""
    x0 = nystrom_init(a, rank, xi, generators, **kwargs)
    return x0 + gaussian((a.shape[-2], rank), xi_n, generators, **kwargs)


def unbalanced_sketch_init(a, rank: int, xi: float, zeta: float, sigma1, generators: Generators = None,
                           **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """AltGD's start (Ward & Kolda [60], as the paper summarises it): X₀ = AΩ₁/σ₁(A), Y₀ = σ₁(A)Ω₂
    with small Gaussian Ω₁ (N(0, ξ²)) and Ω₂ (N(0, ζ²)). X₀ is a sketch but Y₀ is not, so the
    residual space is not eliminated. `sigma1` broadcasts against the batch (shape (…, 1, 1))."""
    x0 = nystrom_init(a, rank, xi, generators, **kwargs) / sigma1
    return x0, sigma1 * gaussian((a.shape[-1], rank), zeta, generators, **kwargs)


def nora_lora_init(weight: torch.Tensor, rank: int, xi: float, scaling: float,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """NoRA factors for a linear layer with weight W₀ ∈ ℝ^{out×in} in the PEFT layout
    ΔW = scaling · lora_B @ lora_A (scaling = α/r).

    Returns lora_A = Ωᵀ W₀ / scaling ∈ ℝ^{r×in} (Ω ∈ ℝ^{out×r}, [Ω]_ij ~ N(0, ξ²); the sketch of the
    row space of W₀, i.e. X₀ = W₀ᵀΩ of the paper with target W₀ᵀ) and lora_B = 0 ∈ ℝ^{out×r}, so
    W₀ + ΔW₀ = W₀ exactly. Half-precision weights are sketched in float32; the factors come back in
    that working dtype on the weight's device (Ω is drawn on the CPU, so a CPU generator fixes it on
    any device).
    """
    work = weight.detach()
    if work.dtype in (torch.float16, torch.bfloat16):
        work = work.float()
    omega = gaussian((work.shape[0], rank), xi, generator, dtype=work.dtype, device=work.device)
    lora_a = nystrom_sketch(work.mT, omega).mT / scaling
    lora_b = torch.zeros(work.shape[0], rank, dtype=work.dtype, device=work.device)
    return lora_a.contiguous(), lora_b
