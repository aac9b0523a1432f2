"""Figures 4 and 5: the full-width factorization against its compression, side by side in one job.

For each seed: GD on the original depth-L, width-d factorization (method `original`) and — from the same
initialisation — on the compressed factorization (9)/(11) of width 2r for every γ in `gammas` (method
`compressed`, setting `gamma=<γ>`; γ = 0 freezes the outer factors). The compressed model's time includes
its setup (one full gradient and one SVD). Without a mask (`observed: null`) this is deep matrix
factorization (Figure 4), with one deep matrix completion (Figure 5).

The runs advance in turn, a block of steps each (`interleave`), so that each run's wall time — counting
only its own blocks — is measured under the same load of a shared machine.

Per run: iterations and seconds to the run's tolerance, final loss (and recovery error); the end-to-end
matrices at the checks are kept (thinned to `max_snapshots`) to give the coordinates of every trajectory
on the top principal components of the original's (uncentred), and the distance ‖f(t) − f_C(t)‖²
to the original at common steps, against Proposition 2.2's bound (d − 2r)·∏ε_l². The original's record
also carries the throughput of its GD loop and of a plain matrix product of the same size, sampled at
each of its checks.

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
from lorarepro.problems.deep_factorization import (
    Check,
    chain_gradients,
    end_to_end,
    interleave,
    step_flops,
)
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


class MatmulProbe:
    """Throughput of a plain d×d·d×d float64 product, sampled at every check of the run it monitors, so
    that it is measured under the same machine load as the GD loop it is compared with."""

    def __init__(self, d: int, device: torch.device, reps: int = 6):
        gen = torch.Generator().manual_seed(0)
        self.a, self.b = (torch.randn(d, d, generator=gen, dtype=common.DTYPE).to(device) for _ in range(2))
        self.c = torch.empty_like(self.a)
        self.reps, self.flops, self.seconds = reps, 0, 0.0

    def __call__(self, check: Check) -> None:
        start = time.perf_counter()
        for _ in range(self.reps):
            torch.matmul(self.a, self.b, out=self.c)
        self.c[0, 0].item()  # waits for the device
        self.seconds += time.perf_counter() - start
        self.flops += 2 * self.a.shape[0] ** 3 * self.reps

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9


def descent(factors, problem, steps, params, tol, offset=0.0, probe: MatmulProbe | None = None):
    """A single-trial `Descent` with its log and its snapshots (and a matmul probe beside it)."""
    snaps = Snapshots(params["check_every"], params["max_snapshots"])

    def also(check: Check) -> None:
        snaps(check)
        if probe is not None:
            probe(check)

    return (*common.logged_descent(factors, problem, steps, params, tol=tol, offset=offset, also=also), snaps)


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
    params, out, device, problem = common.start(__doc__)
    d, rank, depth, eps, step = params["d"], params["rank"], params["depth"], params["eps"], params["step"]
    target_norm_sq = problem.target.square().sum().item()
    bound = (d - 2 * rank) * eps ** (2 * depth)
    k = params["components"]
    for seed in common.seeds_of(params):
        factors = common.init_trials([seed], d=d, width=d, depth=depth, eps=eps, device=device)
        runs = {}
        with Stopwatch(device.type) as watch:
            probe = MatmulProbe(d, device)
            runs[("original", None)] = descent(factors, problem, [step] * depth, params, params["tol"]["original"],
                                               probe=probe)
            for gamma in params["gammas"]:
                start = time.perf_counter()
                grad_first = chain_gradients(factors, problem.grad_output(end_to_end(factors)))[0]
                compressed = compress(factors[0], grad_first, end_to_end(factors), rank=rank, scales=[eps] * depth)
                setup = time.perf_counter() - start
                runs[("compressed", gamma)] = descent(compressed.factors, problem, discrepant_steps(step, gamma, depth),
                                                      params, params["tol"]["compressed"], offset=setup)
            interleave(*(run for run, _, _ in runs.values()))
        runtime = watch.runtime()
        _, _, reference = runs[("original", None)]
        directions = principal_directions(reference.stacked()[1], k)
        for (method, gamma), (run, log, snaps) in runs.items():
            reached = run.reached[0].item()
            metrics = log.metrics(0, reached)
            trace = log.trace(0)
            kept, snapshots = snaps.stacked()
            coords = pd.DataFrame(project(snapshots, directions).numpy(), columns=[f"pc{i + 1}" for i in range(k)])
            coords["step"] = kept
            if method == "original":
                flops = step_flops(factors, [step] * depth)
                gd_gflops = flops * run.step / run.elapsed / 1e9
                metrics.update(step_flops=flops, gd_gflops=gd_gflops, matmul_gflops=probe.gflops,
                               gd_matmul_efficiency=gd_gflops / probe.gflops)
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
