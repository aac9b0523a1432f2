"""Figure 1(c), stage 2: fine-tune the pretrained net on even digits with Full FT, LoRA and LoRA-One,
and project the three weight trajectories onto the plane of the Full-FT path.

    --inputs <checkpoint.pt from stage 1>   --outputs <landscape.parquet>
LoRA adapts both layers (rank r, scaling α/r) from PEFT's default init (lora_A ~ U(±1/√in), lora_B = 0);
LoRA-One re-initialises the same adapters by Algorithm 1 from the full-batch gradient at the
pretrained weights. Every method takes the same optimizer, step size and number of steps.
The plane is PiSSA's: origin at the Full-FT endpoint, axes the top-2 principal directions of the
Full-FT path; every method's effective weights W + (α/r)·BA are projected onto it at every step.
The loss over a grid of that plane is written for the contour plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.matrix_inits import lora_one_init
from lorarepro.experiments.cli import parse_args
from lorarepro.experiments.lora_one.common import write_records
from lorarepro.experiments.lora_one.mnist import fit, unflatten
from lorarepro.io import write_parquet
from lorarepro.models.mlp import mlp_accuracy, mlp_loss
from lorarepro.records import Stopwatch


def adapted(base: list[torch.Tensor], scaling: float):
    """weights_of for LoRA parameters [A₁, B₁, A₂, B₂, …]: W_l + scaling·B_l A_l."""
    def weights_of(params):
        return [W + scaling * B @ A for W, A, B in zip(base, params[0::2], params[1::2])]
    return weights_of


def lora_default(base: list[torch.Tensor], r: int, generator: torch.Generator) -> list[torch.Tensor]:
    params = []
    for W in base:
        out_f, in_f = W.shape
        params += [(torch.rand(r, in_f, generator=generator, dtype=W.dtype) * 2 - 1) / in_f ** 0.5,
                   W.new_zeros(out_f, r)]
    return params


def lora_one(base: list[torch.Tensor], r: int, scale: float, x, y) -> list[torch.Tensor]:
    weights = [W.clone().requires_grad_() for W in base]
    grads = torch.autograd.grad(mlp_loss(x, y, weights), weights)
    params = []
    for G in grads:
        A, B = lora_one_init(-G, r, scale=scale, svd_method="full")
        params += [A, B]
    return params


def plane_coordinates(paths: dict[str, torch.Tensor]):
    """Origin (Full-FT endpoint), the top-2 principal directions of the Full-FT path, and every path's
    coordinates in that plane (one row per step)."""
    full = paths["full_ft"]
    origin = full[-1]
    centred = full - full.mean(0)
    _, _, Vh = torch.linalg.svd(centred.double(), full_matrices=False)
    directions = Vh[:2].to(full.dtype)
    return origin, directions, {m: (path - origin) @ directions.T for m, path in paths.items()}


def landscape(origin, directions, coords, shapes, x, y, *, points: int, margin: float, chunk: int = 64):
    """The loss on a points×points grid of the plane, spanning every projected path plus a margin."""
    allc = torch.cat(list(coords.values()))
    lo, hi = allc.min(0).values, allc.max(0).values
    pad = margin * (hi - lo).clamp_min(1e-3)
    axes = [torch.linspace(float(lo[k] - pad[k]), float(hi[k] + pad[k]), points, dtype=origin.dtype) for k in range(2)]
    gx, gy = torch.meshgrid(*axes, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    losses = torch.cat([mlp_loss(x, y, unflatten(origin + g @ directions, shapes)) for g in grid.split(chunk)])
    return pd.DataFrame({"x": grid[:, 0].numpy(), "y": grid[:, 1].numpy(), "loss": losses.numpy()})


def main() -> None:
    args = parse_args(__doc__, inputs=True, outputs=True)
    p = args.params
    torch.set_num_threads(p["threads"])
    seed = p["seed"]
    torch.manual_seed(seed)
    ckpt = torch.load(args.inputs[0])
    base, x, y = ckpt["weights"], ckpt["x"], ckpt["y"]
    shapes = [W.shape for W in base]
    train = dict(steps=p["finetune_steps"], lr=p["lr"], optimizer=p["optimizer"])
    with Stopwatch() as sw:
        lora_fn = adapted(base, p["lora_alpha"] / p["r"])
        runs = {"full_ft": fit(base, list, x, y, **train),
                "lora": fit(lora_default(base, p["r"], torch.Generator().manual_seed(seed)), lora_fn, x, y, **train),
                "lora_one": fit(lora_one(base, p["r"], p["lora_one_scale"], x, y), lora_fn, x, y, **train)}
        paths = {m: path for m, (path, _) in runs.items()}
        origin, directions, coords = plane_coordinates(paths)
        with torch.no_grad():
            grid = landscape(origin, directions, coords, shapes, x, y, points=p["grid_points"], margin=p["grid_margin"])
    write_parquet(args.outputs[0], grid)
    for method, (path, losses) in runs.items():
        metrics = {
            "initial_loss": float(losses[0]),
            "final_loss": float(losses[-1]),
            "final_accuracy": float(mlp_accuracy(x, y, unflatten(path[-1], shapes))),
            "path_distance_to_full_ft": float((coords[method] - coords["full_ft"]).norm(dim=1).mean()),
            "param_distance_to_full_ft": float((path - paths["full_ft"]).norm(dim=1).mean()),
        }
        trace = {"step": np.arange(len(losses)), "loss": losses, "x": coords[method][:, 0].numpy(),
                 "y": coords[method][:, 1].numpy()}
        write_records(args.root, "fig1c", method, "base", seed, p,
                      params={k: p[k] for k in ("dataset", "n_pretrain", "n_finetune", "finetune_steps", "lr",
                                                "optimizer", "r", "lora_alpha", "lora_one_scale", "dtype")},
                      metrics=metrics, trace=trace, runtime=sw.runtime())


if __name__ == "__main__":
    main()
