"""Turn a materialised data set into model inputs: token ids, labels, prompts and label words.

A task block of the run parameters names the data set and how to read it:

    {dataset: stsb, kind: regression, max_length: 64, train_size: 1024, eval_split: validation}
    {dataset: rotten_tomatoes, kind: prompted, template: "Review: {text}\\nSentiment:",
     label_words: [" negative", " positive"]}
    {dataset: stsb_paraphrase, kind: generation, where: "label == 1", template: "{sentence1}\\nParaphrase:",
     target: " {sentence2}"}

Kinds: `regression` and `classification` feed an encoder with a head (pairs are encoded as one
`s1 [SEP] s2` input); `prompted` scores each label word's log-likelihood after a prompt (causal LM:
after the last prompt token; masked LM: at the `{mask}` slot; seq2seq: as the decoder's output);
`generation` trains on a prompt -> target continuation and scores greedy generations.

Examples are plain dicts of Python lists; `collate` pads a list of them into tensors. Evaluation
batches are sorted by length (about twice as fast as shuffled batches on a CPU), and carry each
example's position so predictions return in data-set order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from lorarepro.data.materialize import load_split

KINDS = ("regression", "classification", "prompted", "generation")
DEFAULT_METRICS = {"regression": ["pearson", "spearman"], "classification": ["accuracy", "f1"],
                   "prompted": ["accuracy", "f1"], "generation": ["exact_match", "bleu", "rouge_l"]}
# Causal-LM continuations are tokenised after this probe, so a leading space is read as it would be mid-text.
_PROBE = "Answer:"


@dataclass
class TaskData:
    """A task ready for a model: encoded train and evaluation examples and how to score them."""

    kind: str
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    metrics: list[str]
    pad_id: int
    num_labels: int | None = None
    candidates: list[list[int]] | None = None  # prompted: token ids of each label word
    label_mean: float = 0.0  # regression targets are trained standardised; predictions are mapped back
    label_std: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def _rows(folder: Path, split: str, spec: Mapping[str, Any], size: int | None, seed: int):
    frame = load_split(folder, split)
    if spec.get("where"):
        frame = frame.query(spec["where"]).reset_index(drop=True)
    if size is not None and size < len(frame):
        frame = frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), size, replace=False))]
    return frame.reset_index(drop=True)


def continuation_ids(tokenizer, text: str) -> list[int]:
    """Token ids of `text` as it continues a prompt (the same ids a tokenizer gives mid-sequence)."""
    probe = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    both = tokenizer(_PROBE + text, add_special_tokens=False)["input_ids"]
    if both[: len(probe)] != probe:
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return both[len(probe):]


def _prompt_ids(tokenizer, prompt: str, max_length: int) -> list[int]:
    """Prompt ids, cut from the left when too long so that the question at its end survives."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if len(ids) > max_length:
        keep_bos = ids[:1] if tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id else []
        ids = keep_bos + ids[len(ids) - max_length + len(keep_bos):]
    return ids


def _encode_encoder(frame, tokenizer, spec) -> list[dict[str, Any]]:
    pair = "sentence1" in frame.columns
    first = frame["sentence1" if pair else spec.get("text_field", "text")].astype(str).tolist()
    second = frame["sentence2"].astype(str).tolist() if pair else None
    enc = tokenizer(first, second, truncation=True, max_length=spec.get("max_length", 128))
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{**{k: enc[k][i] for k in keys}, "label": frame["label"].iloc[i].item()} for i in range(len(frame))]


def _encode_prompted(frame, tokenizer, spec, model_kind: str) -> list[dict[str, Any]]:
    template, max_length = spec["template"], spec.get("max_length", 256)
    out = []
    for row in frame.to_dict("records"):
        if model_kind == "masked_lm":
            prompt = template.format(**row, mask=tokenizer.mask_token)
            ids = tokenizer(prompt, truncation=True, max_length=max_length)["input_ids"]
            if tokenizer.mask_token_id not in ids:
                raise ValueError(f"the prompt lost its mask slot to truncation: raise max_length above {max_length}")
            out.append({"input_ids": ids, "label": int(row["label"])})
        elif model_kind == "seq2seq_lm":
            out.append({"input_ids": tokenizer(template.format(**row), truncation=True, max_length=max_length)["input_ids"],
                        "label": int(row["label"])})
        else:
            out.append({"input_ids": _prompt_ids(tokenizer, template.format(**row), max_length), "label": int(row["label"])})
    return out


def _encode_generation(frame, tokenizer, spec, model_kind: str) -> list[dict[str, Any]]:
    max_target = spec.get("max_target_length", 64)
    max_prompt = spec.get("max_length", 256) - (0 if model_kind == "seq2seq_lm" else max_target)
    out = []
    for row in frame.to_dict("records"):
        target_text = spec["target"].format(**row)
        if model_kind == "seq2seq_lm":
            prompt = tokenizer(spec["template"].format(**row), truncation=True, max_length=max_prompt)["input_ids"]
            target = tokenizer(text_target=target_text.strip(), truncation=True, max_length=max_target)["input_ids"]
            out.append({"input_ids": prompt, "labels": target, "reference": target_text.strip()})
            continue
        prompt = _prompt_ids(tokenizer, spec["template"].format(**row), max_prompt)
        target = continuation_ids(tokenizer, target_text)[: max_target - 1] + [tokenizer.eos_token_id]
        out.append({"input_ids": prompt + target, "labels": [-100] * len(prompt) + target,
                    "prompt_length": len(prompt), "reference": target_text.strip()})
    return out


