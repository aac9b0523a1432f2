"""The image and speech tasks of NTK-LoRA Figure 3 / Table 4 at paper scale: a hub classifier (ViT on
beans, wav2vec2 on SUPERB keyword spotting) with a fresh head, inputs prepared by the checkpoint's own
image processor / feature extractor, and only the last encoder layer fine-tuned. The frozen layers run
once; the trained block is `ClassifierReadout` (last layer, final norm, pooling, head).
"""

from __future__ import annotations

import io
import wave

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from lorarepro.data.materialize import load_split
from lorarepro.device import resolve_device
from lorarepro.experiments.ntk_lora.runs import balanced_indices
from lorarepro.models.load import resolve_model
from lorarepro.models.ntk_features import ClassifierReadout, classifier_layer_inputs
from lorarepro.seeding import seed_everything


def decode_image(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """A PCM WAV file (Speech Commands: 16-bit mono) as float32 samples in [-1, 1] and its sampling rate."""
    with wave.open(io.BytesIO(data)) as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    if width != 2:
        raise ValueError(f"expected 16-bit PCM audio, got {8 * width}-bit")
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).mean(1)
    return (samples / 32768.0).astype(np.float32), rate


def model_inputs(kind: str, processor, column: pd.Series, max_seconds: float | None = None) -> dict[str, Tensor]:
    """The model's inputs for encoded images or audio clips, prepared by the checkpoint's processor.

    Clips are zero-padded (or cut) to `max_seconds`, so every example has the same frames and the head
    pools them as the model does on a batch without an attention mask.
    """
    if kind == "image":
        return {"pixel_values": processor(images=[decode_image(x) for x in column], return_tensors="pt")["pixel_values"]}
    clips = [decode_wav(x) for x in column]
    rate = processor.sampling_rate
    if any(r != rate for _, r in clips):
        raise ValueError(f"the feature extractor expects {rate} Hz audio; the clips are {sorted({r for _, r in clips})} Hz")
    values = processor([c for c, _ in clips], sampling_rate=rate, padding="max_length",
                       max_length=int(round(max_seconds * rate)), truncation=True, return_tensors="pt")
    return {"input_values": values["input_values"]}


def select(frame: pd.DataFrame, classes: list[int]) -> tuple[pd.DataFrame, Tensor]:
    """The rows of the given hub class ids, with labels renumbered 0..len(classes)-1 in that order."""
    frame = frame[frame["label"].isin(classes)].reset_index(drop=True)
    labels = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64, copy=True)
    return frame, torch.from_numpy(labels)


def classifier_problem(model: nn.Module, processor, kind: str, train: pd.DataFrame, test: pd.DataFrame, *,
                       classes: list[int], per_class: int, data_seed: int, test_size: int, batch_size: int,
                       max_seconds: float | None = None, device: str | torch.device = "cpu"):
    """(readout block, train block inputs, train labels, test block inputs, test labels) of last-layer
    fine-tuning: `per_class` training examples of every class drawn with `data_seed`, `test_size` test
    examples (a fixed subsample; all of them if there are fewer). The frozen layers run on `device`;
    the model and the block inputs are returned on the CPU."""
    column = "image" if kind == "image" else "audio"
    train, y = select(train, classes)
    chosen = balanced_indices(y.numpy(), per_class, data_seed)
    test, y_test = select(test, classes)
    keep = np.sort(np.random.default_rng(0).permutation(len(test))[:test_size])
    model.eval().to(device)
    readout = ClassifierReadout(model).eval()

    def block_inputs(series: pd.Series) -> Tensor:
        batches = ({k: v.to(device) for k, v in model_inputs(kind, processor, series.iloc[i:i + batch_size],
                                                             max_seconds).items()}
                   for i in range(0, len(series), batch_size))
        return classifier_layer_inputs(model, readout, batches).cpu()

    x, x_test = block_inputs(train[column].iloc[chosen]), block_inputs(test[column].iloc[keep])
    model.cpu()
    return readout, x, y[chosen], x_test, y_test[keep]


def load_classifier(kind: str, location: str, classes: int, head_seed: int) -> tuple[nn.Module, object]:
    """The pretrained checkpoint with a fresh `classes`-way head drawn with `head_seed`, and its processor."""
    from transformers import (AutoFeatureExtractor, AutoImageProcessor, AutoModelForAudioClassification,
                              AutoModelForImageClassification)

    loader, processor = ((AutoModelForImageClassification, AutoImageProcessor) if kind == "image"
                         else (AutoModelForAudioClassification, AutoFeatureExtractor))
    seed_everything(head_seed)  # the head is initialised from torch's global generator
    model = loader.from_pretrained(location, num_labels=classes, ignore_mismatched_sizes=True,
                                   dtype=torch.float32, use_safetensors=True)
    return model.eval(), processor.from_pretrained(location)


def hub_problem(modality: dict, data: str, model: str, *, per_class: int, data_seed: int, head_seed: int,
                test_size: int, device: str = "cpu"):
    """`classifier_problem` for a modality's `hub` block, from the materialised data set and model folders."""
    hub = modality["hub"]
    network, processor = load_classifier(modality["kind"], resolve_model(model), len(hub["classes"]), head_seed)
    return classifier_problem(network, processor, modality["kind"], load_split(data, "train"),
                              load_split(data, "test"), classes=hub["classes"], per_class=per_class,
                              data_seed=data_seed, test_size=test_size, batch_size=hub["batch_size"],
                              max_seconds=hub.get("max_seconds"), device=resolve_device(device))
