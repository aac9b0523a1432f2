"""Fine-tune a linearised model from its NTK features: LoRA at every rank (seeds batched) and full
fine-tuning by proximal gradient, on one task; plus the convex problem's optimum F* by FISTA.

Writes one run record per (method, rank, seed) with a per-epoch trace of the regularised training
objective L̂(δ) + λ·pen (pen = ½Σ(‖A‖²+‖B‖²) for LoRA, Σ‖δ‖_* for full fine-tuning), the loss and the
accuracies; and a `summary` record per task with the quantities that compare the runs (rate vs rank).

    python -m lorarepro.experiments.ntk_lora.fit --params '{...}' --task mr-13 --train train.pt \
        [--test test.pt] --root results
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import torch

from lorarepro.config import format_setting
from lorarepro.metrics.spectral import numerical_rank
from lorarepro.models.ntk_features import Features, ReducedFeatures, reduce
from lorarepro.optim.prox import nuclear_norm
from lorarepro.optim.regularized import FullState, LoraState, cross_entropy_nuclear_dual, fista, lora_gd, proximal_gd
from lorarepro.records import Stopwatch, run_dir, write_run
from lorarepro.seeding import seed_everything

PAPER = "ntk_lora"
RANK_RTOL = 1e-6  # numerical rank of δ: singular values above 1e-6·σ_1 (spec §2)


def rank_thresholds(n_samples: int, outputs: int) -> tuple[int, int]:
    """(r_ex, r_nsm): the largest r with r(r+1)/2 ≤ KN (Theorem 3.1: a global minimiser of this rank
    exists) and the smallest with r(r+1)/2 > KN (Theorem 4.1: no spurious second-order stationary points)."""
    kn = n_samples * outputs
    r_nsm = math.ceil((math.sqrt(8 * kn + 1) - 1) / 2)
    while r_nsm * (r_nsm + 1) // 2 <= kn:
        r_nsm += 1
    return r_nsm - 1, r_nsm


class Tracer:
    """Per-epoch objective, loss and accuracies of a batch of runs (leading dimension: seeds)."""

    def __init__(self, train: ReducedFeatures, weight_decay: float, test: Features | None, eval_every: int,
                 lift_for_test):
        self.train, self.weight_decay, self.test, self.eval_every = train, weight_decay, test, eval_every
        self.lift_for_test = lift_for_test  # state -> {name: (X, Y)} with δ = X Y in the weights' own shape
        self.rows: list[dict[str, np.ndarray]] = []

    def __call__(self, epoch: int, state) -> None:
        loss, _, logits = self.train.objective(state.deltas())
        row = {"step": epoch, "loss": loss.numpy().copy(),
               "objective": (loss + self.weight_decay * state.penalty()).numpy().copy(),
               "train_acc": (logits.argmax(-1) == self.train.labels).double().mean(-1).numpy().copy()}
        if self.test is not None and (epoch % self.eval_every == 0 or epoch == 0):
            scores = self.test.outputs(self.lift_for_test(state))
            row["test_acc"] = (scores.argmax(-1) == self.test.labels).double().mean(-1).numpy().copy()
        self.rows.append(row)

    def frame(self, run: int) -> pd.DataFrame:
        """The trace of one run of the batch."""
        return pd.DataFrame([{k: (v if k == "step" else float(np.atleast_1d(v)[run])) for k, v in row.items()}
                             for row in self.rows])


def epochs_to(trace: pd.DataFrame, target: float) -> float:
    """The first epoch whose objective is ≤ target (NaN if none)."""
    hit = trace.loc[trace["objective"] <= target, "step"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def lora_init(reduced: ReducedFeatures, rank: int, seeds: list[int], shapes: dict[str, tuple[int, int]]):
    """The authors' init, drawn per seed: A ~ N(0, (1/(√r·n_in))²), B = 0, in reduced coordinates."""
    a0 = {}
    for name, (m, n) in shapes.items():
        draws = []
        for seed in seeds:
            _, gen = seed_everything(seed * 1009 + rank)
            draws.append(torch.randn(rank, n, generator=gen, dtype=torch.float64) / (math.sqrt(rank) * n))
        a0[name] = torch.stack(draws)
    reduced_a, idle = {}, torch.zeros(len(seeds), dtype=torch.float64)
    for name in shapes:
        reduced_a[name], idle_sq = reduced.reduce_lora_init(name, a0[name])
        idle = idle + idle_sq
    b = {name: torch.zeros(len(seeds), reduced.gamma[name].shape[-2], rank, dtype=torch.float64) for name in shapes}
    return LoraState(b, reduced_a, idle), a0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test")
    parser.add_argument("--root", required=True, help="results folder; runs go to <root>/ntk_lora/<experiment>/...")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    task = params["tasks"][args.task] if "tasks" in params else {}
    lr, weight_decay = task.get("lr", params.get("lr")), task.get("weight_decay", params["weight_decay"])
    torch.set_num_threads(params.get("threads", 1))

    with Stopwatch() as load_watch:
        features = Features.load(args.train)
        reduced = reduce(features)
        test = Features.load(args.test) if args.test else None
    n, k = features.f0.shape
    r_ex, r_nsm = rank_thresholds(n, k)
    shapes = {name: (u.shape[-2], v.shape[-2]) for name, (u, v) in features.factors.items()}
    epochs, batch_size, mode = params["epochs"], params.get("batch_size", n), params["mode"]
    eval_every = params.get("eval_every", 1)
    common = {"task": args.task, "lr": lr, "weight_decay": weight_decay, "epochs": epochs, "batch_size": batch_size,
              "mode": mode, "n_samples": n, "classes": k, "r_ex": r_ex, "r_nsm": r_nsm,
              "trained": sorted(shapes), "layers": params.get("layers", "last")}
    gram_top = float(torch.linalg.eigvalsh(reduced.gram())[-1])

    def record(method, setting, seed, metrics, trace, watch, seeds_in_job=1, extra=None):
        out = run_dir(args.root, PAPER, params["experiment"], method, format_setting(setting), seed)
        diverged = trace["objective"].pipe(lambda s: s[~np.isfinite(s)])
        write_run(out, paper=PAPER, experiment=params["experiment"], method=method, seed=seed, scale=params["scale"],
                  params={**common, **setting, **(extra or {})}, metrics=metrics, trace=trace,
                  runtime=watch.runtime(seeds_in_job=seeds_in_job),
                  diverged_at=int(trace.loc[diverged.index[0], "step"]) if len(diverged) else None)

    def zeros():
        return FullState({name: torch.zeros(g.shape[-2:], dtype=torch.float64) for name, g in reduced.gamma.items()})

    def final_metrics(state, trace, run=0):
        loss, grads, logits = reduced.objective(state.deltas())
        objective = loss + weight_decay * state.penalty()
        dual = cross_entropy_nuclear_dual(logits, reduced.f0, reduced.labels, grads, weight_decay)
        pick = (lambda t: float(t.reshape(-1)[run]) if t.ndim else float(t))
        out = {"final_objective": pick(objective), "final_loss": pick(loss), "final_penalty": pick(state.penalty()),
               "duality_gap_rel": (pick(objective) - pick(dual)) / pick(objective),
               "final_train_acc": float(trace["train_acc"].iloc[-1])}
        if "test_acc" in trace:
            out["final_test_acc"] = float(trace["test_acc"].dropna().iloc[-1])
        return out

    # --- the convex problem's optimum F* (the reference every curve should reach) -------------------
    reference = None
    if params.get("reference") and weight_decay > 0:
        with Stopwatch() as watch:
            step = 1.0 / (gram_top / (2 * n))  # the CE Hessian in the logits is ≤ ½ I
            best, iterations = fista(reduced.objective, zeros(), step=step, weight_decay=weight_decay,
                                     tol=params["reference"]["tol"], max_iter=params["reference"]["max_iter"])
            tracer = Tracer(reduced, weight_decay, None, eval_every, None)
            tracer(iterations, best)
            trace = tracer.frame(0)
            metrics = final_metrics(best, trace)
            ranks = [int(numerical_rank(d, RANK_RTOL)) for d in best.delta.values()]
            metrics.update({"iterations": iterations, "solution_rank": max(ranks),
                            **{f"solution_rank_{name}": r for name, r in zip(best.delta, ranks)}})
        reference = (metrics, best)
        record("reference", {"task": args.task}, 0, metrics, trace, watch)
    f_star = reference[0]["final_objective"] if reference else float("nan")

    def gap(value):
        return (value - f_star) / f_star if reference else float("nan")

    # --- full fine-tuning: proximal gradient with SVT -------------------------------------------------
    with Stopwatch() as watch:
        tracer = Tracer(reduced, weight_decay, test, eval_every,
                        lambda s: {name: (reduced.bases[name][0] @ m, reduced.bases[name][1].T)
                                   for name, m in s.delta.items()} if test is not None else None)
        state = zeros()
        tracer(0, state)
        proximal_gd(reduced.objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n,
                    batch_size=batch_size, mode=mode, callback=tracer)
        trace = tracer.frame(0)
        full = final_metrics(state, trace)
        ranks = [int(numerical_rank(d, RANK_RTOL)) for d in state.delta.values()]
        full.update({"solution_rank": max(ranks), **{f"solution_rank_{name}": r for name, r in zip(state.delta, ranks)},
                     "rel_gap": gap(full["final_objective"]), "epochs_to_tol": epochs_to(trace, f_star * (1 + params["rate_tol"])),
                     "sqrt_n": math.sqrt(n)})
        if reference:
            full["distance_to_reference"] = _distance(state.delta, reference[1].delta)
    record("full", {"task": args.task}, 0, full, trace, watch)

    # --- LoRA at every rank, seeds batched ------------------------------------------------------------
    seeds = params["seed_list"]
    epochs_by_rank = {}
    for rank in params["ranks"]:
        with Stopwatch() as watch:
            state, a0 = lora_init(reduced, rank, seeds, shapes)
            initial_idle = state.a_idle_sq.clone()

            def lift(s, a0=a0, initial_idle=initial_idle):
                shrink = torch.sqrt(s.a_idle_sq / initial_idle.clamp_min(1e-300))
                return {name: reduced.lift_lora(name, s.b[name], s.a[name], a0[name], shrink) for name in s.b}

            tracer = Tracer(reduced, weight_decay, test, eval_every, lift if test is not None else None)
            tracer(0, state)
            lora_gd(reduced.objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n,
                    batch_size=batch_size, mode=mode, callback=tracer)
            lifted = lift(state)
        for i, seed in enumerate(seeds):
            trace = tracer.frame(i)
            metrics = final_metrics(state, trace, i)
            products = {name: b[i] @ a[i] for name, (b, a) in lifted.items()}
            nuclear = sum(float(nuclear_norm(p)) for p in products.values())
            metrics.update({
                "rel_gap": gap(metrics["final_objective"]),
                "rel_to_full": (metrics["final_objective"] - full["final_objective"]) / full["final_objective"],
                "epochs_to_tol": epochs_to(trace, f_star * (1 + params["rate_tol"])),
                "grad_norm": _factor_grad_norm(reduced, state, weight_decay, mode, i),
                # Lemma 2.2: at a stationary point ½(‖A‖² + ‖B‖²) = Σ‖BA‖_*
                "balancedness_gap_rel": abs(metrics["final_penalty"] - nuclear) / max(nuclear, 1e-300),
                "solution_rank": max(int(numerical_rank(p, RANK_RTOL)) for p in products.values()),
            })
            if reference:
                reduced_products = {name: state.b[name][i] @ state.a[name][i] for name in state.b}
                metrics["distance_to_reference"] = _distance(reduced_products, reference[1].delta)
            epochs_by_rank.setdefault(rank, []).append(metrics["epochs_to_tol"])
            record("lora", {"task": args.task, "r": rank}, seed, metrics, trace, watch, len(seeds),
                   {"above_threshold": rank >= r_nsm})

    # --- per-task summary: does the rate improve with the rank? -----------------------------------------
    with Stopwatch() as watch:
        medians = [_median_or_inf(epochs_by_rank[r], epochs) for r in sorted(epochs_by_rank)]
        fastest = min(medians) if medians else float("inf")
        full_epochs = full["epochs_to_tol"] if not math.isnan(full["epochs_to_tol"]) else float("inf")
        summary = {
            "rate_violations": sum(later > earlier for earlier, later in zip(medians, medians[1:])),
            "full_rate_ratio": full_epochs / fastest if math.isfinite(fastest) else float("nan"),
            "full_solution_rank": full["solution_rank"],
            "reference_solution_rank": reference[0]["solution_rank"] if reference else float("nan"),
            "r_ex": r_ex, "r_nsm": r_nsm, "f_star": f_star, "ntk_gram_top": gram_top,
            "feature_load_s": load_watch.wall_s,
        }
    record("summary", {"task": args.task}, 0, summary, pd.DataFrame({"step": [epochs]}), watch)


