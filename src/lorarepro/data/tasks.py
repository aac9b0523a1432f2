"""Turn a materialised data set into model inputs: token ids, labels, prompts and label words.

A task block of the run parameters names the data set and how to read it:

    {dataset: stsb, kind: regression, max_length: 64, train_size: 1024, eval_split: validation}
    {dataset: rotten_tomatoes, kind: prompted, template: "Review: {text}\\nSentiment:",
     label_words: [" negative", " positive"]}
    {dataset: stsb_paraphrase, kind: generation, where: "label == 1", template: "{sentence1}\\nParaphrase:",
     target: " {sentence2}"}
    {dataset: stsb, kind: selection, where: "source == 'MSRpar'", answer_where: "label >= 4", candidates: 5,
     train_size: 16, eval_split: rest}
    {dataset: record, kind: cloze, template: "{passage}\\n-", option: " {query}", placeholder: "@placeholder"}
    {dataset: squad, kind: generation, template: "…Answer:", target: " {answer}", references: answers}

Kinds: `regression` and `classification` feed an encoder with a head (pairs are encoded as one
`s1 [SEP] s2` input, or, with `pair_encoding: bi`, each sentence alone for a bi-encoder head; a
`label_scale` then trains regression on label/label_scale instead of standardised labels, e.g. 5 for
STS-B against a cosine); `prompted` scores each label word's log-likelihood after a prompt (causal LM:
after the last prompt token; masked LM: at the `{mask}` slot; seq2seq: as the decoder's output);
`generation` trains on a prompt -> target continuation and scores greedy generations;
`selection` picks the true `sentence2` of a pair among `candidates` sentences (ConvAI2's next-utterance
selection on sentence pairs): an encoder with a one-output head scores every `sentence1 [SEP] candidate`
input, trained by cross-entropy over the candidates (see `selection_examples`);
`cloze` is `prompted` with candidates of its own per example (ReCoRD's entities, column `candidates`):
each candidate continues the prompt as `option`, with the candidate as `{candidate}` or in place of
the `placeholder` text; every answer (column `answers`) is one of them (see `_encode_cloze`).
A generation task's `references` names a column of acceptable answers (SQuAD's annotations): the
metrics then compare a prediction with each of them.

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
import pandas as pd
import torch

from lorarepro.data.materialize import load_split

KINDS = ("regression", "classification", "prompted", "generation", "selection", "cloze")
DEFAULT_METRICS = {"regression": ["pearson", "spearman"], "classification": ["accuracy", "f1"],
                   "prompted": ["accuracy", "f1"], "generation": ["exact_match", "bleu", "rouge_l"], "selection": ["accuracy"],
                   "cloze": ["accuracy"]}
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
    if pair and spec.get("pair_encoding", "cross") == "bi":
        a, b = (tokenizer(texts, truncation=True, max_length=spec.get("max_length", 128))["input_ids"]
                for texts in (first, second))
        return [{"input_ids": a[i], "input_ids_b": b[i], "label": frame["label"].iloc[i].item()}
                for i in range(len(frame))]
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
        reference = [str(a).strip() for a in row[spec["references"]]] if spec.get("references") else target_text.strip()
        out.append({"input_ids": prompt + target, "labels": [-100] * len(prompt) + target,
                    "prompt_length": len(prompt), "reference": reference})
    return out


def _encode_cloze(frame, tokenizer, spec, model_kind: str) -> list[dict[str, Any]]:
    """One example per row: the prompt's ids, every candidate's continuation ids under `choices`, the
    indices of the correct candidates under `answers` and the first of them as `label`. Candidates are
    the row's `candidates` then any answer missing from them, each once; the prompt is cut from the
    left so that the longest continuation fits in `max_length`."""
    if model_kind != "causal_lm":
        raise ValueError(f"cloze tasks score continuations of a causal LM, not a {model_kind} model")
    placeholder = spec.get("placeholder")
    out = []
    for row in frame.to_dict("records"):
        answers = [str(a) for a in row[spec.get("answers_field", "answers")]]
        candidates = list(dict.fromkeys([str(c) for c in row[spec.get("candidates_field", "candidates")]] + answers))
        options = []
        for candidate in candidates:
            text = spec["option"].format(**row, candidate=candidate)
            options.append(continuation_ids(tokenizer, text.replace(placeholder, candidate) if placeholder else text))
        prompt = _prompt_ids(tokenizer, spec["template"].format(**row),
                             spec.get("max_length", 256) - max(len(o) for o in options))
        correct = [candidates.index(a) for a in dict.fromkeys(answers)]
        out.append({"input_ids": prompt, "choices": options, "answers": correct, "label": correct[0]})
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


def selection_rows(pool: pd.DataFrame, anchors: pd.DataFrame, k: int, *, negatives: str = "hard",
                   answers: Mapping[str, set] | None = None, seed: int = 0) -> pd.DataFrame:
    """For every anchor pair, its `sentence1`, `k` candidate sentences and the true one's position.

    The candidates are the anchor's `sentence2` and k-1 distractors: the `sentence2` texts of `pool`
    that share the most words with the anchor's `sentence1` (`negatives: hard`, Jaccard overlap; the
    low-scored pairs of the same sentence are among them) or a seeded random draw (`random`). A
    distractor is never the anchor's sentence itself nor any of its true answers (`answers`:
    sentence1 -> every sentence2 that passes as its paraphrase). The true one's position is drawn
    from `seed`, so ties in the scores cannot favour it.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    if negatives not in ("hard", "random"):
        raise ValueError(f"unknown negatives {negatives!r}; allowed values are ['hard', 'random']")
    answers = answers or anchors.groupby("sentence1")["sentence2"].agg(set).to_dict()
    texts = np.array(sorted(set(pool["sentence2"].astype(str))))
    rng = np.random.default_rng(seed)
    if negatives == "hard":
        words = CountVectorizer(binary=True, token_pattern=r"(?u)\b\w+\b").fit(np.concatenate([texts, anchors["sentence1"]]))
        a, b = words.transform(anchors["sentence1"]), words.transform(texts)
        shared = (a @ b.T).toarray()
        overlap = shared / np.maximum(np.asarray(a.sum(1)) + np.asarray(b.sum(1)).T - shared, 1)
    rows = []
    for i, (first, true) in enumerate(zip(anchors["sentence1"], anchors["sentence2"], strict=True)):
        allowed = ~np.isin(texts, [first, true, *answers.get(first, ())])
        if allowed.sum() < k - 1:
            raise ValueError(f"only {allowed.sum()} distractors for {k} candidates: lower `candidates`")
        order = np.flatnonzero(allowed)
        if negatives == "hard":
            order = order[np.argsort(-overlap[i, order], kind="stable")[: k - 1]]
        else:
            order = rng.choice(order, k - 1, replace=False)
        label = int(rng.integers(k))
        candidates = list(texts[order])
        candidates.insert(label, true)
        rows.append({"sentence1": first, "candidates": candidates, "label": label})
    return pd.DataFrame(rows, columns=["sentence1", "candidates", "label"])


