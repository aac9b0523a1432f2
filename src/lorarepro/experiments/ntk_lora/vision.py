"""The image and speech tasks of NTK-LoRA Figure 3 / Table 4 at the offline scales: a small ViT pretrained
in the pipeline on some classes (MNIST digits, or spoken words as log-mel spectrograms), then
fine-tuned on held-out classes with a fresh head, as one fine-tunes a hub ViT / wav2vec2 on a new task
(which the paper scale does: hub_tasks.py).

Shared by the pretraining, feature and Table 4 scripts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lorarepro.data.materialize import load_split
from lorarepro.experiments.ntk_lora.hub_tasks import hub_problem
from lorarepro.experiments.ntk_lora.runs import balanced_indices
from lorarepro.models.ntk_features import ClassifierReadout
from lorarepro.models.vit import ViT, ViTConfig, ViTReadout, vit_block_inputs
from lorarepro.seeding import seed_everything

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def load_inputs(modality: dict, data: str, classes: list, split: str) -> tuple[Tensor, Tensor]:
    """Inputs [N, H, W] and labels 0..len(classes)-1 of the given classes (digits, or words) in a split.

    `data` is a materialised image data set folder, or the spoken-words parquet file.
    """
    if modality["kind"] == "image":
        frame = load_split(data, split)
        frame = frame[frame["label"].isin(classes)]
        side = int(np.sqrt(len(frame["pixels"].iloc[0])))
        pixels = np.stack(frame["pixels"].to_numpy()).astype(np.float32).reshape(-1, side, side) / 255.0
        inputs = (torch.from_numpy(pixels) - MNIST_MEAN) / MNIST_STD
        labels = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    else:
        frame = pd.read_parquet(data)
        frame = frame[frame["word"].isin(classes) & (frame["split"] == split)]
        shape = modality["vit"]["image_size"]
        inputs = torch.from_numpy(np.stack(frame["features"].to_numpy()).astype(np.float32).reshape(-1, *shape))
        labels = frame["word"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return inputs, torch.from_numpy(labels.astype(np.int64))


def pretrain(modality: dict, data: str, seed: int) -> tuple[ViT, dict]:
    """Train a ViT from scratch on the pretraining classes (AdamW, cross-entropy); return it and its scores."""
    _, gen = seed_everything(seed)
    classes, settings = modality["pretrain_classes"], modality["pretrain"]
    x, y = load_inputs(modality, data, classes, "train")
    x_test, y_test = load_inputs(modality, data, classes, "test")
    config = ViTConfig(**{**modality["vit"], "image_size": tuple(modality["vit"]["image_size"]),
                          "patch_size": tuple(modality["vit"]["patch_size"]), "classes": len(classes)})
    model = ViT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    steps = settings["epochs"] * int(np.ceil(len(x) / settings["batch_size"]))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"], total_steps=steps)
    losses = []
    model.train()
    for _ in range(settings["epochs"]):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), settings["batch_size"]):
            batch = order[start:start + settings["batch_size"]]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(-1) == y_test).double().mean())
        train_accuracy = float((model(x).argmax(-1) == y).double().mean())
    return model, {"pretrain_test_acc": accuracy, "pretrain_train_acc": train_accuracy,
                   "final_train_loss": float(np.mean(losses[-20:])), "steps": steps,
                   "train_examples": len(x), "test_examples": len(x_test)}


@dataclass
class FineTuneProblem:
    """Last-layer fine-tuning of a pretrained ViT (here or on the hub) or wav2vec2 on new classes: the
    readout block (last block, norm, pooling, fresh head) and the cached inputs of that block for the
    training and test examples."""

    block: ViTReadout | ClassifierReadout
    train_inputs: Tensor
    train_labels: Tensor
    test_inputs: Tensor
    test_labels: Tensor


def finetune_problem(modality: dict, data: str, model_path: str, *, per_class: int, data_seed: int,
                     head_seed: int, test_size: int, device: str = "cpu") -> FineTuneProblem:
    """The problem of a modality: on the ViT pretrained here (`model_path` its file), or, when the
    modality has a `hub` block (paper scale), on the hub checkpoint in folder `model_path`, whose frozen
    layers run on `device`."""
    if "hub" in modality:
        return FineTuneProblem(*hub_problem(modality, data, model_path, per_class=per_class, data_seed=data_seed,
                                            head_seed=head_seed, test_size=test_size, device=device))
    model = ViT.load(model_path)
    classes = modality["finetune_classes"]
    model.new_head(len(classes), torch.Generator().manual_seed(head_seed))
    model.eval()
    x, y = load_inputs(modality, data, classes, "train")
    chosen = balanced_indices(y.numpy(), per_class, data_seed)
    x_test, y_test = load_inputs(modality, data, classes, "test")
    keep = np.sort(np.random.default_rng(0).permutation(len(x_test))[:test_size])
    return FineTuneProblem(ViTReadout(model).eval(), vit_block_inputs(model, x[chosen]), y[chosen],
                           vit_block_inputs(model, x_test[keep]), y_test[keep])
