"""Load a pretrained model and its tokenizer for fine-tuning, from a materialised folder or the hub.

A model is named either by a folder, by a catalogue name (`minilm_l6` -> `resources/models/minilm_l6`,
falling back to its hub id when that folder was never built), or by a hub id. Weights are read from
safetensors only. Three model shapes cover the papers' experiments:

- `encoder` + `head: mean_pool`: a bare encoder (BERT, RoBERTa, ...) with a linear head on the
  attention-masked mean of its last hidden states. MiniLM-L6 was trained as a mean-pooled sentence
  encoder, so this head learns much faster than one on the (untrained) CLS pooler.
- `encoder` + `head: native`: `AutoModelForSequenceClassification` (the papers' BERT/RoBERTa heads).
- `encoder` + `head: cosine`: a bi-encoder for sentence pairs (task `pair_encoding: bi`): the cosine of
  the two sentences' mean-pooled embeddings, with no parameters of its own. It is the zero-shot
  similarity model MiniLM was trained as, a stand-in where a new head cannot be learnt from few pairs.
- `causal_lm` / `seq2seq_lm`: decoders (SmolLM2, LLaMA, OPT) and encoder-decoders (T5).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from lorarepro.data.assets import AssetError
from lorarepro.models.catalog import MODELS
from lorarepro.models.materialize import verify_model

MODELS_ROOT = Path("resources/models")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
KINDS = ("encoder", "causal_lm", "seq2seq_lm", "masked_lm")


@functools.lru_cache(maxsize=None)
def _verified(folder: str) -> str:
    return str(verify_model(folder))


def resolve_model(name: str, models_root: str | os.PathLike = MODELS_ROOT) -> str:
    """A loadable location for `name`: a folder, a materialised catalogue model (checked against its
    manifest once per process), or a hub id."""
    if Path(name).is_dir():
        return str(Path(name))
    folder = Path(models_root) / name
    if folder.is_dir():
        return _verified(str(folder))
    if name in MODELS:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise AssetError(f"model {name!r} is not materialised and the hub is offline: "
                             f"build it with `snakemake {folder}`")
        return MODELS[name].hub_id
    return name


def load_tokenizer(location: str):
    """The model's tokenizer, with a pad token (decoders often lack one: their EOS serves) and right padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the hidden states over the real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class MeanPooledHead(nn.Module):
    """An encoder with a linear head on the masked mean of its last hidden states.

    Returns a `SequenceClassifierOutput` like the native heads, so objectives treat both alike.
    `num_labels=1` is a regression head.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.reset_head()

    def reset_head(self) -> None:
        """A fresh head from torch's global generator (a job that trains many runs on one loaded
        encoder gives each run its own seeded head)."""
        nn.init.normal_(self.head.weight, std=getattr(self.config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, token_type_ids=None, **kwargs) -> SequenceClassifierOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra, **kwargs).last_hidden_state
        return SequenceClassifierOutput(logits=self.head(self.dropout(mean_pool(hidden, attention_mask))))


class CosinePairHead(nn.Module):
    """A bi-encoder: each sentence of a pair is encoded alone and the output (one regression value) is the
    cosine of their mean-pooled embeddings. No parameters besides the encoder's."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config

    def embed(self, input_ids, attention_mask) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids, attention_mask, input_ids_b, attention_mask_b, **kwargs) -> SequenceClassifierOutput:
        first, second = self.embed(input_ids, attention_mask), self.embed(input_ids_b, attention_mask_b)
        return SequenceClassifierOutput(logits=nn.functional.cosine_similarity(first, second, dim=-1).unsqueeze(-1))


def load_model(spec: Mapping[str, Any], *, num_labels: int | None = None, pad_token_id: int | None = None,
               models_root: str | os.PathLike = MODELS_ROOT) -> nn.Module:
    """The pretrained model of a model block of the run parameters:

    `{name, kind: encoder|causal_lm|seq2seq_lm|masked_lm, head: mean_pool|native|cosine, dtype, head_dropout,
    attn_implementation, num_layers}`; encoders get a head with `num_labels` outputs (1 = regression).
    `num_layers` keeps only the first blocks of the pretrained model (smoke tests of the plumbing).
    `weights` is a state dict file (e.g. a retrained base) loaded over the pretrained weights.
    """
    model = _pretrained(spec, num_labels=num_labels, pad_token_id=pad_token_id, models_root=models_root)
    if spec.get("weights"):
        model.load_state_dict(torch.load(spec["weights"], map_location="cpu", weights_only=True))
    return model


def _pretrained(spec: Mapping[str, Any], *, num_labels: int | None, pad_token_id: int | None,
                models_root: str | os.PathLike) -> nn.Module:
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification)

    kind = spec.get("kind", "encoder")
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; allowed values are {list(KINDS)}")
    location = resolve_model(spec["name"], models_root)
    dtype = DTYPES[spec.get("dtype", "float32")]
    common: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
    if spec.get("attn_implementation"):
        common["attn_implementation"] = spec["attn_implementation"]
    if spec.get("num_layers"):
        common["num_hidden_layers"] = int(spec["num_layers"])
    if kind == "encoder" and spec.get("head", "mean_pool") in ("mean_pool", "cosine"):
        encoder = AutoModel.from_pretrained(location, add_pooling_layer=False, **common)
        if spec.get("head") == "cosine":
            return CosinePairHead(encoder).to(dtype)
        return MeanPooledHead(encoder, num_labels, spec.get("head_dropout", 0.0)).to(dtype)
    if kind == "encoder":
        model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=num_labels, **common)
    else:
        loader = {"causal_lm": AutoModelForCausalLM, "seq2seq_lm": AutoModelForSeq2SeqLM,
                  "masked_lm": AutoModelForMaskedLM}[kind]
        model = loader.from_pretrained(location, **common)
    if pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_token_id
    return model