def _selection_task(folder: Path, spec: Mapping[str, Any], tokenizer, subset_seed: int) -> tuple[list, list, dict]:
    """Encoded train and evaluation examples of a `selection` task; `eval_split: rest` evaluates on
    the anchors of the training split that the (few-shot) training subset left out."""
    answer, k = spec.get("answer_where", "label >= 4"), int(spec.get("candidates", 20))
    options = {"negatives": spec.get("negatives", "hard"), "seed": int(spec.get("candidate_seed", 0))}

    def pool_of(split: str) -> pd.DataFrame:
        frame = load_split(folder, split)
        return (frame.query(spec["where"]) if spec.get("where") else frame).reset_index(drop=True)

    train_pool = pool_of(spec.get("train_split", "train"))
    anchors = train_pool.query(answer).reset_index(drop=True)
    chosen = np.arange(len(anchors))
    if spec.get("train_size") is not None and spec["train_size"] < len(anchors):
        chosen = np.sort(np.random.default_rng(subset_seed).choice(len(anchors), spec["train_size"], replace=False))
    eval_split = spec.get("eval_split", "validation")
    if eval_split == "rest":
        eval_pool, eval_anchors = train_pool, anchors.drop(index=chosen).reset_index(drop=True)
    else:
        eval_pool = pool_of(eval_split)
        eval_anchors = eval_pool.query(answer).reset_index(drop=True)
    size = spec.get("eval_size")
    if size is not None and size < len(eval_anchors):
        keep = np.sort(np.random.default_rng(spec.get("eval_seed", 0)).choice(len(eval_anchors), size, replace=False))
        eval_anchors = eval_anchors.iloc[keep].reset_index(drop=True)
    answers = pd.concat([anchors, eval_anchors]).groupby("sentence1")["sentence2"].agg(set).to_dict()
    splits = [selection_rows(pool, rows, k, answers=answers, **options)
              for pool, rows in ((train_pool, anchors.iloc[chosen].reset_index(drop=True)), (eval_pool, eval_anchors))]
    info = {"train_examples": len(splits[0]), "eval_examples": len(splits[1]), "candidates": k}
    return (*(_encode_selection(rows, tokenizer, spec.get("max_length", 128)) for rows in splits), info)


