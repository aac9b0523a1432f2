"""Adapt only the top layers of a model, and compute an encoder's frozen lower layers once per example.

`top_layer_targets` restricts an adapter's target modules to the last `k` layers of any
transformer (encoder or decoder): backward passes then stop at the lowest adapted layer. When an adapter touches only the top `k` of an encoder's L layers, the embeddings and the lower
L − k layers are a fixed function of the input ids. `cache_lower_layers` runs them once over every
example a job will see (in eval mode, in fixed length-sorted batches, so the cached values do not
depend on which run asks first), keeps each example's hidden states, and puts a lookup in place of
the embedding module; the encoder keeps only its top layers. The model still takes `input_ids`, so
objectives, inits (gradient ones included) and the training loop are unchanged, and every run of
the job shares the cache: per step, only the top layers run forward and backward.

The lower layers see no dropout (they run once, in eval mode): the one way a cached run differs
from adapting the top layers of the full model in train mode. Encoders with an `embeddings` module
and an `encoder.layer` list (BERT, RoBERTa, MiniLM) are supported.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from lorarepro.adapters.gradient import target_linears
from lorarepro.data.tasks import collate, eval_batches


def layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer's list of layers (`encoder.layer` in BERT, `model.layers` in LLaMA) and its name."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rpartition(".")[2] in ("layer", "layers", "h"):
            return name, module
    raise ValueError(f"{type(model).__name__} has no list of transformer layers (layer/layers/h)")


def top_layer_targets(model: nn.Module, targets: str | Sequence[str], adapt_top: int) -> list[str]:
    """The full names of the modules `targets` selects that lie in the last `adapt_top` layers."""
    name, layers = layer_stack(model)
    if not 1 <= adapt_top <= len(layers):
        raise ValueError(f"adapt_top={adapt_top} must be between 1 and the model's {len(layers)} layers")
    top = tuple(f"{name}.{i}." for i in range(len(layers) - adapt_top, len(layers)))
    return [n for n in target_linears(model, targets) if n.startswith(top)]


def find_encoder(model: nn.Module) -> nn.Module:
    """The transformer inside a model: the first module with `embeddings` and an `encoder.layer` list."""
    for module in model.modules():
        layers = getattr(getattr(module, "encoder", None), "layer", None)
        if hasattr(module, "embeddings") and isinstance(layers, nn.ModuleList):
            return module
    raise ValueError(f"{type(model).__name__} has no encoder with `embeddings` and `encoder.layer`; "
                     "cached lower layers need a BERT-style encoder")


def _key(ids: torch.Tensor) -> bytes:
    return ids.to(torch.int64).cpu().numpy().tobytes()


class CachedPrefix(nn.Module):
    """In place of an encoder's embeddings: each row's hidden states after the frozen lower layers,
    looked up by its token ids (the padding stripped by the attention mask's length), zero-padded."""

    def __init__(self, cache: Mapping[bytes, torch.Tensor], pad_id: int):
        super().__init__()
        self.cache, self.pad_id = cache, pad_id

    def __deepcopy__(self, memo):
        # Every run's copy of the model reads the one cache.
        return CachedPrefix(self.cache, self.pad_id)

    def forward(self, input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        lengths = _lengths(input_ids, self.pad_id)
        rows = [self.cache[_key(ids[:n])] for ids, n in zip(input_ids, lengths.tolist())]
        return nn.utils.rnn.pad_sequence(rows, batch_first=True).to(input_ids.device)


def _lengths(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Real tokens per right-padded row: the position after its last non-pad token."""
    real = (input_ids != pad_id).to(torch.int64)
    positions = torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)
    return (real * positions).amax(dim=1)


@torch.no_grad()
def lower_hidden_states(encoder: nn.Module, examples: Iterable[Mapping[str, Any]], pad_id: int, n_lower: int,
                        batch_size: int = 64) -> dict[bytes, torch.Tensor]:
    """Hidden states after the embeddings and the first `n_lower` layers of every example, by token ids."""
    layers = encoder.encoder.layer
    was_training = encoder.training
    encoder.eval()
    encoder.encoder.layer = layers[:n_lower]
    cache: dict[bytes, torch.Tensor] = {}
    try:
        unique = list({_key(torch.tensor(e["input_ids"])): e for e in examples}.values())
        device = next(encoder.parameters()).device
        for chunk in eval_batches(unique, batch_size):
            batch = collate(chunk, pad_id)
            inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            hidden = encoder(**inputs).last_hidden_state
            for example, states, n in zip(chunk, hidden, batch["attention_mask"].sum(1).tolist()):
                cache[_key(torch.tensor(example["input_ids"]))] = states[:n].clone()
    finally:
        encoder.encoder.layer = layers
        encoder.train(was_training)
    return cache


def cache_lower_layers(model: nn.Module, examples: Sequence[Mapping[str, Any]], *, adapt_top: int, pad_id: int,
                       batch_size: int = 64) -> nn.Module:
    """Keep only the top `adapt_top` layers of `model`'s encoder, fed from cached lower-layer states
    of `examples` (every example the job will train or evaluate on). Returns the model, changed in place."""
    encoder = find_encoder(model)
    layers = encoder.encoder.layer
    if not 1 <= adapt_top <= len(layers):
        raise ValueError(f"adapt_top={adapt_top} must be between 1 and the {len(layers)} layers of the encoder")
    if any(e["input_ids"][-1] == pad_id for e in examples):
        raise ValueError("an example ends in the pad token, so its length cannot be read from its ids")
    cache = lower_hidden_states(encoder, examples, pad_id, len(layers) - adapt_top, batch_size)
    encoder.embeddings = CachedPrefix(cache, pad_id)
    encoder.encoder.layer = layers[len(layers) - adapt_top:]
    return model
