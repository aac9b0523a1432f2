"""LoRA on PEFT with a registry of named initialisations.

`get_peft_model` builds the adapters (rank, alpha, rsLoRA, target modules, dropout); an init then
overwrites every `lora_A` (r×in) and `lora_B` (out×r) of the adapter, where ΔW = scaling·B·A and
scaling = α/r (α/√r with rsLoRA). The matrix math of each init lives in `matrix_inits` / `nystrom`;
here it is applied layer by layer (half-precision weights in float32) and written back in the
layer's dtype.

| init      | lora_A, lora_B                                         | base weight  | f at init  |
|-----------|--------------------------------------------------------|--------------|------------|
| default   | Kaiming-uniform A (PEFT's), B = 0                      | unchanged    | unchanged  |
| gaussian  | A ~ N(0, std²) (PEFT: std = 1/r), B = 0                | unchanged    | unchanged  |
| pissa     | PEFT's: √S_r-scaled top-r SVD of W₀                    | W₀ − s·BA    | unchanged  |
| olora     | PEFT's: B = Q_r, A = R_r of W₀ = QR                    | W₀ − s·BA    | unchanged  |
| lora_ga   | V_{1..r}ᵀ, U_{r+1..2r} of ∇W × out^¼/√γ (paper form)   | W₀ − s·BA    | unchanged  |
| lora_one  | Algorithm 1: top-r SVD of −∇W, S/S₀, 1/√s              | unchanged    | + s·BA     |
| spectral  | App. C.2: √γ·U_r√S_r, √γ·√S_r V_rᵀ of −∇W              | unchanged    | + s·BA     |
| nora      | A = Nyström sketch of W₀'s row space, B = 0            | unchanged    | unchanged  |

LoRA-SB and Deep LoRA need more than two factors and live in `deep_adapter`.

`nora` writes the sketch of the *pretrained* weight into lora_A, which is what the NoRA paper
means; `released_code: true` reproduces the authors' released code, in which the sketch never
reaches lora_A (it keeps PEFT's Kaiming init, so the run is plain LoRA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lorarepro.adapters import matrix_inits, nystrom
from lorarepro.adapters.gradient import working_precision

PEFT_PREFIX = "base_model.model."


@dataclass
class LayerContext:
    """What an init may use for one adapted layer (at least float32, on the layer's device)."""

    name: str
    weight: torch.Tensor  # W₀, out×in
    grad: torch.Tensor | None  # ∇_W L at W₀ on the init batch (gradient-based inits only)
    r: int
    scaling: float
    generator: torch.Generator
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LoraFactors:
    A: torch.Tensor  # r×in
    B: torch.Tensor  # out×r
    weight: torch.Tensor | None = None  # a new base weight, for inits that move W₀


@dataclass(frozen=True)
class PeftInit:
    """One named init: how PEFT builds the adapter, then what overwrites it (None: keep PEFT's)."""

    peft_init: bool | str
    reinit: Callable[[LayerContext], LoraFactors] | None
    needs_gradient: bool = False
    moves_base: bool = False


def _randn(shape, ctx: LayerContext) -> torch.Tensor:
    return torch.randn(*shape, generator=ctx.generator).to(ctx.weight.device)


def _default(ctx: LayerContext) -> LoraFactors:
    out_f, in_f = ctx.weight.shape
    A = torch.empty(ctx.r, in_f)
    nn.init.kaiming_uniform_(A, a=math.sqrt(5), generator=ctx.generator)  # PEFT's (and loralib's) lora_A init
    return LoraFactors(A.to(ctx.weight.device), ctx.weight.new_zeros(out_f, ctx.r))


def _gaussian(ctx: LayerContext) -> LoraFactors:
    """A ~ N(0, std²), B = 0. `std`: a number, "peft" (1/r, PEFT's "gaussian"), or "ntk"
    (1/(√r·in), the NTK-LoRA code)."""
    out_f, in_f = ctx.weight.shape
    std = ctx.options.get("std", "peft")
    std = {"peft": 1.0 / ctx.r, "ntk": 1.0 / (math.sqrt(ctx.r) * in_f)}.get(std, std)
    return LoraFactors(_randn((ctx.r, in_f), ctx) * float(std), ctx.weight.new_zeros(out_f, ctx.r))


def _lora_one(ctx: LayerContext) -> LoraFactors:
    """Algorithm 1; `scale` is the paper's s (the code's stable_gamma, 128 in its configs). The SVD is
    the code's randomized one (q = `oversample`, `niter`), exact when q reaches the matrix's size."""
    A, B = matrix_inits.lora_one_init(-ctx.grad, ctx.r, scale=ctx.options.get("scale", 128.0),
                                      svd_method=ctx.options.get("svd", "lowrank"),
                                      oversample=ctx.options.get("oversample", 512), niter=ctx.options.get("niter", 16))
    return LoraFactors(A, B)


def _spectral(ctx: LayerContext) -> LoraFactors:
    """Spectral-init of the theory: B·A = γ·P_r(−∇W) (γ = 1 linear, 2 ReLU)."""
    A, B = matrix_inits.spectral_init(-ctx.grad, ctx.r, gamma=ctx.options.get("gamma", 1.0))
    return LoraFactors(A, B)


def _lora_ga(ctx: LayerContext) -> LoraFactors:
    """Paper form; `gamma` is the stable γ (16 in LoRA-GA, 64 in LoRA-One's LLM runs)."""
    A, B = matrix_inits.lora_ga_init(ctx.grad, ctx.r, gamma=ctx.options.get("gamma", 16.0),
                                     svd_method=ctx.options.get("svd", "full"))
    return LoraFactors(A, B, weight=ctx.weight - ctx.scaling * (B @ A))


def _nora(ctx: LayerContext) -> LoraFactors:
    """NoRA: lora_A ← ΩᵀW₀/scaling with Ω ~ N(0, ξ²) (out×r), lora_B ← 0 (ξ = `xi`; the authors'
    LLaMA-2 scripts use 0.02 for NoRA and 0.1 for NoRA+, their OPT grid is {0.05, 0.1, 0.2})."""
    if ctx.options.get("released_code", False):
        return _default(ctx)
    A, B = nystrom.nora_lora_init(ctx.weight, ctx.r, ctx.options.get("xi", 0.1), ctx.scaling, ctx.generator)
    return LoraFactors(A, B)


PEFT_INITS: dict[str, PeftInit] = {
    "default": PeftInit(True, _default),
    "gaussian": PeftInit(True, _gaussian),
    "pissa": PeftInit("pissa", None, moves_base=True),
    "olora": PeftInit("olora", None, moves_base=True),
    "lora_ga": PeftInit(True, _lora_ga, needs_gradient=True, moves_base=True),
    "lora_one": PeftInit(True, _lora_one, needs_gradient=True),
    "spectral": PeftInit(True, _spectral, needs_gradient=True),
    "nora": PeftInit(True, _nora),
}


def lora_config(spec: Mapping[str, Any], peft_init: bool | str = True, task_type: str | None = None):
    from peft import LoraConfig

    return LoraConfig(r=spec["r"], lora_alpha=spec.get("alpha", spec["r"]), use_rslora=spec.get("rslora", False),
                      target_modules=list(spec["targets"]) if not isinstance(spec["targets"], str) else spec["targets"],
                      lora_dropout=spec.get("dropout", 0.0), init_lora_weights=peft_init, task_type=task_type,
                      bias="none")


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The LoRA layers of a PEFT model, by their module name in the base model."""
    from peft.tuners.lora import LoraLayer

    return {name.removeprefix(PEFT_PREFIX): m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def peft_init_of(spec: Mapping[str, Any]) -> bool | str:
    """What `get_peft_model` should build before the registry's re-init (PEFT's own for PiSSA/OLoRA)."""
    peft_init = PEFT_INITS[spec.get("init", "default")].peft_init
    niter = (spec.get("init_options") or {}).get("niter")
    return f"pissa_niter_{niter}" if peft_init == "pissa" and niter else peft_init


def init_lora_layers(peft_model: nn.Module, spec: Mapping[str, Any], *, adapter_name: str = "default",
                     grads: Mapping[str, torch.Tensor] | None = None, generator: torch.Generator) -> list[str]:
    """Apply the init `spec["init"]` to adapter `adapter_name` of every LoRA layer, in place.

    `grads` maps each layer's name (in the base model) to ∇_W L at W₀, for gradient-based inits.
    Returns the parameter names of the base weights the init moved (PiSSA, OLoRA, LoRA-GA).
    """
    method = PEFT_INITS[spec.get("init", "default")]
    options = dict(spec.get("init_options") or {})
    moved = []
    for name, layer in lora_layers(peft_model).items():
        if method.moves_base:
            moved.append(f"{PEFT_PREFIX}{name}.base_layer.weight")
        if method.reinit is None:
            continue
        base = layer.get_base_layer()
        grad = None if grads is None else grads.get(name)
        if method.needs_gradient and grad is None:
            raise ValueError(f"init {spec['init']!r} needs the gradient of {name}")
        ctx = LayerContext(name, working_precision(base.weight.detach()), grad, layer.r[adapter_name],
                           layer.scaling[adapter_name], generator, options)
        factors = method.reinit(ctx)
        with torch.no_grad():
            layer.lora_A[adapter_name].weight.copy_(factors.A)
            layer.lora_B[adapter_name].weight.copy_(factors.B)
            if factors.weight is not None:
                base.weight.copy_(factors.weight)
    return moved


def build_lora(model: nn.Module, spec: Mapping[str, Any], *, grads: Mapping[str, torch.Tensor] | None = None,
               generator: torch.Generator, task_type: str | None = None, adapter_name: str = "default"):
    """Wrap `model` with PEFT LoRA and initialise it; returns (peft_model, names of moved base weights)."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(spec, peft_init_of(spec), task_type), adapter_name=adapter_name)
    return peft_model, init_lora_layers(peft_model, spec, adapter_name=adapter_name, grads=grads, generator=generator)
