"""Tiny stand-ins for the engine tests: a word-level tokenizer, BERT and LLaMA models of width 32 built
from config, and small materialised data sets in the project's layout, so every test runs in seconds
without the bundled assets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lorarepro.data.materialize import MANIFEST, sha256

WORDS = ("good great fine nice bad awful poor dull movie film plot actor scene it was is a the very not "
         "really quite story fun boring review positive negative answer paraphrase sentiment").split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "</s>"]
POSITIVE, NEGATIVE = WORDS[:4], WORDS[4:8]


def tokenizer(folder: Path):
    """A word-level tokenizer with BERT-style pair templates, saved to `folder` and loaded back."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS + [":", ".", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", eos_token="</s>")
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def bert_folder(root: Path, seed: int = 0, dropout: float = 0.1) -> Path:
    from transformers import BertConfig, BertModel

    folder = root / f"tiny_bert_{dropout}"
    torch.manual_seed(seed)
    tok = tokenizer(folder)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def llama_folder(root: Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = root / "tiny_llama"
    torch.manual_seed(seed)
    tok = tokenizer(folder)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def write_dataset(folder: Path, splits: dict[str, pd.DataFrame]) -> Path:
    """A data set folder with a manifest, as `lorarepro.data.materialize` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"name": folder.name, "splits": {}}
    for split, frame in splits.items():
        path = folder / f"{split}.parquet"
        frame.to_parquet(path, index=False)
        manifest["splits"][split] = {"file": path.name, "rows": len(frame), "sha256": sha256(path)}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def sentiment(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Reviews whose label is whether their adjective is a positive one (0-2 intensifiers vary the length)."""
    labels = rng.integers(0, 2, n)
    texts = [" ".join(["the", str(rng.choice(["movie", "film", "plot"])), "was"] + ["very"] * int(rng.integers(0, 3))
                      + [str(rng.choice(POSITIVE if y else NEGATIVE))]) for y in labels]
    return pd.DataFrame({"text": texts, "label": labels.astype(np.int64)})


def similarity(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Sentence pairs scored by how many words they share (0-3)."""
    rows = []
    for _ in range(n):
        a = list(rng.choice(WORDS[:12], 3, replace=False))
        k = int(rng.integers(0, 4))
        b = a[:k] + list(rng.choice(WORDS[12:24], 3 - k, replace=False))
        rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b), "label": float(k)})
    return pd.DataFrame(rows)


def datasets(root: Path, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    return {
        "sentiment": write_dataset(root / "sentiment", {"train": sentiment(64, rng), "validation": sentiment(32, rng)}),
        "similarity": write_dataset(root / "similarity", {"train": similarity(64, rng),
                                                          "validation": similarity(32, rng)}),
    }
