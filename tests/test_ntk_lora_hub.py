"""The paper-scale image and speech tasks of NTK-LoRA (Figure 3, Table 4) on tiny, randomly initialised hub
architectures (ViT, wav2vec2; no download): the readout block reproduces the whole classifier, its
factored Jacobians equal autograd's, the linearised model is the real one at θ₀ and to first order
around it, the data path gives balanced, correctly shaped features, and the paper-scale DAG uses the hub
models without pretraining anything."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import (ViTConfig, ViTForImageClassification, ViTImageProcessor, Wav2Vec2Config,
                          Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification)

from conftest import copy_workflow, snakemake
from lorarepro.data.materialize import load_split, materialize_dataset, sha256
from lorarepro.experiments.ntk_lora import table4, vision_features
from lorarepro.experiments.ntk_lora.hub_tasks import classifier_problem, decode_wav, load_classifier, model_inputs
from lorarepro.io import write_json
from lorarepro.models.catalog import model_spec
from lorarepro.models.linearized import FullDelta, LinearizedModel
from lorarepro.models.materialize import materialize_model
from lorarepro.models.ntk_features import (ClassifierReadout, Features, block_features, classifier_layer_inputs,
                                           differentiable_block_outputs)
from lorarepro.records import load_records, load_traces

RATE, SECONDS = 16000, 0.05


def tiny_vit() -> ViTForImageClassification:
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=3)
    return ViTForImageClassification(config).double().eval()


def tiny_wav2vec2(stable: bool = False, labels: int = 4) -> Wav2Vec2ForSequenceClassification:
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                            conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=4, classifier_proj_size=16, num_labels=labels,
                            do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group")
    return Wav2Vec2ForSequenceClassification(config).double().eval()


def image_inputs(n: int) -> dict:
    return {"pixel_values": torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)}


def audio_inputs(n: int) -> dict:
    return {"input_values": torch.randn(n, int(RATE * SECONDS), generator=torch.Generator().manual_seed(1),
                                        dtype=torch.float64)}


CASES = {"vit": (tiny_vit, image_inputs), "wav2vec2": (lambda: tiny_wav2vec2(False), audio_inputs),
         "wav2vec2_stable": (lambda: tiny_wav2vec2(True), audio_inputs)}


@pytest.fixture(params=list(CASES))
def hub_case(request):
    build, inputs = CASES[request.param]
    model = build()
    readout = ClassifierReadout(model).eval()
    batches = [inputs(3), inputs(2)]
    hidden = classifier_layer_inputs(model, readout, batches)
    with torch.no_grad():
        logits = torch.cat([model(**b).logits for b in batches])
    labels = torch.arange(5) % model.config.num_labels
    return model, readout, batches, hidden, logits, labels


def test_targets_are_the_last_layers_query_and_value(hub_case):
    model, readout, *_ = hub_case
    full = dict(model.named_modules())
    for target in readout.targets:
        module = readout.get_submodule(target)
        assert isinstance(module, torch.nn.Linear)
        assert any(m is module and (".1.attention.q_proj" in n or ".1.attention.v_proj" in n) for n, m in full.items())


def test_the_readout_on_cached_inputs_is_the_whole_classifier(hub_case):
    model, readout, batches, hidden, logits, labels = hub_case
    assert hidden.shape[0] == 5 and hidden.shape[-1] == model.config.hidden_size
    features = block_features(readout, readout.targets, [(hidden,)], labels)
    assert features.f0.shape == (5, model.config.num_labels)
    torch.testing.assert_close(features.f0, logits.double(), atol=1e-10, rtol=1e-10)


def test_factored_jacobians_equal_autograd_of_the_whole_model(hub_case):
    model, readout, batches, hidden, logits, labels = hub_case
    features = block_features(readout, readout.targets, [(hidden[:2],), (hidden[2:],)], labels)
    full_names = {id(m): n for n, m in model.named_modules()}
    x = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    for target in readout.targets:
        name = full_names[id(readout.get_submodule(target))] + ".weight"
        weight = model.get_parameter(name).detach()
        jac = torch.func.jacrev(lambda w: torch.func.functional_call(model, {name: w}, kwargs=x).logits)(weight).detach()
        u, v = features.factors[target]  # stored in float32
        dense = u.double() @ v.double().transpose(-1, -2)  # [N, K, m, n]
        torch.testing.assert_close(dense, jac, atol=1e-5 * float(jac.abs().max()), rtol=1e-4)
    if model.config.model_type == "vit":  # read at the CLS token: G_q has rank 1, G_v rank ≤ #heads
        assert features.factors[readout.targets[0]][0].shape[-1] == 1
        assert features.factors[readout.targets[1]][0].shape[-1] <= 4


def test_the_linearised_model_is_the_real_one_at_theta0_and_to_first_order(hub_case):
    model, readout, batches, hidden, logits, labels = hub_case
    features = block_features(readout, readout.targets, [(hidden,)], labels)
    gen = torch.Generator().manual_seed(2)
    shapes = {t: readout.get_submodule(t).weight.shape for t in readout.targets}
    direction = {t: torch.randn(s, generator=gen, dtype=torch.float64) for t, s in shapes.items()}
    full_names = {t: next(n for n, m in model.named_modules() if m is readout.get_submodule(t)) + ".weight"
                  for t in readout.targets}
    x = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    delta = FullDelta({full_names[t]: s for t, s in shapes.items()}, dtype=torch.float64)
    linearised = LinearizedModel(model, list(full_names.values()), delta, output=lambda m, b: m(**b).logits)
    with torch.no_grad():
        # LinearizedModel runs eager attention, whose softmax is float32 even in a float64 model
        torch.testing.assert_close(linearised(**x).logits, logits, atol=1e-7, rtol=1e-6)
        errors = []
        for eps in (1e-3, 5e-4):
            step = {t: eps * d for t, d in direction.items()}
            ours = features.outputs({t: (d, torch.eye(d.shape[1], dtype=d.dtype)) for t, d in step.items()})
            for t, d in step.items():
                delta.deltas[full_names[t].replace(".", "__")].copy_(d)
            torch.testing.assert_close(ours, linearised(**x).logits, atol=1e-7, rtol=1e-6)
            base = {t: readout.get_submodule(t).weight.detach() for t in readout.targets}
            actual = differentiable_block_outputs(readout, (hidden,), {t: base[t] + d for t, d in step.items()})
            errors.append(float((actual - ours).abs().max()))
        assert errors[0] > 0 and errors[1] < 0.4 * errors[0]  # second-order remainder: halves ε, quarters it


def png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seed: int, seconds: float) -> bytes:
    samples = (np.random.default_rng(seed).uniform(-0.5, 0.5, int(RATE * seconds)) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1), writer.setsampwidth(2), writer.setframerate(RATE)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def test_wav_decoding_round_trips_16_bit_pcm():
    samples, rate = decode_wav(wav(0, 0.01))
    expected = (np.random.default_rng(0).uniform(-0.5, 0.5, 160) * 32767).astype("<i2") / 32768.0
    assert rate == RATE and samples.dtype == np.float32
    np.testing.assert_allclose(samples, expected, atol=1e-7)


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_the_hub_problem_has_balanced_training_sets_and_block_inputs_of_the_right_shape(kind):
    """Rows shaped like the materialised hub sets (encoded file + hub label id); classes picked by id."""
    if kind == "image":
        model, processor, column = tiny_vit().float(), ViTImageProcessor(size={"height": 32, "width": 32}), "image"
        encode, tokens = png, 1 + (32 // 8) ** 2
    else:
        model, processor, column = tiny_wav2vec2(labels=3).float(), Wav2Vec2FeatureExtractor(sampling_rate=RATE), "audio"
        encode, tokens = (lambda s: wav(s, SECONDS * (0.5 + s % 2))), None  # clips shorter and longer than max
    hub_labels = [7, 2, 5, 9]  # the hub's ids; classes [5, 2, 7] become labels 0, 1, 2
    train = pd.DataFrame({column: [encode(i) for i in range(24)], "label": [hub_labels[i % 4] for i in range(24)]})
    test = pd.DataFrame({column: [encode(100 + i) for i in range(10)], "label": [hub_labels[i % 4] for i in range(10)]})
    modality = "image" if kind == "image" else "speech"
    readout, x, y, x_test, y_test = classifier_problem(
        model, processor, modality, train, test, classes=[5, 2, 7], per_class=4, data_seed=0, test_size=100,
        batch_size=5, max_seconds=SECONDS)
    assert sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    kept = test[test["label"].isin([5, 2, 7])]
    assert y_test.tolist() == kept["label"].map({5: 0, 2: 1, 7: 2}).tolist()  # fewer than test_size: all, in order
    assert x.shape[0] == 12 and x_test.shape[0] == len(kept) == 8 and x.shape[-1] == 32
    if tokens is not None:
        assert x.shape[1] == tokens
    else:  # every clip padded or cut to the same length: the same number of frames
        frames = model.wav2vec2._get_feat_extract_output_lengths(torch.tensor(int(RATE * SECONDS)))
        assert x.shape[1] == int(frames)
    with torch.no_grad():  # the cached inputs reproduce the classifier on the processor's inputs
        logits = model(**model_inputs(modality, processor, kept[column], SECONDS)).logits
        torch.testing.assert_close(readout(x_test), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, column, label, encode", [("beans", "image", "labels", lambda i: png(i)),
                                                          ("superb_ks", "audio", "label", lambda i: wav(i, 0.01))])
def test_hub_media_sets_are_materialised_as_encoded_files(tmp_path, name, column, label, encode):
    """The hub code path (datasets.load_dataset on a local parquet file with the hub's image / audio
    features) keeps each file's bytes, undecoded, with the hub's integer labels."""
    import datasets

    files = [encode(i) for i in range(3)]
    struct = datasets.Features({column: {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                label: datasets.ClassLabel(names=["a", "b", "c"])})
    feature = datasets.Image() if column == "image" else datasets.Audio(sampling_rate=RATE)
    rows = datasets.Dataset.from_dict({column: [{"bytes": f, "path": None} for f in files], label: [2, 0, 1]},
                                      features=struct).cast_column(column, feature)
    rows.to_parquet(tmp_path / "rows.parquet")
    override = {"path": "parquet", "data_files": {s: str(tmp_path / "rows.parquet") for s in ("train", "test")}}
    materialize_dataset(name, tmp_path / name, source="hub", hub_override=override)
    frame = load_split(tmp_path / name, "test")
    assert list(frame.columns) == [column, "label"] and frame["label"].tolist() == [2, 0, 1]
    assert frame[column].tolist() == files


def test_wav2vec2_is_downloaded_at_its_safetensors_commit(tmp_path, monkeypatch):
    """Only pickled weights are on wav2vec2-base's main branch; loading reads safetensors only."""
    import huggingface_hub

    calls = []

    def download(hub_id, local_dir, revision=None, allow_patterns=()):
        calls.append((hub_id, revision))
        (Path(local_dir) / "config.json").write_text("{}")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    manifest = materialize_model("wav2vec2_base", tmp_path / "w2v", source="hub")
    assert calls == [("facebook/wav2vec2-base", model_spec("wav2vec2_base").revision)]
    assert manifest["origin"]["revision"] == model_spec("wav2vec2_base").revision
    materialize_model("vit_base", tmp_path / "vit", source="hub")
    assert calls[1] == ("google/vit-base-patch16-224-in21k", None)  # main has model.safetensors


