"""Figure 9 (§5): the gradient of a ReLU factorization at initialisation is nearly low-rank.

For f = W_3·σ(W_2·σ(W_1)) (input I) at orthogonal init of scale ε and a rank-r* target, the singular
values of ∇_{W_2}ℓ, per seed. The metrics are the gap σ_{r*}/σ_{r*+1}, the next ratio σ_{r*+1}/σ_{r*+2},
the index of the largest ratio of consecutive values among the top GAP_WINDOW·r* (further down the
spectrum decays towards rounding level, where such ratios mean nothing), and how closely one of the top
r* + 1 right singular vectors follows the all-ones direction: σ(W_1) ≥ 0 has a nonzero mean, which puts
a constant direction into the gradient [h(W_2σ(W_1)) ⊙ W_3ᵀE]·σ(W_1)ᵀ beside the r* directions of the
target.

    python -m lorarepro.experiments.deep_lora.nonlinear_gradient --params '{...}' --out results/deep_lora/fig9
"""

from __future__ import annotations

import pandas as pd
import torch

from lorarepro.experiments.deep_lora import common
from lorarepro.problems.deep_factorization import nonlinear_end_to_end
from lorarepro.records import Stopwatch

GAP_WINDOW = 4  # the largest gap is sought among the top GAP_WINDOW·r* singular values


def main() -> None:
    params, out, device, problem = common.start(__doc__)
    d, rank, depth = params["d"], params["rank"], params["depth"]
    seeds = common.seeds_of(params)
    with Stopwatch(device.type) as watch:
        factors = [w.requires_grad_() for w in common.init_trials(
            seeds, d=d, width=d, depth=depth, eps=params["eps"], device=device)]
        problem.loss(nonlinear_end_to_end(factors)).sum().backward()
        _, sigma, vh = torch.linalg.svd(factors[params["layer"] - 1].grad)
        # |cos| between each of the top r* + 1 right singular vectors and the constant direction 1/√d.
        ones_cosine = (vh[:, : rank + 1, :].sum(-1) / d**0.5).abs().cpu()
        sigma = sigma.cpu()
    for i, seed in enumerate(seeds):
        s = sigma[i]
        head = s[: min(GAP_WINDOW * rank, d - 1) + 1]
        ratios = head[:-1] / head[1:]
        metrics = {"gap_ratio": (s[rank - 1] / s[rank]).item(), "tail_ratio": (s[rank] / s[rank + 1]).item(),
                   "sigma_max": s[0].item(), "ones_cosine_max": ones_cosine[i].max().item(),
                   "ones_cosine_index": int(ones_cosine[i].argmax()) + 1,
                   "largest_gap_index": int(ratios.argmax()) + 1, "largest_gap_ratio": ratios.max().item()}
        trace = pd.DataFrame({"step": 0, "index": range(1, len(s) + 1), "sigma": s.numpy()})
        common.write_record(out, method="relu", setting={}, seed=seed, params=params,
                            metrics=metrics, runtime=watch.runtime(seeds_in_job=len(seeds)), trace=trace)


if __name__ == "__main__":
    main()