def _encode_selection(rows: pd.DataFrame, tokenizer, max_length: int) -> list[dict[str, Any]]:
    """One example per anchor: every `sentence1 [SEP] candidate` input under `choices`; `input_ids`
    (the anchor alone) only orders evaluation batches by length."""
    if rows.empty:
        return []
    k = len(rows["candidates"].iloc[0])
    firsts = [first for first in rows["sentence1"] for _ in range(k)]
    enc = tokenizer(firsts, [c for cands in rows["candidates"] for c in cands], truncation=True, max_length=max_length)
    keys = [key for key in ("input_ids", "token_type_ids") if key in enc]
    anchor_ids = tokenizer(rows["sentence1"].tolist(), truncation=True, max_length=max_length)["input_ids"]
    return [{"input_ids": anchor_ids[i], "label": int(rows["label"].iloc[i]),
             "choices": [{key: enc[key][i * k + j] for key in keys} for j in range(k)]} for i in range(len(rows))]


def dataset_folder(spec: Mapping[str, Any], data_root: str | os.PathLike = "resources/data") -> Path:
    """Where a task block's data set lives: `dataset` itself if it is a folder, else under `data_root`."""
    return Path(spec["dataset"]) if Path(spec["dataset"]).is_dir() else Path(data_root) / spec["dataset"]


def load_task(spec: Mapping[str, Any], tokenizer, *, model_kind: str = "encoder", seed: int = 0,
              data_root: str | os.PathLike = "resources/data") -> TaskData:
    """Read, select and encode a data set as the task block `spec` says.

    `train_size`/`eval_size` take a random subset (seeded by `subset_seed`, default `seed`), e.g.
    the few-shot training sets of Deep LoRA; the evaluation subset does not depend on the run seed.
    """
    kind = spec["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; allowed values are {list(KINDS)}")
    folder = dataset_folder(spec, data_root)
    subset_seed = spec.get("subset_seed", seed)
    metrics = list(spec.get("metrics") or DEFAULT_METRICS[kind])
    if kind == "selection":
        train_examples, eval_examples, info = _selection_task(folder, spec, tokenizer, subset_seed)
        return TaskData(kind, train_examples, eval_examples, metrics, tokenizer.pad_token_id, num_labels=1,
                        info={**info, "dataset": str(folder)})
    train = _rows(folder, spec.get("train_split", "train"), spec, spec.get("train_size"), subset_seed)
    evaluation = _rows(folder, spec.get("eval_split", "validation"), spec, spec.get("eval_size"), spec.get("eval_seed", 0))
    pad = tokenizer.pad_token_id
    info = {"train_examples": len(train), "eval_examples": len(evaluation), "dataset": str(folder)}
    if kind in ("regression", "classification"):
        data = TaskData(kind, _encode_encoder(train, tokenizer, spec), _encode_encoder(evaluation, tokenizer, spec),
                        metrics, pad, info=info)
        if kind == "regression":
            data.num_labels = 1
            if spec.get("label_scale"):
                data.label_mean, data.label_std = 0.0, float(spec["label_scale"])
            elif spec.get("standardize", True):
                labels = train["label"].to_numpy(np.float64)
                data.label_mean, data.label_std = float(labels.mean()), float(labels.std() or 1.0)
        else:
            data.num_labels = int(spec.get("num_labels") or max(train["label"].max(), evaluation["label"].max()) + 1)
        return data
    if kind == "cloze":
        return TaskData(kind, _encode_cloze(train, tokenizer, spec, model_kind),
                        _encode_cloze(evaluation, tokenizer, spec, model_kind), metrics, pad, info=info)
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
    if "input_ids_b" in examples[0]:  # the second sentence of a bi-encoded pair
        second = [list(e["input_ids_b"]) for e in examples]
        batch["input_ids_b"] = _pad(second, pad_id, side)
        batch["attention_mask_b"] = _pad([[1] * len(r) for r in second], 0, side)
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
