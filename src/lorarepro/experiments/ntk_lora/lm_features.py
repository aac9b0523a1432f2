"""NTK features of a prompted language model on a few-shot task (NTK-LoRA Figures 2 and 4).

The training set is k examples per class drawn with a data seed (LM-BFF's k-shot sets); the test set
is the task's test split, subsampled. The model's K outputs are the label words' logits at the read
position; G is taken for W_q and W_v of the last layer (frozen layers run once) or of every layer.

    python -m lorarepro.experiments.ntk_lora.lm_features --params '{...}' --task mr --data-seed 13 \
        --split train --layers last --out results/ntk_lora/features/last/mr-13/train.pt
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lorarepro.data.tasks import collate, load_task
from lorarepro.experiments.ntk_lora.runs import balanced_indices
from lorarepro.models.load import load_model, load_tokenizer, resolve_model
from lorarepro.models.ntk_features import (
    LastLayerReadout,
    PromptReadout,
    block_features,
    last_layer_inputs,
    read_positions,
)
from lorarepro.seeding import seed_everything


def build_model(spec: dict, location: str, seed: int):
    """The pretrained model, or (smoke scale) a randomly initialised one of the same family made tiny."""
    if "tiny" not in spec:
        return load_model(spec).eval()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(location)
    config.update(spec["tiny"])
    seed_everything(seed)
    loader = AutoModelForCausalLM if spec["kind"] == "causal_lm" else AutoModelForMaskedLM
    return loader.from_config(config, dtype=torch.float32).eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the k-shot training set")
    parser.add_argument("--split", choices=["train", "test"], required=True)
    parser.add_argument("--layers", choices=["last", "all"], required=True, help="W_q, W_v of the last or every layer")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    torch.set_num_threads(params.get("threads", 1))
    task, spec = params["tasks"][args.task], params["model"]

    location = resolve_model(spec["name"])
    tokenizer = load_tokenizer(location)
    model = build_model(spec, location, seed=0)
    data = load_task({"dataset": task["dataset"], "kind": "prompted", "template": task["template"],
                      "label_words": task["label_words"], "max_length": params["max_length"],
                      # only the split this job needs is encoded (a size of 0 leaves the other one empty)
                      "train_size": None if args.split == "train" else 0,
                      "eval_split": "test", "eval_size": params["test_size"] if args.split == "test" else 0},
                     tokenizer, model_kind=spec["kind"], data_root=args.data_root)
    if any(len(c) != 1 for c in data.candidates):
        raise ValueError(f"label words {task['label_words']} must be single tokens; they give {data.candidates}")
    if args.split == "train":
        labels = np.array([e["label"] for e in data.train])
        examples = [data.train[i] for i in balanced_indices(labels, params["per_class"], args.data_seed)]
    else:
        examples = sorted(data.eval, key=lambda e: len(e["input_ids"]))  # fewer pads per batch
    batch = collate(examples, tokenizer.pad_token_id)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["label"]
    read = read_positions(ids, mask, tokenizer.mask_token_id if spec["kind"] == "masked_lm" else None)
    label_ids = [c[0] for c in data.candidates]
    size = params["batch_size"]
    if args.layers == "last":
        block = LastLayerReadout(model, label_ids).eval()
        batches = last_layer_inputs(model, ids, mask, read, size)
    else:
        block = PromptReadout(model, label_ids).eval()
        batches = [(ids[i:i + size], mask[i:i + size], read[i:i + size]) for i in range(0, len(ids), size)]
    features = block_features(block, block.targets, batches, labels)
    features.save(args.out)
    accuracy = float((features.f0.argmax(-1) == labels).double().mean())
    print(f"{args.task} {args.split}: {len(labels)} examples, zero-shot accuracy {accuracy:.3f}, "
          f"G ranks {[u.shape[-1] for u, _ in features.factors.values()]}")


if __name__ == "__main__":
    main()