def _median_or_inf(values, epochs) -> float:
    """The median epochs to reach the target over seeds, counting runs that never reached it as ∞."""
    finite = [v if not math.isnan(v) else math.inf for v in values]
    return float(np.median(finite))


def _distance(deltas: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """‖δ − δ*‖_F / ‖δ*‖_F over all trained matrices (in reduced coordinates, which preserve the norm)."""
    num = sum(float((deltas[k] - reference[k]).square().sum()) for k in reference)
    den = sum(float(reference[k].square().sum()) for k in reference)
    return math.sqrt(num / den) if den > 0 else float("nan")


def _factor_grad_norm(reduced: ReducedFeatures, state: LoraState, weight_decay: float, mode: str, run: int) -> float:
    """‖∇_{(B, A)} F‖ of the regularised LoRA objective (without the decay in `code` mode, which drops it);
    the idle part of A contributes its decay gradient λ·A_idle."""
    _, grads, _ = reduced.objective(state.deltas())
    decay = weight_decay if mode == "paper" else 0.0
    total = decay**2 * float(state.a_idle_sq[run])
    for name, grad in grads.items():
        b, a = state.b[name][run], state.a[name][run]
        total += float((grad[run] @ a.T + decay * b).square().sum() + (b.T @ grad[run] + decay * a).square().sum())
    return math.sqrt(total)


if __name__ == "__main__":
    main()
