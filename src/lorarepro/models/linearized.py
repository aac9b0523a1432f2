"""Linearised (NTK-regime) models: the first-order Taylor expansion of a network in some of its weights,

    f_lin(x; δ) = f(x; θ₀) + J_θ f(x; θ₀)·δ,

computed with forward-mode AD (`torch.func.jvp`): one pass gives f(x; θ₀) and the directional
derivative J·δ together, without ever forming J, so it scales to the papers' models. The network runs
in eval mode (no dropout) with eager attention (the fused SDPA kernels have no forward-mode rule).
Gradients with respect to δ flow back through the tangent, so J-transposed products come from
ordinary `backward()`.

δ is parameterised by a module with a `delta()` method: `FullDelta` (full fine-tuning of the chosen
weights, trained by proximal gradient with a nuclear-norm prox, see optim/proximal.py) or `LoraDelta`
(δ_l = B_l A_l, the NTK-LoRA paper's LoRA on the linearised model: no α/r scaling, A Gaussian with
std 1/(√r·n_in), B = 0, as in the authors' code).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, jvp
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

Output = Callable[[nn.Module, Mapping[str, Any]], torch.Tensor]


def _key(name: str) -> str:
    return name.replace(".", "__")


def _logits(model: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    return model(**batch).logits


class _Readout(nn.Module):
    """model + output function as one module, so that functional_call can swap the model's weights."""

    def __init__(self, model: nn.Module, output: Output):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, batch):
        return self.output(self.model, batch)


class FullDelta(nn.Module):
    """δ_l itself, one zero-initialised matrix per linearised weight (full fine-tuning)."""

    def __init__(self, shapes: Mapping[str, torch.Size], *, device=None, dtype=None):
        super().__init__()
        self.names = list(shapes)
        self.deltas = nn.ParameterDict({_key(n): nn.Parameter(torch.zeros(s, device=device, dtype=dtype))
                                        for n, s in shapes.items()})

    def delta(self) -> dict[str, torch.Tensor]:
        return {n: self.deltas[_key(n)] for n in self.names}


class LoraDelta(nn.Module):
    """δ_l = scale·B_l A_l with A_l ~ N(0, std²) (default std = 1/(√r·n_in)) and B_l = 0."""

    def __init__(self, shapes: Mapping[str, torch.Size], rank: int, *, scale: float = 1.0, std: float | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=None):
        super().__init__()
        self.names, self.scale = list(shapes), scale
        self.A, self.B = nn.ParameterDict(), nn.ParameterDict()
        for name, (out_f, in_f) in shapes.items():
            sd = std if std is not None else 1.0 / (math.sqrt(rank) * in_f)
            a = torch.randn(rank, in_f, generator=generator) * sd
            self.A[_key(name)] = nn.Parameter(a.to(device=device, dtype=dtype))
            self.B[_key(name)] = nn.Parameter(torch.zeros(out_f, rank, device=device, dtype=dtype))

    def delta(self) -> dict[str, torch.Tensor]:
        return {n: self.scale * (self.B[_key(n)] @ self.A[_key(n)]) for n in self.names}


class LinearizedModel(nn.Module):
    """f_lin(batch) = f(batch; θ₀) + J·δ, with δ = `delta_module.delta()` on the weights `names`.

    `output(model, batch)` reads the network's output that is linearised (default: `.logits` of
    `model(**batch)`; e.g. the label words' logits of a prompt). `forward(**batch)` returns it as
    `.logits`, so the classification objectives train a linearised model like any other.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], delta_module: nn.Module, output: Output = _logits):
        super().__init__()
        for module in model.modules():  # the model itself, or a transformer inside a custom head
            if isinstance(module, PreTrainedModel):
                module.set_attn_implementation("eager")
        model.eval().requires_grad_(False)
        self.readout = _Readout(model, output)
        params = dict(model.named_parameters())
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(f"the model has no parameters {missing}")
        self.names = list(names)
        self.theta0 = {n: params[n].detach() for n in self.names}
        self.delta_module = delta_module

    def train(self, mode: bool = True) -> "LinearizedModel":
        """Only δ's module changes mode: the network itself always runs in eval mode."""
        self.training = mode
        self.delta_module.train(mode)
        return self

    def linearize(self, batch: Mapping[str, Any], delta: Mapping[str, torch.Tensor]):
        """(f(batch; θ₀), J·δ)."""
        def f(theta: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(self.readout, {f"model.{n}": t for n, t in theta.items()}, (batch,))

        tangents = {n: delta[n].to(self.theta0[n].dtype) for n in self.names}
        return jvp(f, (self.theta0,), (tangents,))

    def forward(self, **batch) -> SequenceClassifierOutput:
        f0, jdelta = self.linearize(batch, self.delta_module.delta())
        return SequenceClassifierOutput(logits=f0 + jdelta)
