"""Figure 2: depth and width in overparameterized matrix completion.

For one depth L (method `depth<L>`) and every width of the sweep, GD from orthogonal init at scale ε on a
masked low-rank target until the training loss is below `tol` (or `max_iters`), all seeds as one batch.
Per run: the iterations to `tol` and the recovery error when the training loss crossed `tol` (interpolated
between the checks around it; at the end for runs that never get there), and — against the same seed at
the next narrower width — the ratios of both, so that "iterations fall with width" is a per-run number.

    python -m lorarepro.experiments.deep_lora.width --params '{...}' --method depth3 --out results/deep_lora/fig2
"""

from __future__ import annotations

import math

from lorarepro.experiments.deep_lora import common
from lorarepro.problems.deep_factorization import descend
from lorarepro.records import Stopwatch


def main() -> None:
    params, out, device, problem = common.start(__doc__)
    method = params["method"]
    depth, step = params["methods"][method]["depth"], params["methods"][method]["step"]
    seeds = common.seeds_of(params)
    previous = None
    for width in sorted(params["widths"]):
        factors = common.init_trials(seeds, d=params["d"], width=width, depth=depth, eps=params["eps"],
                                     device=device)
        log = common.TrialLog(problem, len(seeds), tol=params["tol"])
        with Stopwatch(device.type) as watch:
            reached = descend(factors, problem, [step] * depth, iters=params["max_iters"],
                              check_every=params["check_every"], tol=params["tol"], monitor=log)
        current = [log.metrics(i, reached[i].item()) for i in range(len(seeds))]
        for i, seed in enumerate(seeds):
            metrics = current[i]
            metrics["iters_vs_narrower"] = _ratio(metrics, previous[i] if previous else None, "iters_to_tol")
            metrics["recovery_vs_narrower"] = _ratio(metrics, previous[i] if previous else None,
                                                     "recovery_error")
            common.write_record(out, method=method, setting={"width": width}, seed=seed,
                                params={**params, "depth": depth, "step": step}, metrics=metrics,
                                runtime=watch.runtime(seeds_in_job=len(seeds)), trace=log.trace(i),
                                diverged_at=log.diverged_at(i))
        previous = current


def _ratio(metrics: dict, narrower: dict | None, key: str) -> float:
    """metrics[key] / narrower[key] (NaN at the narrowest width or where either is missing)."""
    if narrower is None or math.isnan(narrower[key]) or math.isnan(metrics[key]) or narrower[key] == 0:
        return float("nan")
    return metrics[key] / narrower[key]


if __name__ == "__main__":
    main()
