"""Prefix tuning (Li & Liang, 2021) on PEFT, as MeZO runs it for a decoder: `num_virtual_tokens` trainable
key/value pairs per layer that every real token attends to, without the MLP reparametrisation, and
initialised from real activations (MeZO's `prefix_init_by_real_act`): the keys and values the
pretrained model computes for `num_virtual_tokens` token ids drawn uniformly from its vocabulary.

PEFT keeps the prefix as one embedding of shape [virtual tokens, layers·2·kv_heads·head_dim]; its row t
holds, layer by layer, the key then the value of virtual token t over the key/value heads (which
`_prepare_prompt_learning_config` sizes from `num_key_value_heads`, so grouped-query attention is
covered). PEFT extends the attention mask by the prefix and shifts given position ids past it, so the
real tokens sit at positions num_virtual_tokens.. as they did when the init's activations were taken.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

INIT_FROM = ("real_activations", "random")


def prefix_config(options: Mapping[str, Any], task_type: str | None):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=int(options.get("num_virtual_tokens", 5)),
                              prefix_projection=False)


def prefix_embedding(peft_model: nn.Module, adapter_name: str = "default") -> nn.Parameter:
    """The trainable prefix: [virtual tokens, layers·2·kv_heads·head_dim]."""
    return peft_model.prompt_encoder[adapter_name].embedding.weight


@torch.no_grad()
def real_activations(model: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
    """Keys and values of `n` random vocabulary tokens run through `model` (the base, without prefix),
    in PEFT's prefix layout: [n, layers·2·kv_heads·head_dim]."""
    device = next(model.parameters()).device
    ids = torch.randint(model.config.vocab_size, (1, n), generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        cache = model(input_ids=ids, use_cache=True).past_key_values
    finally:
        model.train(was_training)
    per_layer = [kv for layer in cache.layers for kv in (layer.keys, layer.values)]  # each [1, heads, n, head_dim]
    stacked = torch.stack([kv[0] for kv in per_layer])  # [layers·2, heads, n, head_dim]
    return stacked.permute(2, 0, 1, 3).reshape(n, -1)


def build_prefix(model: nn.Module, spec: Mapping[str, Any], *, generator: torch.Generator,
                 task_type: str | None = None, adapter_name: str = "default") -> nn.Module:
    """Wrap a causal LM with PEFT prefix tuning (`init_options`: num_virtual_tokens (5), init_from:
    real_activations (MeZO) or random (PEFT's N(0, 1) embedding)); only the prefix is trainable."""
    from peft import get_peft_model

    if task_type != "CAUSAL_LM":
        raise ValueError(f"prefix tuning is built for causal language models, not {task_type!r}")
    options = dict(spec.get("init_options") or {})
    init_from = options.get("init_from", "real_activations")
    if init_from not in INIT_FROM:
        raise ValueError(f"unknown init_from {init_from!r}; allowed values are {list(INIT_FROM)}")
    config = prefix_config(options, task_type)
    initial = real_activations(model, config.num_virtual_tokens, generator) if init_from == "real_activations" else None
    peft_model = get_peft_model(model, config, adapter_name=adapter_name)
    if initial is not None:
        weight = prefix_embedding(peft_model, adapter_name)
        with torch.no_grad():
            weight.copy_(initial.to(weight.dtype))
    return peft_model
