"""Figure 3 and Theorem 2.1: the SVD of every layer of a deep factorization along plain GD.

Theorem 2.1: d − 2r* singular values of each W_l(t) equal ρ_l(t) of recursion (6), and their singular
subspaces never move. Per step and layer we take the d − 2r* singular values nearest ρ_l(t) and record
their worst relative deviation from ρ_l(t), and the largest principal angle of their left and right
singular subspaces with those at t = 1 (at t = 0 every singular value is ε, so t = 1 is the first time the
subspaces are defined). The trace holds layer 1's spectrum and singular-vector angles for the figure.

    python -m lorarepro.experiments.deep_lora.svd_dynamics --params '{...}' --out results/deep_lora/fig3
"""

from __future__ import annotations

import pandas as pd
import torch

from lorarepro.experiments.deep_lora import common
from lorarepro.metrics.dynamics import block_relative_error, nearest_block, singular_vector_angles
from lorarepro.problems.deep_factorization import descend, rho_recursion
from lorarepro.records import Stopwatch


def layer_dynamics(weights: torch.Tensor, rho: torch.Tensor, block_size: int) -> dict[str, torch.Tensor]:
    """SVD of one layer over time (T, d, d) against its ρ(t): spectrum, invariant block, angles, errors."""
    u, s, vh = torch.linalg.svd(weights)
    block = nearest_block(s, rho, block_size)
    return {
        "sigma": s,
        "block": block,
        "rel_error": block_relative_error(s, rho, block),
        "angle_v": singular_vector_angles(vh.mT, block),
        "angle_u": singular_vector_angles(u, block),
    }


def main() -> None:
    params, out, device, problem = common.start(__doc__)
    d, depth, eps, step, iters = params["d"], params["depth"], params["eps"], params["step"], params["iters"]
    seeds = common.seeds_of(params)
    factors = common.init_trials(seeds, d=d, width=d, depth=depth, eps=eps, device=device)
    history = []
    with Stopwatch(device.type) as watch:
        descend(factors, problem, [step] * depth, iters=iters, check_every=1,
                monitor=lambda check: history.append([w.to("cpu", copy=True) for w in check.factors]))
    # Recursion (6) is stated for the sum loss: its step is ours divided by the number of entries.
    rho = rho_recursion([eps] * depth, step / d**2, iters, params.get("weight_decay", 0.0))
    block_size = d - 2 * params["rank"]
    for i, seed in enumerate(seeds):
        layers = [layer_dynamics(torch.stack([h[l][i] for h in history]), rho[:, l], block_size)
                  for l in range(depth)]
        after_start = slice(1, None)  # angles are measured against t = 1
        metrics = {
            "rho_rel_error_max": max(lay["rel_error"].max().item() for lay in layers),
            "invariant_angle_max": max(
                max(lay[side][after_start].gather(1, lay["block"][after_start]).max().item()
                    for side in ("angle_u", "angle_v")) for lay in layers),
            "rho_final": rho[-1, 0].item(),
        }
        first = layers[0]
        steps, index = torch.meshgrid(torch.arange(iters + 1), torch.arange(d), indexing="ij")
        in_block = torch.zeros(iters + 1, d, dtype=torch.bool).scatter_(1, first["block"], True)
        trace = pd.DataFrame({
            "step": steps.flatten().numpy(), "index": index.flatten().numpy() + 1,
            "sigma": first["sigma"].flatten().numpy(), "rho": rho[:, 0].repeat_interleave(d).numpy(),
            "in_block": in_block.flatten().numpy(),
            "angle_v": first["angle_v"].flatten().numpy(), "angle_u": first["angle_u"].flatten().numpy(),
        })
        common.write_record(out, method="gd", setting={}, seed=seed, params=params,
                            metrics=metrics, runtime=watch.runtime(seeds_in_job=len(seeds)), trace=trace)


if __name__ == "__main__":
    main()