def materialized(folder, splits: dict[str, pd.DataFrame]) -> str:
    """A data set folder as `materialize_dataset` writes it (parquet splits and a checksummed manifest)."""
    folder.mkdir()
    manifest = {"splits": {}}
    for split, frame in splits.items():
        frame.to_parquet(folder / f"{split}.parquet", index=False)
        manifest["splits"][split] = {"file": f"{split}.parquet", "sha256": sha256(folder / f"{split}.parquet")}
    write_json(folder / "manifest.json", manifest)
    return str(folder)


def test_the_feature_and_table_4_scripts_run_on_a_hub_checkpoint(tmp_path):
    """The scripts' paper-scale path on a saved tiny ViT: the head is the same in both jobs (seeded), and
    linearised and actual LoRA start from the same test accuracy (the same model at θ₀)."""
    torch.set_num_threads(1)
    tiny_vit().float().save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    data = materialized(tmp_path / "beans", {
        "train": pd.DataFrame({"image": [png(i) for i in range(12)], "label": [i % 3 for i in range(12)]}),
        "test": pd.DataFrame({"image": [png(50 + i) for i in range(6)], "label": [i % 3 for i in range(6)]})})
    modality = {"kind": "image", "hub": {"model": "vit_base", "data": "beans", "classes": [0, 1, 2], "batch_size": 4}}
    params = {"scale": "paper", "device": "cpu", "modalities": {"image": modality}, "per_class": 2, "data_seed": 0,
              "head_seed": 3, "test_size": 1000}
    paths = ["--modality", "image", "--data", data, "--model", str(tmp_path / "vit"),
             "--train", str(tmp_path / "train.pt"), "--test", str(tmp_path / "test.pt")]
    vision_features.main(["--params", json.dumps(params), *paths])
    train, test = Features.load(tmp_path / "train.pt"), Features.load(tmp_path / "test.pt")
    assert train.f0.shape == (6, 3) and test.f0.shape == (6, 3)
    assert sorted(train.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    first, _ = load_classifier("image", str(tmp_path / "vit"), 3, head_seed=3)
    again, _ = load_classifier("image", str(tmp_path / "vit"), 3, head_seed=3)
    torch.testing.assert_close(first.classifier.weight, again.classifier.weight, atol=0, rtol=0)

    table = {**params, "rank": 2, "seed_list": [0], "lr": 0.005, "weight_decay": 0.0, "epochs": 2,
             "batch_size": 4, "mode": "paper", "eval_every": 1}
    table4.main(["--params", json.dumps(table), *paths, "--root", str(tmp_path / "results")])
    records = load_records(sorted((tmp_path / "results").rglob("metrics.json")))
    assert sorted(records["method"]) == ["lora_actual", "lora_linearized"]
    start = load_traces(records["path"]).query("step == 0").set_index("method")["test_acc"]
    assert start["lora_actual"] == start["lora_linearized"]


@pytest.mark.workflow
def test_the_paper_dag_features_hub_models_and_pretrains_nothing(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("dry") / "workflow")
    proc = snakemake(workdir, "-n", "--config", "scale=paper", "--", "ntk_lora")
    out = proc.stdout
    assert "ntk_lora_pretrain_vit" not in out and "ntk_lora_spoken_words" not in out
    for asset in ("resources/models/vit_base", "resources/models/wav2vec2_base", "resources/data/beans",
                  "resources/data/superb_ks"):
        assert asset in out
    assert "results/ntk_lora/features/vision/image/train.pt" in out
    assert "results/ntk_lora/features/vision/speech/train.pt" in out
