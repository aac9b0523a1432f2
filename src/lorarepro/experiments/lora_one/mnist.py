"""Figure 1(c): an 8→128→5 bias-free ReLU net pretrained on odd MNIST digits, then fine-tuned on
even digits by Full FT, LoRA and LoRA-One (the setup of PiSSA's loss-landscape code).

Pixels are standardised and reduced to 8 PCA dimensions fitted on all images used; labels are
digit // 2. Each method's effective-weight path is projected onto the top-2 principal directions of
the Full-FT path, and the loss is evaluated on a grid in that plane for the contour plot.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lorarepro.adapters.matrix_inits import lora_one_init
from lorarepro.data.materialize import load_split
from lorarepro.experiments.cli import parse_args
from lorarepro.io import write_parquet
from lorarepro.records import Stopwatch, run_dir, write_run


def load_digits(folder: str, n_odd: int, n_even: int, seed: int):
    frame = pd.concat([load_split(folder, s) for s in ("train", "validation", "test")], ignore_index=True)
    rng = np.random.default_rng(seed)
    odd = frame[frame.label % 2 == 1].sample(n=min(n_odd, int((frame.label % 2 == 1).sum())), random_state=rng)
    even = frame[frame.label % 2 == 0].sample(n=min(n_even, int((frame.label % 2 == 0).sum())), random_state=rng)
    pixels = np.stack(pd.concat([odd, even]).pixels.to_numpy()).astype(np.float64) / 255.0
    x = torch.from_numpy((pixels - 0.1307) / 0.3081)
    x = x - x.mean(0)
    _, _, Vh = torch.linalg.svd(x, full_matrices=False)
    features = x @ Vh[:8].T
    labels = torch.from_numpy(np.concatenate([odd.label.to_numpy(), even.label.to_numpy()]) // 2)
    return (features[: len(odd)], labels[: len(odd)]), (features[len(odd):], labels[len(odd):])


def loss_of(weights: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    W1, W2 = weights
    return F.cross_entropy(torch.relu(x @ W1.transpose(-2, -1)) @ W2.transpose(-2, -1), y)


def kaiming_uniform(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """nn.Linear's (and PEFT lora_A's) default init: kaiming_uniform with a = √5."""
    bound = 1.0 / math.sqrt(cols)
    return (torch.rand(rows, cols, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def adam_path(params: list[torch.Tensor], effective, x, y, steps: int, lr: float):
    """Adam on `params`; returns the loss and the flattened effective weights at every step."""
    params = [q.clone().requires_grad_() for q in params]
    opt = torch.optim.Adam(params, lr=lr)
    losses, path = [], []
    for step in range(steps + 1):
        weights = effective(params)
        loss = loss_of(weights, x, y)
        losses.append(float(loss.detach()))
        path.append(torch.cat([w.detach().reshape(-1) for w in weights]))
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return np.array(losses), torch.stack(path)


def main() -> None:
    args = parse_args(__doc__, inputs=True)
    p = args.params
    r, steps, lr = p["r"], p["finetune_steps"], p["lr"]
    scaling = p["lora_alpha"] / r
    for seed in p["seed_list"]:
        (x_odd, y_odd), (x_even, y_even) = load_digits(args.inputs[0], p["pretrain_samples"], p["finetune_samples"], seed)
        gen = torch.Generator().manual_seed(seed)
        W0 = (kaiming_uniform(128, 8, gen), kaiming_uniform(5, 128, gen))
        _, pre_path = adam_path(list(W0), tuple, x_odd, y_odd, p["pretrain_steps"], lr)
        W_pre = (pre_path[-1][: 128 * 8].reshape(128, 8), pre_path[-1][128 * 8:].reshape(5, 128))

        W = [w.clone().requires_grad_() for w in W_pre]
        loss_of(W, x_even, y_even).backward()
        one = [lora_one_init(-w.grad, r, scale=p["one_scale"], svd_method="full") for w in W]
        default = [(kaiming_uniform(r, w.shape[1], gen), torch.zeros(w.shape[0], r, dtype=torch.float64)) for w in W_pre]

        def lora_effective(params):
            A1, B1, A2, B2 = params
            return W_pre[0] + scaling * B1 @ A1, W_pre[1] + scaling * B2 @ A2

        starts = {"full_ft": (list(W_pre), tuple), "lora": ([*default[0], *default[1]], lora_effective),
                  "lora_one": ([*one[0], *one[1]], lora_effective)}
        results = {}
        for method, (params, effective) in starts.items():
            with Stopwatch() as sw:
                losses, path = adam_path(params, effective, x_even, y_even, steps, lr)
            results[method] = (losses, path, sw.runtime())

        # The plane of the Full-FT path: its top-2 principal directions, origin at the pretrained weights.
        origin = pre_path[-1]
        full_path = results["full_ft"][1]
        _, _, Vh = torch.linalg.svd(full_path - full_path.mean(0), full_matrices=False)
        directions = Vh[:2]
        projected = {m: ((path - origin) @ directions.T).numpy() for m, (_, path, _) in results.items()}
        for method, (losses, path, runtime) in results.items():
            xy = projected[method]
            metrics = {"final_loss": float(losses[-1]), "initial_loss": float(losses[0]),
                       "mean_path_distance": float(np.linalg.norm(xy - projected["full_ft"], axis=1).mean())}
            out = run_dir(args.root, "lora_one", "fig1c", method, "base", seed)
            write_run(out, paper="lora_one", experiment="fig1c", method=method, seed=seed, scale=p["scale"],
                      params={k: p[k] for k in ("r", "lora_alpha", "lr", "pretrain_steps", "finetune_steps",
                                                "pretrain_samples", "finetune_samples", "one_scale")},
                      metrics=metrics, runtime=runtime,
                      trace={"step": np.arange(len(losses)), "loss": losses, "x": xy[:, 0], "y": xy[:, 1]})
        write_parquet(run_dir(args.root, "lora_one", "fig1c", "full_ft", "base", seed) / "landscape.parquet",
                      landscape(projected, origin, directions, x_even, y_even, p["grid"]))


def landscape(projected: dict, origin, directions, x, y, size: int) -> pd.DataFrame:
    """Loss on a size×size grid of the projection plane, covering every path with a margin."""
    points = np.concatenate(list(projected.values()))
    lo, hi = points.min(0), points.max(0)
    pad = 0.25 * (hi - lo) + 1e-3
    us, vs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], size), np.linspace(lo[1] - pad[1], hi[1] + pad[1], size)
    grid = torch.tensor(np.array(np.meshgrid(us, vs, indexing="ij")).reshape(2, -1).T)
    flat = origin + grid @ directions
    weights = (flat[:, : 128 * 8].reshape(-1, 128, 8), flat[:, 128 * 8:].reshape(-1, 5, 128))
    logits = torch.relu(x @ weights[0].transpose(-2, -1)) @ weights[1].transpose(-2, -1)
    losses = F.cross_entropy(logits.permute(0, 2, 1), y.expand(len(flat), -1), reduction="none").mean(1)
    return pd.DataFrame({"x": grid[:, 0].numpy(), "y": grid[:, 1].numpy(), "loss": losses.numpy()})


if __name__ == "__main__":
    main()
