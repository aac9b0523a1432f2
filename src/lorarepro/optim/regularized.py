"""LoRA with weight decay, and full fine-tuning with a nuclear-norm penalty, on one objective.

Lemma 2.2 of NTK-LoRA: min over BA = δ of (λ/2)(‖A‖²_F + ‖B‖²_F) is λ‖δ‖_*, so weight-decayed LoRA and
nuclear-norm-regularised full fine-tuning minimise the same function, F(δ) = L̂(δ) + λ Σ_l ‖δ_l‖_*, over
different parameterisations. Both run on an `objective(deltas, index)` returning the mean loss over the
examples `index` (None: all), its gradient with respect to each δ_l, and the outputs, in whatever
coordinates δ lives (the reduced NTK coordinates of a linearised model, or an actual block's weights).

Step sizes follow the authors' code: CE summed over a minibatch and plain SGD at rate `lr`, i.e. a step
of lr·|batch| on the minibatch's mean loss; minibatches are sequential and unshuffled. `mode` "paper"
applies the weight decay and the SVT the paper describes; "code" reproduces the released code, where
both are no-ops (the penalty still enters the logged objective).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from lorarepro.optim.prox import nuclear_norm, svt

MODES = ("paper", "code")

Objective = Callable[[dict[str, Tensor], Tensor | None], tuple[Tensor, dict[str, Tensor], Tensor]]
Callback = Callable[[int, object], None]


def minibatches(n: int, batch_size: int) -> list[Tensor | None]:
    """Sequential minibatches of 0..n-1 (the code's SequentialSampler); [None] for full-batch GD."""
    if batch_size >= n:
        return [None]
    return [torch.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


@dataclass
class LoraState:
    """LoRA factors δ_l = B_l A_l (leading dimensions batch independent runs, e.g. seeds).

    `a_idle_sq` is the squared norm of the part of A that no gradient ever reaches (in reduced
    coordinates: A's component outside the training G's row space); it only decays, yet counts in the
    penalty.
    """

    b: dict[str, Tensor]  # [..., m, r]
    a: dict[str, Tensor]  # [..., r, n]
    a_idle_sq: Tensor  # [...]

    def deltas(self) -> dict[str, Tensor]:
        return {name: self.b[name] @ self.a[name] for name in self.b}

    def penalty(self) -> Tensor:
        """½ Σ_l (‖A_l‖²_F + ‖B_l‖²_F), whose minimum over factorisations of δ is Σ_l ‖δ_l‖_*."""
        total = 0.5 * self.a_idle_sq
        for name in self.b:
            total = total + 0.5 * (self.a[name].square().sum((-2, -1)) + self.b[name].square().sum((-2, -1)))
        return total


def lora_gd(objective: Objective, state: LoraState, *, lr: float, weight_decay: float, epochs: int,
            n: int, batch_size: int, mode: str = "paper", callback: Callback | None = None) -> LoraState:
    """Gradient descent on (B, A) with weight decay λ: F = L̂(BA) + (λ/2)(‖A‖² + ‖B‖²)."""
    _check_mode(mode)
    for epoch in range(1, epochs + 1):
        for index in minibatches(n, batch_size):
            step = lr * (n if index is None else len(index))
            decay = 1.0 - step * weight_decay if mode == "paper" else 1.0
            _, grads, _ = objective(state.deltas(), index)
            for name, grad in grads.items():
                b, a = state.b[name], state.a[name]
                state.b[name] = decay * b - step * (grad @ a.transpose(-1, -2))
                state.a[name] = decay * a - step * (b.transpose(-1, -2) @ grad)
            state.a_idle_sq = state.a_idle_sq * decay**2
        if callback is not None:
            callback(epoch, state)
    return state


@dataclass
class FullState:
    """A full-rank update δ_l per trained matrix."""

    delta: dict[str, Tensor]

    def deltas(self) -> dict[str, Tensor]:
        return self.delta

    def penalty(self) -> Tensor:
        """Σ_l ‖δ_l‖_* (NaN once a run has diverged)."""
        return sum(nuclear_norm(d) if torch.isfinite(d).all() else torch.full(d.shape[:-2], torch.nan, dtype=d.dtype)
                   for d in self.delta.values())


def proximal_gd(objective: Objective, state: FullState, *, lr: float, weight_decay: float, epochs: int,
                n: int, batch_size: int, mode: str = "paper", callback: Callback | None = None) -> FullState:
    """Proximal gradient on F = L̂(δ) + λ Σ‖δ_l‖_*: δ ← SVT_{αλ}(δ − α∇L̂(δ)), one SVD per matrix and step.

    A step that leaves the finite numbers (a step size too large) ends the run after that epoch's callback.
    """
    _check_mode(mode)
    for epoch in range(1, epochs + 1):
        finite = True
        for index in minibatches(n, batch_size):
            step = lr * (n if index is None else len(index))
            _, grads, _ = objective(state.deltas(), index)
            for name, grad in grads.items():
                moved = state.delta[name] - step * grad
                finite = finite and bool(torch.isfinite(moved).all())
                state.delta[name] = svt(moved, step * weight_decay) if mode == "paper" and finite else moved
            if not finite:
                break
        if callback is not None:
            callback(epoch, state)
        if not finite:
            break
    return state


def fista(objective: Objective, state: FullState, *, step: float, weight_decay: float, tol: float = 1e-8,
          max_iter: int = 100_000) -> tuple[FullState, int]:
    """The minimiser of L̂(δ) + λ Σ‖δ_l‖_* by accelerated proximal gradient (full batch, step ≤ 1/Lipschitz),
    restarting the momentum whenever the objective rises; stops when the gradient mapping
    ‖δ_k − δ_{k+1}‖/step falls below `tol`. Returns the state and the iterations used."""

    def value(delta):
        return float(objective(delta, None)[0]) + weight_decay * float(sum(nuclear_norm(d) for d in delta.values()))

    def prox_step(point):
        _, grads, _ = objective(point, None)
        return {k: svt(point[k] - step * grads[k], step * weight_decay) for k in point}

    x = {k: v.clone() for k, v in state.delta.items()}
    y, t, f_x = x, 1.0, value(x)
    for it in range(1, max_iter + 1):
        x_new = prox_step(y)
        f_new = value(x_new)
        if f_new > f_x:  # restart: a plain proximal step from x
            x_new, t = prox_step(x), 1.0
            f_new = value(x_new)
        mapping = max(float((x[k] - x_new[k]).norm()) for k in x) / step
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        y = {k: x_new[k] + ((t - 1.0) / t_new) * (x_new[k] - x[k]) for k in x}
        x, t, f_x = x_new, t_new, f_new
        if mapping < tol:
            return FullState(x), it
    return FullState(x), max_iter


def cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy over the examples (dimension −2) and its gradient with respect to the logits."""
    logp = torch.log_softmax(logits, dim=-1)
    loss = -logp.gather(-1, labels.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)
    grad = (logp.exp() - torch.nn.functional.one_hot(labels, logits.shape[-1]).to(logits.dtype)) / logits.shape[-2]
    return loss, grad


def cross_entropy_nuclear_dual(logits: Tensor, f0: Tensor, labels: Tensor, grads: dict[str, Tensor],
                               weight_decay: float) -> Tensor:
    """A lower bound on min_δ L̂(δ) + λΣ‖δ_l‖_* for a linear model f = f0 + 𝒜δ under mean cross-entropy,
    from the dual point the primal point δ suggests (Fenchel duality), so F(δ) − bound certifies how far
    δ is from optimal.

    With p_i = softmax(f_i) and u_i = (p_i − e_{y_i})/N the loss gradient in the logits, 𝒜*u is the
    gradient in δ (`grads`). Scaling u by θ = min(1, λ/max_l‖(𝒜*u)_l‖₂) makes it dual feasible, and
        D = (1/N) Σ_i [H(q_i) + θ⟨p_i − e_{y_i}, f0_i⟩],   q_i = θ p_i + (1 − θ) e_{y_i},
    with H the entropy; D equals the optimum at the optimum (θ = 1 there)."""
    spectral = torch.stack([torch.linalg.matrix_norm(g, ord=2) for g in grads.values()]).amax(0)
    theta = torch.clamp(weight_decay / spectral.clamp_min(1e-300), max=1.0)
    onehot = torch.nn.functional.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    p = torch.softmax(logits, dim=-1)
    q = theta[..., None, None] * p + (1 - theta[..., None, None]) * onehot
    entropy = -(q * torch.log(q.clamp_min(1e-300))).sum(-1)
    return (entropy + theta[..., None] * ((p - onehot) * f0).sum(-1)).mean(-1)
