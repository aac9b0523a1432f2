"""Put the adapter an adapter block names on a pretrained model:

    {init: lora_one, r: 8, alpha: 16, rslora: true, targets: [query, value], dropout: 0.0,
     init_options: {scale: 128}, train_modules: [head],
     gradient: {examples: 8, batch_size: 1, select: first, train_mode: false}}

Inits hosted by PEFT (see peft_adapters) and the factored adapters (Deep LoRA, LoRA-SB; see
deep_adapter) are built the same way; gradient-based inits take ∇_W L(W₀) on `init_batches`
before the adapter exists, so they see the pretrained model exactly. Only the adapter (and the
modules listed in `train_modules`, e.g. a new head) is trainable afterwards.

`init_options` per init: gaussian {std}; pissa {niter}; lora_ga {gamma, svd}; lora_one {scale, svd,
oversample, niter}; spectral {gamma}; nora {xi, released_code}; lora_sb {scale};
deep {depth, eps, width: full | <int>, compressed}; prefix {num_virtual_tokens, init_from}. `gradient`
says which training examples the gradient-based inits read (see train/run.py) and whether dropout is
on while they do.

`prefix` is prefix tuning of a causal LM rather than a LoRA init (see prefix): it adapts no linear
layer, so `r`, `alpha` and `targets` do not apply to it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from lorarepro.adapters.deep_adapter import build_factored, factored_layers
from lorarepro.adapters.gradient import target_linears, weight_gradients
from lorarepro.adapters.peft_adapters import PEFT_INITS, build_lora, lora_layers
from lorarepro.adapters.prefix import build_prefix

FACTORED = ("deep", "lora_sb")
PROMPT_LEARNING = ("prefix",)
INITS = tuple(sorted(PEFT_INITS)) + FACTORED + PROMPT_LEARNING


@dataclass
class AdapterInfo:
    init: str
    targets: list[str]
    trainable_params: int
    init_s: float  # wall time of the init: gradient, factorisations, writing the factors
    moved_base: list[str] = field(default_factory=list)  # base weights the init changed (checkpointed)


def set_trainable(model: nn.Module, modules: Sequence[str]) -> None:
    """Make every parameter under a module named in `modules` (a name component, e.g. "head") trainable."""
    for name in modules:
        pattern = re.compile(rf"(^|\.){re.escape(name)}\.")
        hits = [p for n, p in model.named_parameters() if pattern.search(n)]
        if not hits:
            raise ValueError(f"train_modules: no parameters under a module named {name!r}")
        for p in hits:
            p.requires_grad_(True)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _sync(model: nn.Module) -> None:
    param = next(model.parameters())
    if param.is_cuda:
        torch.cuda.synchronize(param.device)


def build_adapter(model: nn.Module, spec: Mapping[str, Any], *, seed: int,
                  loss_fn: Callable[[nn.Module, Mapping], torch.Tensor] | None = None,
                  init_batches: Sequence[Mapping] = (), task_type: str | None = None):
    """Attach and initialise the adapter of `spec`; returns (model, AdapterInfo).

    The init's random draws come from a generator seeded with `seed`, on the CPU, so they are the
    same on every device.
    """
    init = spec.get("init", "default")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed values are {list(INITS)}")
    generator = torch.Generator().manual_seed(seed)
    targets = {} if init in PROMPT_LEARNING else target_linears(model, spec["targets"])
    grad_options = {"train_mode": bool((spec.get("gradient") or {}).get("train_mode", False))}

    def gradients(m: nn.Module, params: Mapping[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        if loss_fn is None:
            raise ValueError(f"init {init!r} needs a loss and training batches for its gradient")
        return weight_gradients(m, params, init_batches, loss_fn, **grad_options)

    _sync(model)
    start = time.perf_counter()
    moved: list[str] = []
    if init in PROMPT_LEARNING:
        model = build_prefix(model, spec, generator=generator, task_type=task_type)
    elif init in FACTORED:
        model = build_factored(model, targets, spec, generator=generator, gradients=gradients)
    else:
        grads = gradients(model, {n: m.weight for n, m in targets.items()}) if PEFT_INITS[init].needs_gradient else None
        model, moved = build_lora(model, spec, grads=grads, generator=generator, task_type=task_type)
    _sync(model)
    init_s = time.perf_counter() - start
    set_trainable(model, spec.get("train_modules") or [])
    return model, AdapterInfo(init, sorted(targets), count_trainable(model), init_s, moved)


@torch.no_grad()
def delta_weights(model: nn.Module, adapter_name: str = "default",
                  dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The learned update ΔW (out×in, multiplied out in `dtype`) of every adapted layer, by its module name
    in the base model: scaling·B·A for PEFT LoRA, the factor product for factored adapters (Deep LoRA,
    LoRA-SB)."""
    out = {name: layer.delta_weight(dtype) for name, layer in factored_layers(model).items()}
    for name, layer in lora_layers(model).items():
        a, b = layer.lora_A[adapter_name].weight, layer.lora_B[adapter_name].weight
        out[name] = layer.scaling[adapter_name] * (b.to(dtype) @ a.to(dtype))
    return out
