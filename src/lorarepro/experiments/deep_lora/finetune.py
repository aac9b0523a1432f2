"""Deep LoRA vs vanilla LoRA on a language model (Figures 6, 7, 8, Table 2): one method at one setting
(training-set size n, rank r), every seed in one job, each seed a fine-tuning run of the engine with its own
record. (α = r: LoRA's scale α/r is 1 at every rank, as the paper.)

Within a seed both methods see the same training subset (drawn with the seed) and the same evaluation
subset. After training, the numerical rank of every adapted layer's update ΔW (Figure 7) goes into the
record (median, share of rank 0, ...) and, per layer, into `layers.parquet` beside it.

    python -m lorarepro.experiments.deep_lora.finetune --params '{...}' --method deep --n 16 --r 8 \
        --out results/deep_lora/fewshot --threads 2 --data-root resources/data --models-root resources/models
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.build import delta_weights
from lorarepro.config import format_setting
from lorarepro.io import write_parquet
from lorarepro.metrics.spectral import matrix_rank
from lorarepro.train.run import finetune

PAPER = "deep_lora"
RANK_ATOL = 1e-8  # the paper's numerical rank: singular values above 1e-8 (and NumPy's relative tolerance)
TOP_SINGULAR_VALUES = 10


def layer_ranks(model: torch.nn.Module, out_dir: Path) -> dict:
    """Numerical rank and top singular values of every learned ΔW: per layer into layers.parquet, summaries
    (median, mean, min, max, share of rank 0) into the record."""
    rows = []
    for name, delta in sorted(delta_weights(model, dtype=torch.float64).items()):
        delta = delta.cpu()
        sigma = torch.linalg.svdvals(delta)[:TOP_SINGULAR_VALUES]
        rows.append({"layer": name, "rank": int(matrix_rank(delta, atol=RANK_ATOL)),
                     "norm": sigma[0].item(), **{f"sigma_{i + 1}": v for i, v in enumerate(sigma.tolist())}})
    frame = pd.DataFrame(rows)
    write_parquet(out_dir / "layers.parquet", frame)
    ranks = frame["rank"].to_numpy()
    return {"rank_median": float(np.median(ranks)), "rank_mean": float(ranks.mean()), "rank_min": int(ranks.min()),
            "rank_max": int(ranks.max()), "rank_zero_share": float((ranks == 0).mean()), "adapted_layers": len(ranks)}


def run_params(params: dict, experiment: str, method: str, n: int, r: int, seed: int, threads: int) -> dict:
    """The engine's parameters of one run: the experiment's model/task/train blocks, the method's adapter
    (on the experiment's targets, at rank r, α = r) and optimizer, and a training subset of n pairs drawn
    with the seed. A Deep LoRA `width: r` is the authors' narrow variant of width r."""
    spec = copy.deepcopy(params["methods"][method])
    adapter = {**spec["adapter"], "r": r, "alpha": r, "targets": params["targets"]}
    options = adapter.get("init_options") or {}
    if options.get("width") == "r":
        adapter["init_options"] = {**options, "width": r}
    task = {**params["task"], "train_size": n, "subset_seed": seed}
    return {"paper": PAPER, "experiment": experiment, "method": method, "seed": seed,
            "scale": params["scale"], "device": params.get("device", "auto"), "threads": threads,
            "model": params["model"], "task": task, "adapter": adapter, "optimizer": spec["optimizer"],
            "train": {**params["train"], "batch_size": min(n, params["train"]["batch_size"])},
            "n": n, "r": r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="JSON object of resolved settings")
    parser.add_argument("--method", required=True)
    parser.add_argument("--n", type=int, required=True, help="training examples")
    parser.add_argument("--r", type=int, required=True, help="adapter rank")
    parser.add_argument("--out", type=Path, required=True,
                        help="the experiment's folder of run records, named after the experiment")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args()
    params = args.params
    seeds = params["seeds"]
    for seed in range(seeds) if isinstance(seeds, int) else seeds:
        run = run_params(params, args.out.name, args.method, args.n, args.r, seed, args.threads)
        folder = args.out / args.method / format_setting({"n": args.n, "r": args.r}) / f"seed={seed}"
        finetune(run, folder, data_root=args.data_root, models_root=args.models_root,
                 probe=lambda model: layer_ranks)


if __name__ == "__main__":
    main()