def _candidates(tokenizer, words: Sequence[str], model_kind: str) -> list[list[int]]:
    if model_kind == "seq2seq_lm":
        return [tokenizer(text_target=w.strip())["input_ids"] for w in words]
    if model_kind == "masked_lm":
        ids = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"masked-LM label words must be single tokens; {list(words)} give {ids}")
        return ids
    return [continuation_ids(tokenizer, w) for w in words]


def load_task(spec: Mapping[str, Any], tokenizer, *, model_kind: str = "encoder", seed: int = 0,
              data_root: str | os.PathLike = "resources/data") -> TaskData:
    """Read, select and encode a data set as the task block `spec` says.

    `train_size`/`eval_size` take a random subset (seeded by `subset_seed`, default `seed`), e.g.
    the few-shot training sets of Deep LoRA; the evaluation subset does not depend on the run seed.
    """
    kind = spec["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; allowed values are {list(KINDS)}")
    folder = Path(spec["dataset"]) if Path(spec["dataset"]).is_dir() else Path(data_root) / spec["dataset"]
    subset_seed = spec.get("subset_seed", seed)
    train = _rows(folder, spec.get("train_split", "train"), spec, spec.get("train_size"), subset_seed)
    evaluation = _rows(folder, spec.get("eval_split", "validation"), spec, spec.get("eval_size"), spec.get("eval_seed", 0))
    metrics = list(spec.get("metrics") or DEFAULT_METRICS[kind])
    pad = tokenizer.pad_token_id
    info = {"train_examples": len(train), "eval_examples": len(evaluation), "dataset": str(folder)}
    if kind in ("regression", "classification"):
        data = TaskData(kind, _encode_encoder(train, tokenizer, spec), _encode_encoder(evaluation, tokenizer, spec),
                        metrics, pad, info=info)
        if kind == "regression":
            data.num_labels = 1
            if spec.get("standardize", True):
                labels = train["label"].to_numpy(np.float64)
                data.label_mean, data.label_std = float(labels.mean()), float(labels.std() or 1.0)
        else:
            data.num_labels = int(spec.get("num_labels") or max(train["label"].max(), evaluation["label"].max()) + 1)
        return data
    if kind == "prompted":
        words = spec["label_words"]
        return TaskData(kind, _encode_prompted(train, tokenizer, spec, model_kind),
                        _encode_prompted(evaluation, tokenizer, spec, model_kind), metrics, pad,
                        num_labels=len(words), candidates=_candidates(tokenizer, words, model_kind), info=info)
    return TaskData(kind, _encode_generation(train, tokenizer, spec, model_kind),
                    _encode_generation(evaluation, tokenizer, spec, model_kind), metrics, pad, info=info)


def _pad(rows: Sequence[list[int]], value: int, side: str) -> torch.Tensor:
    width = max(len(r) for r in rows)
    if side == "left":
        return torch.tensor([[value] * (width - len(r)) + r for r in rows])
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def collate(examples: Sequence[Mapping[str, Any]], pad_id: int, side: str = "right") -> dict[str, Any]:
    """Pad a list of examples into tensors; `attention_mask` marks the real tokens.

    Decoders read their next-token prediction at the last position when prompts are left-padded
    (`side="left"`; give them position ids from the mask). Labels are always right-padded with -100.
    """
    ids = [list(e["input_ids"]) for e in examples]
    batch: dict[str, Any] = {"input_ids": _pad(ids, pad_id, side),
                             "attention_mask": _pad([[1] * len(r) for r in ids], 0, side)}
    if "token_type_ids" in examples[0]:
        batch["token_type_ids"] = _pad([list(e["token_type_ids"]) for e in examples], 0, side)
    if "labels" in examples[0]:
        batch["labels"] = _pad([list(e["labels"]) for e in examples], -100, "right")
    for key in ("label", "prompt_length", "index"):
        if key in examples[0]:
            batch[key] = torch.tensor([e[key] for e in examples])
    if "reference" in examples[0]:
        batch["reference"] = [e["reference"] for e in examples]
    return batch


class BatchSampler:
    """Endless training batches of example indices: seeded permutations, one epoch after another.

    A batch may straddle two epochs, so every batch has `min(n, batch_size)` examples. The state
    (generator and the rest of the current epoch) goes into checkpoints, so a resumed run sees the
    same batches as an uninterrupted one.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, min(n, batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.pending: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        return self

    def __next__(self) -> list[int]:
        while len(self.pending) < self.batch_size:
            self.pending += torch.randperm(self.n, generator=self.generator).tolist()
        batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size:]
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "pending": list(self.pending)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.pending = list(state["pending"])


def eval_batches(examples: Sequence[Mapping[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Examples sorted by length (longest first) in batches; each carries its `index` in `examples`."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    tagged = [{**examples[i], "index": i} for i in order]
    return [tagged[i: i + batch_size] for i in range(0, len(tagged), batch_size)]
