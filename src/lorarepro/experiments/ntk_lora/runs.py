"""What the NTK-LoRA scripts share: the k-shot draw of a training set, the rank thresholds of the
theorems, the authors' LoRA init in reduced coordinates, and per-epoch traces of batched runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from lorarepro.models.ntk_features import ReducedFeatures
from lorarepro.optim.regularized import LoraState
from lorarepro.seeding import seed_everything


def balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` examples of every class, drawn without replacement with `seed`, classes in order."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    return np.concatenate(chosen)


def rank_thresholds(n_samples: int, outputs: int) -> tuple[int, int]:
    """(r_ex, r_nsm): the largest r with r(r+1)/2 ≤ KN (Theorem 3.1: a global minimiser of this rank
    exists) and the smallest with r(r+1)/2 > KN (Theorem 4.1: no spurious second-order stationary points)."""
    kn = n_samples * outputs
    r_nsm = math.ceil((math.sqrt(8 * kn + 1) - 1) / 2)
    while r_nsm * (r_nsm + 1) // 2 <= kn:
        r_nsm += 1
    return r_nsm - 1, r_nsm


class Tracer:
    """Per-epoch objective, loss and accuracies of a batch of runs (leading dimension: seeds, if any).

    `objective` is the training objective of lorarepro.optim.regularized; `test_scores(state)` gives the
    test outputs [..., N_test, K] (evaluated every `eval_every` epochs) or is None.
    """

    def __init__(self, objective, labels: torch.Tensor, weight_decay: float, test_scores=None,
                 test_labels: torch.Tensor | None = None, eval_every: int = 1):
        self.objective, self.labels, self.weight_decay = objective, labels, weight_decay
        self.test_scores, self.test_labels, self.eval_every = test_scores, test_labels, eval_every
        self.rows: list[dict[str, np.ndarray]] = []

    def __call__(self, epoch: int, state) -> None:
        with torch.no_grad():
            loss, _, logits = self.objective(state.deltas(), None)
            row = {"step": epoch, "loss": loss.numpy().copy(),
                   "objective": (loss + self.weight_decay * state.penalty()).numpy().copy(),
                   "train_acc": (logits.argmax(-1) == self.labels).double().mean(-1).numpy().copy()}
            if self.test_scores is not None and epoch % self.eval_every == 0:
                scores = self.test_scores(state)
                row["test_acc"] = (scores.argmax(-1) == self.test_labels).double().mean(-1).numpy().copy()
        self.rows.append(row)

    def frame(self, run: int = 0) -> pd.DataFrame:
        """The trace of one run of the batch."""
        return pd.DataFrame([{k: (v if k == "step" else float(np.atleast_1d(v)[run])) for k, v in row.items()}
                             for row in self.rows])


def epochs_to(trace: pd.DataFrame, target: float) -> float:
    """The first epoch whose objective is ≤ target (NaN if none)."""
    hit = trace.loc[trace["objective"] <= target, "step"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def lora_init(reduced: ReducedFeatures, rank: int, seeds: list[int], shapes: dict[str, tuple[int, int]]):
    """The authors' init, drawn per seed: A ~ N(0, (1/(√r·n_in))²), B = 0, in reduced coordinates."""
    a0 = {}
    for name, (m, n) in shapes.items():
        draws = []
        for seed in seeds:
            _, gen = seed_everything(seed * 1009 + rank)
            draws.append(torch.randn(rank, n, generator=gen, dtype=torch.float64) / (math.sqrt(rank) * n))
        a0[name] = torch.stack(draws)
    reduced_a, idle = {}, torch.zeros(len(seeds), dtype=torch.float64)
    for name in shapes:
        reduced_a[name], idle_sq = reduced.reduce_lora_init(name, a0[name])
        idle = idle + idle_sq
    b = {name: torch.zeros(len(seeds), reduced.gamma[name].shape[-2], rank, dtype=torch.float64) for name in shapes}
    return LoraState(b, reduced_a, idle), a0
