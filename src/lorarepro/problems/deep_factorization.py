"""Deep matrix factorization and completion (Yaras et al., §2–3): fit f(Θ) = W_L⋯W_1 to a low-rank target Φ
from the entries an observation mask Ω reveals, by plain gradient descent with optional weight decay.

Conventions, from the authors' code (they make the paper's step sizes usable as printed):
- the loss is ½·mean over all d_out·d_in entries of (Ω⊙(f − Φ))², so a step η here equals the paper's
  sum-loss step η/(d_out·d_in);
- the recovery error is ½·mean of ((1 − Ω)⊙(f − Φ))², the unobserved entries averaged over all entries.

Factors carry a leading trial dimension (S, ·, ·) so that independent initialisations train as one batch;
target and mask are shared by the trials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


def low_rank_target(d_out: int, d_in: int, rank: int, *, generator: torch.Generator,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Φ: the best rank-r approximation of a d_out×d_in standard Gaussian matrix (no rescaling, σ_1 ≈ 2√d)."""
    gauss = torch.randn(d_out, d_in, generator=generator, dtype=dtype)
    u, s, vh = torch.linalg.svd(gauss, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank]


def observation_mask(d_out: int, d_in: int, fraction: float, *, generator: torch.Generator,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Ω: exactly ⌊fraction·d_out·d_in⌋ entries set to one, chosen uniformly without replacement."""
    n = d_out * d_in
    mask = torch.zeros(n, dtype=dtype)
    mask[torch.randperm(n, generator=generator)[: int(fraction * n)]] = 1.0
    return mask.reshape(d_out, d_in)


@dataclass
class Completion:
    """The loss (10) with the mean normalisation; mask None observes every entry (factorization, (2))."""

    target: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self):
        numel = self.target.shape[-1] * self.target.shape[-2]
        # ∂ℓ/∂f = Ω⊙(f − Φ)/numel: the mask and the normalisation folded into one multiplier.
        self._grad_scale = (1.0 / numel) if self.mask is None else self.mask / numel

    def to(self, device) -> "Completion":
        return Completion(self.target.to(device), None if self.mask is None else self.mask.to(device))

    def grad_output(self, f: torch.Tensor) -> torch.Tensor:
        """∂ℓ/∂f (a fresh tensor)."""
        return (f - self.target).mul_(self._grad_scale)

    def loss(self, f: torch.Tensor) -> torch.Tensor:
        """Training loss per trial: ½·mean((Ω⊙(f − Φ))²)."""
        residual = f - self.target
        if self.mask is not None:
            residual = residual * self.mask
        return 0.5 * residual.square().mean((-2, -1))

    def recovery_error(self, f: torch.Tensor) -> torch.Tensor:
        """½·mean(((1 − Ω)⊙(f − Φ))²) per trial: the error on the entries training never saw."""
        if self.mask is None:
            raise ValueError("a fully observed problem has no unobserved entries to recover")
        return 0.5 * ((f - self.target) * (1.0 - self.mask)).square().mean((-2, -1))


def end_to_end(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """W_L⋯W_1 for factors listed first to last (products taken from the input side)."""
    product = factors[0]
    for w in factors[1:]:
        product = w @ product
    return product


def chain_gradients(factors: Sequence[torch.Tensor], grad_output: torch.Tensor) -> list[torch.Tensor]:
    """∇_{W_l} = W_{L:l+1}ᵀ · (∂ℓ/∂f) · W_{l−1:1}ᵀ for every factor, eq. (14)."""
    prefixes = _prefixes(factors)
    grads, back = [], grad_output
    for layer in reversed(range(len(factors))):
        grads.append(back if layer == 0 else back @ prefixes[layer - 1].mT)
        back = factors[layer].mT @ back
    return grads[::-1]


def gd_step(factors: Sequence[torch.Tensor], problem: Completion, steps: Sequence[float],
            weight_decay: float = 0.0) -> None:
    """One step of (4) on every factor, in place: W_l ← (1 − η_lλ)·W_l − η_l·∇_{W_l}ℓ(Θ).

    All gradients are taken at the current Θ: the backward sweep reads W_l before updating it and the
    prefix W_{l−1:1} only involves factors not yet updated. A step of zero freezes a factor and skips
    its gradient (and the part of the sweep below the lowest trained factor). The cost is 3(L−1)
    matrix products for L trained factors.
    """
    prefixes = _prefixes(factors)
    back = problem.grad_output(prefixes[-1])
    lowest = next((i for i, s in enumerate(steps) if s), len(factors))
    for layer in reversed(range(lowest, len(factors))):
        w, step = factors[layer], steps[layer]
        below = w.mT @ back if layer > lowest else None
        if step:
            if layer == 0:
                w.mul_(1.0 - step * weight_decay).sub_(back, alpha=step)
            else:
                w.baddbmm_(back, prefixes[layer - 1].mT, beta=1.0 - step * weight_decay, alpha=-step)
        back = below


def step_flops(factors: Sequence[torch.Tensor], steps: Sequence[float]) -> int:
    """Floating-point operations of the matrix products in one `gd_step` on these factors.

    Every product the step forms with a factor W_l (m×k) — the forward prefix W_l·W_{l−1:1}, the backward
    W_lᵀ·B, and the gradient B·W_{l−1:1}ᵀ — costs 2·m·k·d_in.
    """
    batch = factors[0].shape[0] if factors[0].dim() == 3 else 1
    d_in = factors[0].shape[-1]
    lowest = next((i for i, s in enumerate(steps) if s), len(factors))
    count = 0
    for layer, w in enumerate(factors):
        uses = (layer > 0) + (layer > lowest) + (layer >= lowest and layer > 0 and bool(steps[layer]))
        count += uses * w.shape[-2] * w.shape[-1]
    return 2 * batch * d_in * count


def rho_recursion(scales: Sequence[float], eta: float, iters: int, weight_decay: float = 0.0) -> torch.Tensor:
    """ρ_l(t) of eq. (6), t = 0..iters, shape (iters+1, L), for the sum-loss step η (float64).

    ρ_l(t) = ρ_l(t−1)·(1 − ηλ − η·∏_{k≠l} ρ_k(t−1)²), ρ_l(0) = ε_l: the value of the d − 2r singular values
    of W_l(t) that Theorem 2.1 shows never leave their initial singular subspaces.
    """
    rho = torch.tensor(list(scales), dtype=torch.float64)
    others = [[k for k in range(len(rho)) if k != l] for l in range(len(rho))]
    out = [rho]
    for _ in range(iters):
        sq = rho.square()
        rho = rho * (1.0 - eta * weight_decay - eta * torch.stack([sq[idx].prod() for idx in others]))
        out.append(rho)
    return torch.stack(out)


@dataclass
class Check:
    """What `descend` reports after each block of steps, for the trials still running."""

    step: int  # iterations done
    trials: torch.Tensor  # indices (into the original batch) of the trials in `factors`
    factors: list[torch.Tensor]
    output: torch.Tensor  # f(Θ) of those trials
    loss: torch.Tensor  # their training loss (CPU, float64)
    elapsed: float  # seconds spent in gradient descent so far (monitor time excluded)
    converged: torch.Tensor  # bool per trial: loss < tol (converged and diverged trials then leave the batch)


def descend(factors: list[torch.Tensor], problem: Completion, steps: Sequence[float], *, iters: int,
            check_every: int = 100, tol: float | None = None, weight_decay: float = 0.0,
            monitor: Callable[[Check], None] | None = None) -> torch.Tensor:
    """Gradient descent on a batch of trials, in blocks of `check_every` steps, until every trial's training
    loss is below `tol` or `iters` steps are done. The loss is checked at step 0 and after each block (the
    authors count iterations in such blocks). A trial leaves the batch once it converged or its loss is no
    longer finite, so the rest run at full speed. The factors passed in are not modified.

    `monitor(check)` sees every check; its own time is not counted in `elapsed`. Returns, per trial, the
    iterations to reach `tol` (NaN where it never did).
    """
    trials = torch.arange(factors[0].shape[0])
    reached = torch.full((len(trials),), float("nan"), dtype=torch.float64)
    factors = [w.clone() for w in factors]
    elapsed, step = 0.0, 0
    start = time.perf_counter()
    while True:
        output = end_to_end(factors)
        loss = problem.loss(output).double().cpu()  # .cpu() also waits for the device
        elapsed += time.perf_counter() - start
        converged = loss < tol if tol is not None else torch.zeros(len(trials), dtype=torch.bool)
        if monitor is not None:
            monitor(Check(step, trials, factors, output, loss, elapsed, converged))
        reached[trials[converged]] = step
        done = converged | ~torch.isfinite(loss)
        if done.all() or step >= iters:
            return reached
        start = time.perf_counter()
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            factors = [w.index_select(0, keep.to(w.device)) for w in factors]
            trials = trials[keep]
        block = min(check_every, iters - step)
        for _ in range(block):
            gd_step(factors, problem, steps, weight_decay)
        step += block


def _prefixes(factors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[W_1, W_{2:1}, …, W_{L:1}]."""
    out = [factors[0]]
    for w in factors[1:]:
        out.append(w @ out[-1])
    return out
