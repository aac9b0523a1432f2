"""Figures 4 and 5: the full-width factorization against its compression, side by side in one job.

For each seed: GD on the original depth-L, width-d factorization (method `original`), then — from the same
initialisation — the compressed factorization (9)/(11) of width 2r for every γ in `gammas` (method
`compressed`, setting `gamma=<γ>`; γ = 0 freezes the outer factors). Both run in this process, one after
the other, so their wall times are comparable on a shared machine; the compressed model's time includes
its setup (one full gradient and one SVD). Without a mask (`observed: null`) this is deep matrix
factorization (Figure 4), with one deep matrix completion (Figure 5).

Per run: iterations and seconds to the run's tolerance, final loss (and recovery error); the end-to-end
matrices at the checks are kept (thinned to `max_snapshots`) to give the coordinates of every trajectory
on the top principal components of the original's (uncentred), and the distance ‖f(t) − f_C(t)‖²
to the original at common steps, against Proposition 2.2's bound (d − 2r)·∏ε_l². The original's record
also carries the throughput of its GD loop and of a plain matrix product of the same size, measured here.

    python -m lorarepro.experiments.deep_lora.trajectories --params '{...}' --out results/deep_lora/fig4
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch

from lorarepro.adapters.compression import compress, discrepant_steps
from lorarepro.experiments.deep_lora import common
from lorarepro.metrics.dynamics import principal_directions, project
from lorarepro.problems.deep_factorization import Check, chain_gradients, descend, end_to_end, step_flops
from lorarepro.records import Stopwatch


class Snapshots:
    """End-to-end matrices at checks, on the CPU, thinned to at most `limit` by keeping every `stride`-th
    check and doubling the stride when full (runs with the same check interval keep common steps)."""

    def __init__(self, check_every: int, limit: int):
        self.check_every, self.limit, self.stride = check_every, limit, 1
        self.kept: dict[int, torch.Tensor] = {}
        self.last: tuple[int, torch.Tensor] | None = None

    def __call__(self, check: Check) -> None:
        self.last = (check.step, check.output[0].to("cpu", copy=True))
        if (check.step // self.check_every) % self.stride == 0:
            self.kept[check.step] = self.last[1]
        if len(self.kept) > self.limit:
            self.stride *= 2
            self.kept = {s: x for s, x in self.kept.items() if (s // self.check_every) % self.stride == 0}

    def stacked(self) -> tuple[list[int], torch.Tensor]:
        steps = sorted(self.kept)
        return steps, torch.stack([self.kept[s] for s in steps])


def run(factors, problem, steps, params, tol, offset=0.0):
    """One GD run of a single trial, logged and snapshotted."""
    log, snaps = common.TrialLog(problem, 1, offset), Snapshots(params["check_every"], params["max_snapshots"])

    def monitor(check: Check) -> None:
        log(check)
        snaps(check)

    reached = descend(factors, problem, steps, iters=params["max_iters"], check_every=params["check_every"],
                      tol=tol, monitor=monitor)
    return log, snaps, reached[0].item()


def matmul_gflops(d: int, device: torch.device, seconds: float = 1.0) -> float:
    """Throughput of a plain d×d·d×d float64 product on this device, as a yardstick for the GD loop."""
    a = torch.randn(d, d, dtype=common.DTYPE, device=device)
    b = torch.randn(d, d, dtype=common.DTYPE, device=device)
    c = a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            torch.matmul(a, b, out=c)
        reps += 10
        c.sum().item()  # waits for the device
    return 2 * d**3 * reps / (time.perf_counter() - start) / 1e9


def distances(original: Snapshots, other: Snapshots, target_norm_sq: float, bound: float) -> tuple[dict, dict]:
    """‖f(t) − f_C(t)‖² at the common steps (a trace column) and its summary metrics."""
    common_steps = sorted(set(original.kept) & set(other.kept))
    dist = {s: (original.kept[s] - other.kept[s]).square().sum().item() for s in common_steps}
    worst = max(dist.values()) if dist else float("nan")
    final = (original.last[1] - other.last[1]).norm().item() / math.sqrt(target_norm_sq)
    return dist, {
        "dist_sq_max": worst,
        "dist_sq_max_rel": worst / target_norm_sq,
        "prop22_bound": bound,
        "prop22_ratio": worst / bound,
        "final_rel_distance": final,
    }


def main() -> None:
    args = common.parse_args(__doc__)
    params, out = args.params, args.out
    d, rank, depth, eps, step = params["d"], params["rank"], params["depth"], params["eps"], params["step"]
    device = common.device_of(params)
    problem = common.make_problem(params, device)
    target_norm_sq = problem.target.square().sum().item()
    bound = (d - 2 * rank) * eps ** (2 * depth)
    k = params["components"]
    for seed in common.seeds_of(params):
        factors = common.init_trials([seed], d=d, width=d, depth=depth, eps=eps, device=device)
        runs = {}
        with Stopwatch(device.type) as watch:
            log, snaps, reached = run(factors, problem, [step] * depth, params, params["tol"]["original"])
            runs[("original", None)] = (log, snaps, reached)
            reference = snaps
            flops = step_flops(factors, [step] * depth) * log.metrics(0, reached)["iterations"]
            gd_gflops = flops / log.metrics(0, reached)["wall_s"] / 1e9
            for gamma in params["gammas"]:
                start = time.perf_counter()
                grad_first = chain_gradients(factors, problem.grad_output(end_to_end(factors)))[0]
                compressed = compress(factors[0], grad_first, end_to_end(factors), rank=rank,
                                      scales=[eps] * depth)
                setup = time.perf_counter() - start
                runs[("compressed", gamma)] = run(compressed.factors, problem, discrepant_steps(step, gamma, depth),
                                                  params, params["tol"]["compressed"], offset=setup)
        runtime = watch.runtime()
        directions = principal_directions(reference.stacked()[1], k)
        for (method, gamma), (log, snaps, reached) in runs.items():
            metrics = log.metrics(0, reached)
            trace = log.trace(0)
            kept, snapshots = snaps.stacked()
            coords = pd.DataFrame(project(snapshots, directions).numpy(), columns=[f"pc{i + 1}" for i in range(k)])
            coords["step"] = kept
            if method == "original":
                matmul = matmul_gflops(d, device)
                metrics.update(step_flops=step_flops(factors, [step] * depth), gd_gflops=gd_gflops,
                               matmul_gflops=matmul, gd_matmul_efficiency=gd_gflops / matmul)
            else:
                dist, summary = distances(reference, snaps, target_norm_sq, bound)
                metrics.update(summary)
                coords["dist_sq"] = coords["step"].map(dist)
            setting = {} if gamma is None else {"gamma": gamma}
            common.write_record(out, method=method, setting=setting, seed=seed,
                                params=params, metrics=metrics, runtime=runtime,
                                trace=trace.merge(coords, on="step", how="left"),
                                diverged_at=log.diverged_at(0))


if __name__ == "__main__":
    main()
