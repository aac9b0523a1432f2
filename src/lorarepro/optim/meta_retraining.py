"""Retraining on T tasks, then LoRA fine-tuning on an unseen one (Meta-LoRA, Sec. 2 and 4).

Retraining fits the shared base weights either by standard retraining (SR, eq. 1: one model on the
pooled tasks) or by LoRA-ML (eq. 6: the base jointly with one low-rank adapter per task, so the
task-specific parts are absorbed by the adapters). Fine-tuning then freezes the base and fits a new
rank-r adapter QVᵀ on the test task (eq. 9).

Two model families, as in the paper's experiments:
  * linear, trained by GD as in Sec. 4.1. Every loss is least squares, so a task enters only through
    its moments Σ_xx = XᵀX/n and Σ_yx = YᵀX/n (`Moments`); a step costs O(d³) whatever the sample size.
    LoRA-ML uses the symmetric adapters U_tU_tᵀ of objective (14).
  * shallow, y = cᵀ sigmoid(W x), trained by full-batch AdamW on the summed per-task MSE as in Sec. 4.2;
    LoRA-ML uses asymmetric per-task adapters Q_tV_tᵀ on W, the up factor Q_t zero-initialised.

All tensors carry trials as a leading dimension (then tasks where there are several); every loss is a
sum over trials, so one optimizer over the batched tensors runs the trials independently (AdamW acts
elementwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lorarepro.problems.multitask import TaskData, gram, predict


# ----------------------------------------------------------------------------------------------
# Linear model: gradient descent on least squares through the task moments.
@dataclass(frozen=True)
class Moments:
    """Σ_xx = XᵀX/n and Σ_yx = YᵀX/n of one or more tasks' samples (…, d, d).

    The task loss (7), (1/2n)Σ_j ‖y_j − W x_j‖², equals ½tr(WΣ_xxWᵀ) − tr(WΣ_yxᵀ) + const, so its gradient
    is WΣ_xx − Σ_yx, and the in-sample error (1/n)‖(W − W*)X‖²_F is tr(DΣ_xxDᵀ) with D = W − W*.
    """

    xx: torch.Tensor
    yx: torch.Tensor

    @classmethod
    def of(cls, X: torch.Tensor, Y: torch.Tensor) -> "Moments":
        n = X.shape[-2]
        return cls(X.transpose(-2, -1) @ X / n, Y.transpose(-2, -1) @ X / n)

    def grad(self, W: torch.Tensor) -> torch.Tensor:
        return W @ self.xx - self.yx

    def energy(self, D: torch.Tensor) -> torch.Tensor:
        """tr(D Σ_xx Dᵀ) = (1/n)‖D X‖²_F."""
        return ((D @ self.xx) * D).sum((-2, -1))


def sr_linear(tasks: Moments, steps: int, lr: float) -> torch.Tensor:
    """Standard retraining: GD from A = 0 on the MSE of the pooled tasks (equal sizes), (B, d, d)."""
    A = torch.zeros_like(tasks.xx[:, 0])
    for _ in range(steps):
        A = A - lr * tasks.grad(A[:, None]).mean(1)
    return A


def lora_ml_linear(tasks: Moments, U: torch.Tensor, steps: int, inner_steps: int, lr_A: float,
                   lr_U: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LoRA-ML retraining of objective (14) on samples: alternate `inner_steps` GD steps on the task
    factors U_t (B, T, d, k) with one GD step on A (from A = 0), as the authors' code does.

    With G_t = (A + U_tU_tᵀ)Σ_xx − Σ_yx the gradient of task t's loss in its full weight, the factor's
    gradient is (G_t + G_tᵀ)U_t and A's is the task mean of G_t.
    """
    A = torch.zeros_like(tasks.xx[:, 0])
    for _ in range(steps):
        for _ in range(inner_steps):
            G = tasks.grad(A[:, None] + gram(U))
            U = U - lr_U * (G + G.transpose(-2, -1)) @ U
        A = A - lr_A * tasks.grad(A[:, None] + gram(U)).mean(1)
    return A, U


