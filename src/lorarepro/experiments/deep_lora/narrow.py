"""Figure 10 (App. D.1): compressed against narrow random factorizations in deep matrix completion.

For each seed and each overestimated rank r̂: the compression (11) of a full-width orthogonal
initialisation to width 2r̂, trained with discrepant step γη on its outer factors (method `compressed`),
and a randomly initialised factorization of the same width 2r̂, orthogonal at the same scale ε (method
`narrow`), both until the training loss is below `tol`. They advance in turn, a block of steps each
(`interleave`), so that their wall times are measured under the same load; the compressed model's
includes its setup. The compressed record also carries its iterations and seconds relative to the
narrow run of the same seed and r̂.

    python -m lorarepro.experiments.deep_lora.narrow --params '{...}' --out results/deep_lora/fig10
"""

from __future__ import annotations

import time

from lorarepro.adapters.compression import compress, discrepant_steps, narrow_factors
from lorarepro.experiments.deep_lora import common
from lorarepro.problems.deep_factorization import chain_gradients, end_to_end, interleave
from lorarepro.records import Stopwatch


def main() -> None:
    params, out, device, problem = common.start(__doc__)
    d, depth, eps, step = params["d"], params["depth"], params["eps"], params["step"]
    for seed in common.seeds_of(params):
        for rank_hat in params["ranks"]:
            with Stopwatch(device.type) as watch:
                start = time.perf_counter()
                full = common.init_trials([seed], d=d, width=d, depth=depth, eps=eps, device=device)
                grad_first = chain_gradients(full, problem.grad_output(end_to_end(full)))[0]
                compressed = compress(full[0], grad_first, end_to_end(full), rank=rank_hat, scales=[eps] * depth)
                setup = time.perf_counter() - start
                narrow = [w.unsqueeze(0).to(device) for w in narrow_factors(
                    d, d, rank_hat, depth, eps, generator=common.generator(seed, "narrow"), dtype=common.DTYPE)]
                runs = {"compressed": common.logged_descent(compressed.factors, problem,
                                                            discrepant_steps(step, params["gamma"], depth),
                                                            params, tol=params["tol"], offset=setup),
                        "narrow": common.logged_descent(narrow, problem, [step] * depth, params, tol=params["tol"])}
                interleave(*(run for run, _ in runs.values()))
            metrics = {method: log.metrics(0, run.reached[0].item()) for method, (run, log) in runs.items()}
            mine, theirs = metrics["compressed"], metrics["narrow"]
            mine["iters_vs_narrow"] = mine["iters_to_tol"] / theirs["iters_to_tol"]
            mine["wall_speedup_vs_narrow"] = theirs["wall_s_to_tol"] / mine["wall_s_to_tol"]
            for method, (_, log) in runs.items():
                common.write_record(out, method=method, setting={"rank_hat": rank_hat}, seed=seed,
                                    params={**params, "overestimate": rank_hat - params["rank"]},
                                    metrics=metrics[method], runtime=watch.runtime(), trace=log.trace(0),
                                    diverged_at=log.diverged_at(0))


if __name__ == "__main__":
    main()
