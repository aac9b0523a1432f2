"""NTK-LoRA's tasks and scripts: the theorems' rank thresholds, the small ViT's readout block, the spoken
words' spectrograms, and the fit script end to end on synthetic features."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lorarepro.data.speech import espeak, log_mel, mel_filterbank
from lorarepro.experiments.ntk_lora import fit, spoken_words
from lorarepro.experiments.ntk_lora.runs import balanced_indices, rank_thresholds
from lorarepro.models.ntk_features import block_features
from lorarepro.models.vit import ViT, ViTConfig, ViTReadout, vit_block_inputs
from lorarepro.problems.ntk_synthetic import synthetic_features
from lorarepro.records import load_records, load_traces


@pytest.mark.parametrize("n, k, expected", [(32, 2, (10, 11)), (48, 3, (16, 17)), (64, 4, (22, 23)), (8, 2, (5, 6)),
                                            (1, 1, (1, 2)), (3, 1, (2, 3))])
def test_rank_thresholds_of_theorems_3_1_and_4_1(n, k, expected):
    r_ex, r_nsm = rank_thresholds(n, k)
    assert (r_ex, r_nsm) == expected
    assert r_ex * (r_ex + 1) // 2 <= n * k < r_nsm * (r_nsm + 1) // 2 and r_nsm == r_ex + 1


def test_balanced_indices_take_k_per_class_without_repeats():
    labels = np.array([0, 1] * 20 + [1] * 5)
    chosen = balanced_indices(labels, 7, seed=3)
    assert len(set(chosen)) == 14 and (labels[chosen] == 0).sum() == 7
    assert list(chosen) == list(balanced_indices(labels, 7, seed=3))


def test_vit_readout_on_cached_inputs_equals_the_whole_model(tmp_path):
    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=(12, 8), patch_size=(4, 4), dim=16, depth=3, heads=2, mlp_dim=24, classes=5))
    model.new_head(3, torch.Generator().manual_seed(1))
    model.eval()
    images = torch.randn(6, 12, 8)
    with torch.no_grad():
        expected = model(images)
    readout = ViTReadout(model)
    torch.testing.assert_close(readout(vit_block_inputs(model, images, batch_size=4)), expected)
    features = block_features(readout, readout.targets, [(vit_block_inputs(model, images),)], torch.zeros(6).long())
    assert features.f0.shape == (6, 3)
    assert features.factors["block.attn.q_proj"][0].shape[-1] == 1  # read at the CLS token only
    model.save(tmp_path / "vit.pt")
    torch.testing.assert_close(ViT.load(tmp_path / "vit.pt")(images), expected)


def test_mel_filters_are_triangles_that_cover_the_band():
    filters = mel_filterbank(512, 40, 22050, 60.0, 8000.0).numpy()
    assert filters.shape == (40, 257) and filters.min() >= 0 and filters.max() <= 1
    assert (filters.max(1) > 0.5).all()  # every filter reaches close to its peak on the grid
    centres = filters.argmax(1)
    assert (np.diff(centres) >= 0).all()


def test_log_mel_is_standardised_and_fixed_size():
    t = np.arange(8000) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    spec = log_mel(np.concatenate([np.zeros(3000, np.float32), tone]), n_mels=20, frames=60)
    assert spec.shape == (20, 60)
    assert abs(spec.mean()) < 1e-5 and abs(spec.std() - 1) < 1e-3


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng")
def test_espeak_speaks_a_word():
    samples = espeak("yes", "en-us+f2", 160, 50)
    assert 0.2 * 22050 < len(samples) < 2 * 22050 and np.abs(samples).max() > 0.05


def test_the_corpus_script_names_the_debian_package_when_espeak_ng_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    with pytest.raises(SystemExit, match=r"apt-get install espeak-ng"):
        spoken_words.main(["--params", "{}", "--out", str(tmp_path / "words.parquet")])
    assert not (tmp_path / "words.parquet").exists()


def test_fit_writes_every_run_and_lora_above_the_threshold_reaches_f_star(tmp_path):
    torch.set_num_threads(1)
    features = synthetic_features(4, shape=(6, 6), positions=2, generator=torch.Generator().manual_seed(0))
    features.save(tmp_path / "train.pt")
    params = {"scale": "smoke", "ranks": [1, 4], "seed_list": [0, 1], "epochs": 400, "step_fraction": 1.0,
              "weight_decay": 0.1, "mode": "paper", "rate_tol": 0.01, "reference": {"tol": 1e-9, "max_iter": 5000}}
    fit.main(["--params", json.dumps(params), "--experiment", "nsweep", "--task", "n4", "--train",
              str(tmp_path / "train.pt"), "--root", str(tmp_path)])
    records = load_records(sorted((tmp_path / "ntk_lora" / "nsweep").rglob("metrics.json")))
    assert sorted(records["method"].value_counts().items()) == [("full", 1), ("lora", 4), ("reference", 1),
                                                                 ("summary", 1)]
    lora = records[records["method"] == "lora"]
    assert (lora["params.r_nsm"] == 4).all()  # K·N = 8: r(r+1)/2 > 8 from r = 4
    above = lora[lora["params.above_threshold"]]
    assert (above["metrics.rel_gap"].abs() < 1e-3).all() and (above["metrics.duality_gap_rel"] < 1e-3).all()
    assert (above["metrics.balancedness_gap_rel"] < 1e-2).all()
    traces = load_traces(lora["path"])
    assert set(traces["step"]) == set(range(401)) and traces["objective"].notna().all()
