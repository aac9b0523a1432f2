"""Critical points of small smooth losses, batched: Newton's method on the gradient, the Hessian's
spectrum there, and a sphere certificate that a point is a strict local minimum.

These serve the search for spurious minima (Meta-LoRA App. E.2): a root of ∇f is found whatever
its type (minimum, saddle), then classified by its Hessian. `f` maps one flat parameter vector (and
per-instance data) to a scalar; every function here maps a batch (B, p) with torch.func.vmap.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import grad, hessian, vmap

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradients(f: Loss, x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    return vmap(grad(f))(x, data)


def hessians(f: Loss, x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    return vmap(hessian(f))(x, data)


def newton_roots(f: Loss, x: torch.Tensor, data: torch.Tensor, steps: int, max_step: float = 1.0) -> torch.Tensor:
    """`steps` Newton steps x ← x − H⁺∇f towards a root of the gradient, from each row of x (B, p).

    The least-squares solve tolerates singular Hessians; each step is clipped to `max_step` in norm so
    that starts far from any root do not jump to infinity.
    """
    for _ in range(steps):
        g, H = gradients(f, x, data), hessians(f, x, data)
        step = torch.linalg.lstsq(H, g[..., None]).solution[..., 0]
        norm = step.norm(dim=-1, keepdim=True)
        x = x - step * (max_step / norm.clamp_min(max_step))
    return x


def sphere_certificate(f: Loss, x: torch.Tensor, data: torch.Tensor, radius: float, net: int,
                       generator: torch.Generator) -> torch.Tensor:
    """min over `net` random points U on the sphere of `radius` about x of (U − x)ᵀ∇f(U), per row (B,).

    A positive value on a dense enough net certifies that the gradient points outward everywhere on
    the sphere, so f has a local minimum inside it (App. E.2's r(U) > γ > 0).
    """
    B, p = x.shape
    directions = torch.randn(B, net, p, generator=generator, dtype=x.dtype)
    offsets = radius * directions / directions.norm(dim=-1, keepdim=True)
    points = (x[:, None] + offsets).reshape(B * net, p)
    g = gradients(f, points, data.repeat_interleave(net, 0)).reshape(B, net, p)
    return (offsets * g).sum(-1).min(-1).values


def gradient_descent(f: Loss, x: torch.Tensor, data: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Plain GD from each row of x; returns f along the path, (B, steps + 1)."""
    value_and_grad = vmap(torch.func.grad_and_value(f))
    trace = torch.empty(x.shape[0], steps + 1, dtype=x.dtype)
    for step in range(steps + 1):
        g, value = value_and_grad(x, data)
        trace[:, step] = value
        x = x - lr * g
    return trace
