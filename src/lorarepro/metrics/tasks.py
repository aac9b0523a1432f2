"""Task scores of fine-tuned models: the GLUE metrics (accuracy, F1, Matthews, Pearson/Spearman),
exact match and SQuAD's token F1 for generated answers, and BLEU/ROUGE for generated text (as the
E2E NLG evaluation).

Every function takes predictions and references as sequences and returns a plain float; scores are
fractions in [0, 1] (BLEU is rescaled from sacrebleu's 0-100), so tables can print them side by side.
A reference may be a list of acceptable answers (ReCoRD's entities, SQuAD's annotations): `accuracy`
then counts a prediction among them as correct, and `exact_match`/`token_f1` take the best one.
"""

from __future__ import annotations

import re
import string
from typing import Callable, Sequence

import numpy as np


def _answers(ref) -> list:
    return list(ref) if isinstance(ref, (list, tuple, set, np.ndarray)) else [ref]


def accuracy(pred: Sequence, ref: Sequence) -> float:
    if any(isinstance(r, (list, tuple, set, np.ndarray)) for r in ref):
        return float(np.mean([p in _answers(r) for p, r in zip(pred, ref, strict=True)]))
    pred, ref = np.asarray(pred), np.asarray(ref)
    return float((pred == ref).mean())


def f1(pred: Sequence[int], ref: Sequence[int]) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP; macro F1 beyond 2 classes."""
    from sklearn.metrics import f1_score

    labels = np.union1d(np.asarray(pred), np.asarray(ref))
    average = "binary" if set(labels.tolist()) <= {0, 1} else "macro"
    return float(f1_score(ref, pred, average=average, zero_division=0.0))


def matthews(pred: Sequence[int], ref: Sequence[int]) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(ref, pred))


def pearson(pred: Sequence[float], ref: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    pred = np.asarray(pred, dtype=np.float64)
    return float("nan") if np.ptp(pred) == 0 else float(pearsonr(pred, np.asarray(ref, dtype=np.float64))[0])


def spearman(pred: Sequence[float], ref: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    pred = np.asarray(pred, dtype=np.float64)
    return float("nan") if np.ptp(pred) == 0 else float(spearmanr(pred, np.asarray(ref, dtype=np.float64))[0])


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(pred: Sequence[str], ref: Sequence) -> float:
    return float(np.mean([max(normalize_answer(p) == normalize_answer(r) for r in _answers(refs))
                          for p, refs in zip(pred, ref, strict=True)]))


def _token_f1(pred: str, ref: str) -> float:
    """F1 of the normalised word multisets of one prediction and one answer (the SQuAD v1.1 script)."""
    from collections import Counter

    p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
    shared = sum((Counter(p) & Counter(r)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(p), shared / len(r)
    return 2 * precision * recall / (precision + recall)


def token_f1(pred: Sequence[str], ref: Sequence) -> float:
    """SQuAD's F1: per question the best word-overlap F1 over its answers, averaged over questions."""
    return float(np.mean([max(_token_f1(p, r) for r in _answers(refs)) for p, refs in zip(pred, ref, strict=True)]))


def bleu(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu's 13a tokenisation), as a fraction."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(pred), [list(ref)]).score / 100.0)


def rouge_l(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (with stemming), as E2E NLG reports it."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(pred, ref, strict=True)]))


METRICS: dict[str, Callable[[Sequence, Sequence], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
    "exact_match": exact_match,
    "token_f1": token_f1,
    "bleu": bleu,
    "rouge_l": rouge_l,
}


def score(names: Sequence[str], pred: Sequence, ref: Sequence) -> dict[str, float]:
    """Several metrics of one set of predictions, by name."""
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; known metrics are {sorted(METRICS)}")
    return {name: METRICS[name](pred, ref) for name in names}
