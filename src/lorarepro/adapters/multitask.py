"""Meta-LoRA retraining: one LoRA adapter per task over a shared, trainable base (PEFT multi-adapter).

PEFT keeps every task's adapter in the same layers under its own name (`task_0`, `task_1`, ...);
`set_adapter(name)` routes the forward pass through one of them, so a task's batch trains that task's
adapter and, through it, the shared base weights. After retraining, `unload()` returns the base model
(without the retraining adapters) for fine-tuning on the unseen task.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from lorarepro.adapters.peft_adapters import PEFT_INITS, init_lora_layers, lora_config, peft_init_of


def task_adapter_names(n_tasks: int) -> list[str]:
    return [f"task_{t}" for t in range(n_tasks)]


def build_task_adapters(model: nn.Module, spec: Mapping[str, Any], names: Sequence[str], *, seed: int,
                        train_base: bool = True, task_type: str | None = None) -> nn.Module:
    """A PEFT model with one adapter per name, each initialised by `spec["init"]` from its own seed
    (seed + its index); with `train_base` every base parameter trains too (the paper's LoRA-ML)."""
    from peft import get_peft_model

    if PEFT_INITS[spec.get("init", "default")].needs_gradient or PEFT_INITS[spec.get("init", "default")].moves_base:
        raise ValueError("per-task adapters need an init that neither reads a gradient nor moves the shared base")
    config = lora_config(spec, peft_init_of(spec), task_type)
    peft_model = get_peft_model(model, config, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, config)
    for t, name in enumerate(names):
        init_lora_layers(peft_model, spec, adapter_name=name, generator=torch.Generator().manual_seed(seed + t))
    if train_base:
        for param_name, param in peft_model.named_parameters():
            if "lora_" not in param_name:
                param.requires_grad_(True)
    return peft_model


def adapter_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The parameters of one task's adapter."""
    return [p for n, p in model.named_parameters() if "lora_" in n and n.endswith(f".{name}.weight")]


def base_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if "lora_" not in n and p.requires_grad]