def lora_finetune_linear(A: torch.Tensor, task: Moments, Q: torch.Tensor, V: torch.Tensor, steps: int, lr: float,
                         error: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GD on the rank-r adapter of the frozen base A: min_{Q,V} L^n(A + QVᵀ) (eq. 9).

    Returns the final (Q, V) and error(A + QVᵀ) before every step and after the last, (B, steps + 1).
    """
    trace = torch.empty(A.shape[0], steps + 1, dtype=A.dtype, device=A.device)
    for step in range(steps + 1):
        W = A + Q @ V.transpose(-2, -1)
        trace[:, step] = error(W)
        if step < steps:
            G = task.grad(W)
            Q, V = Q - lr * G @ V, V - lr * G.transpose(-2, -1) @ Q
    return Q, V, trace


def gd_meta_population(grads: Callable, A: torch.Tensor, U: torch.Tensor, steps: int,
                       lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain simultaneous GD on (A, U) for a population objective given by its gradient function."""
    for _ in range(steps):
        gA, gU = grads(A, U)
        A, U = A - lr * gA, U - lr * gU
    return A, U


# ----------------------------------------------------------------------------------------------
# Shallow network y = cᵀ sigmoid(W x): full-batch AdamW on autograd gradients.
@dataclass(frozen=True)
class AdamW:
    """AdamW settings (torch defaults but the learning rate, as in the authors' code)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)

    def make(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, betas=self.betas, foreach=True)


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-task mean squared error, summed over tasks and trials (the gradient is the per-task sum)."""
    return (pred - target).pow(2).mean((-2, -1)).sum()


def _minimize(params: list[torch.Tensor], loss: Callable[[], torch.Tensor], steps: int, opt: AdamW) -> None:
    optimizer = opt.make(params)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()


def sr_shallow(data: TaskData, W: torch.Tensor, c: torch.Tensor, steps: int,
               opt: AdamW) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard retraining of (W, c) on all T tasks' data (B, T, N, ·); returns the trained (W, c)."""
    W, c = W.clone().requires_grad_(), c.clone().requires_grad_()
    _minimize([W, c], lambda: _mse(predict(W[:, None], data.X, c), data.Y), steps, opt)
    return W.detach(), c.detach()


def lora_ml_shallow(data: TaskData, W: torch.Tensor, c: torch.Tensor, Q: torch.Tensor, V: torch.Tensor, steps: int,
                    opt: AdamW) -> tuple[torch.Tensor, ...]:
    """LoRA-ML retraining: (W, c) jointly with task adapters Q_tV_tᵀ (B, T, d, k) on W; returns (W, c, Q, V).

    Task t's model is cᵀ sigmoid((W + Q_tV_tᵀ) x); fine-tuning keeps (W, c) and discards the adapters.
    """
    W, c, Q, V = (x.clone().requires_grad_() for x in (W, c, Q, V))
    _minimize([W, c, Q, V], lambda: _mse(predict(W[:, None] + Q @ V.transpose(-2, -1), data.X, c), data.Y),
              steps, opt)
    return W.detach(), c.detach(), Q.detach(), V.detach()


def lora_finetune_shallow(W: torch.Tensor, c: torch.Tensor, data: TaskData, Q: torch.Tensor, V: torch.Tensor,
                          steps: int, opt: AdamW) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AdamW on a rank-r adapter QVᵀ of the frozen (W, c) on the test task's data (B, n, ·).

    Returns the final (Q, V) and the in-sample error against the noiseless targets before every step
    and after the last, (B, steps + 1); it comes from the forward pass the step needs anyway.
    """
    Q, V = Q.clone().requires_grad_(), V.clone().requires_grad_()
    optimizer = opt.make([Q, V])
    trace = torch.empty(W.shape[0], steps + 1, dtype=W.dtype, device=W.device)
    for step in range(steps + 1):
        pred = predict(W + Q @ V.transpose(-2, -1), data.X, c)
        trace[:, step] = (pred.detach() - data.F).pow(2).sum(-1).mean(-1)
        if step < steps:
            optimizer.zero_grad(set_to_none=True)
            _mse(pred, data.Y).backward()
            optimizer.step()
    return Q.detach(), V.detach(), trace
