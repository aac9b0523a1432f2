"""Figure 1(c), stage 1: pretrain the 8→128→5 net on odd digits; keep the even-digit fine-tuning set.

    --inputs <materialised MNIST folder>   --outputs <checkpoint.pt>
The run record (method `pretrain`) sits beside the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lorarepro.experiments.cli import parse_args
from lorarepro.experiments.lora_one.common import write_records
from lorarepro.experiments.lora_one.mnist import fit, odd_even_features, unflatten
from lorarepro.io import atomic_path
from lorarepro.models.mlp import init_mlp, mlp_accuracy
from lorarepro.records import Stopwatch


def main() -> None:
    args = parse_args(__doc__, inputs=True, outputs=True)
    p = args.params
    torch.set_num_threads(p["threads"])
    seed, dtype = p["seed"], getattr(torch, p["dtype"])
    torch.manual_seed(seed)
    with Stopwatch() as sw:
        (x_odd, y_odd), (x_even, y_even) = odd_even_features(
            args.inputs[0], p["split"], p["n_pretrain"], p["n_finetune"], p["pca_dim"],
            rng=np.random.default_rng(seed), dtype=dtype)
        weights = init_mlp([p["pca_dim"], p["hidden"], 5], generator=torch.Generator().manual_seed(seed), dtype=dtype)
        path, losses = fit(weights, list, x_odd, y_odd, steps=p["pretrain_steps"], lr=p["lr"],
                           optimizer=p["optimizer"])
        weights = unflatten(path[-1], [W.shape for W in weights])
    out = Path(args.outputs[0])
    with atomic_path(out) as tmp:
        torch.save({"weights": weights, "x": x_even, "y": y_even}, tmp)
    write_records(args.root, "fig1c", "pretrain", "base", seed, p,
                  params={k: p[k] for k in ("dataset", "split", "n_pretrain", "n_finetune", "pca_dim", "hidden",
                                            "pretrain_steps", "lr", "optimizer", "dtype")},
                  metrics={"final_loss": float(losses[-1]),
                           "train_accuracy": float(mlp_accuracy(x_odd, y_odd, weights))},
                  trace={"step": np.arange(len(losses)), "loss": losses}, runtime=sw.runtime())


if __name__ == "__main__":
    main()
