"""Fine-tune a linearised model from its NTK features: LoRA at every rank (seeds batched) and full
fine-tuning by proximal gradient, on one task; plus the convex problem's optimum F* by FISTA.

Writes one run record per (method, rank, seed) with a per-epoch trace of the regularised training
objective L̂(δ) + λ·pen (pen = ½Σ(‖A‖²+‖B‖²) for LoRA, Σ‖δ‖_* for full fine-tuning), the loss and the
accuracies; and a `summary` record per task with the quantities that compare the runs (rate vs rank).

    python -m lorarepro.experiments.ntk_lora.fit --params '{...}' --experiment fig2 --task mr-13 --train train.pt \
        [--test test.pt] --root results
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from lorarepro.config import format_setting
from lorarepro.metrics.spectral import numerical_rank
from lorarepro.models.ntk_features import Features, ReducedFeatures, reduce
from lorarepro.optim.prox import nuclear_norm
from lorarepro.optim.regularized import FullState, LoraState, cross_entropy_nuclear_dual, fista, lora_gd, proximal_gd
from lorarepro.records import Stopwatch, first_nonfinite, run_dir, write_run
from lorarepro.experiments.ntk_lora.runs import Tracer, epochs_to, lora_init, rank_thresholds

PAPER = "ntk_lora"
RANK_RTOL = 1e-6  # numerical rank of δ: singular values above 1e-6·σ_1 (spec §2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--experiment", required=True, help="fig2, fig3, fig4 or nsweep: where the records go")
    parser.add_argument("--task", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test")
    parser.add_argument("--root", required=True, help="results folder; runs go to <root>/ntk_lora/<experiment>/...")
    args = parser.parse_args(argv)
    params = json.loads(args.params)  # lr, weight_decay and batch_size already resolved for this task
    weight_decay = params["weight_decay"]
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
    gram_top = float(torch.linalg.eigvalsh(reduced.gram())[-1])
    lipschitz = gram_top / (2 * n)  # of the mean CE's gradient in δ: the CE Hessian in the logits is ≤ ½ I
    # The authors' lr multiplies a loss summed over the batch; `step_fraction` instead sets the full-batch
    # step to that fraction of 1/Lipschitz (the synthetic problems, whose scale is arbitrary).
    lr = params["lr"] if "lr" in params else params["step_fraction"] / (lipschitz * n)
    common = {"task": args.task, "lr": lr, "weight_decay": weight_decay, "epochs": epochs, "batch_size": batch_size,
              "mode": mode, "n_samples": n, "classes": k, "r_ex": r_ex, "r_nsm": r_nsm,
              "trained": sorted(shapes), "layers": params.get("layers", "last")}

    def record(method, setting, seed, metrics, trace, watch, seeds_in_job=1, extra=None):
        out = run_dir(args.root, PAPER, args.experiment, method, format_setting(setting), seed)
        diverged = None if trace is None else first_nonfinite(trace["objective"].to_numpy(), trace["step"].to_numpy())
        write_run(out, paper=PAPER, experiment=args.experiment, method=method, seed=seed, scale=params["scale"],
                  params={**common, **setting, **(extra or {})}, metrics=metrics, trace=trace,
                  runtime=watch.runtime(seeds_in_job=seeds_in_job), diverged_at=diverged)

    def zeros():
        return FullState({name: torch.zeros(g.shape[-2:], dtype=torch.float64) for name, g in reduced.gamma.items()})

    def final_metrics(state, trace, run=0):
        loss, grads, logits = reduced.objective(state.deltas())
        objective = loss + weight_decay * state.penalty()
        finite = torch.isfinite(logits).flatten(-2).all(-1)  # per run; a diverged run has no dual bound
        grads = {k: torch.where(finite[..., None, None], g, 0.0) for k, g in grads.items()}
        dual = cross_entropy_nuclear_dual(torch.where(finite[..., None, None], logits, reduced.f0), reduced.f0,
                                          reduced.labels, grads, weight_decay)
        dual = torch.where(finite, dual, math.nan)
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
            best, iterations = fista(reduced.objective, zeros(), step=1.0 / lipschitz, weight_decay=weight_decay,
                                     tol=params["reference"]["tol"], max_iter=params["reference"]["max_iter"])
            tracer = Tracer(reduced.objective, reduced.labels, weight_decay)
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
        tracer = Tracer(reduced.objective, reduced.labels, weight_decay,
                        None if test is None else lambda s: test.outputs(
                            {name: (reduced.bases[name][0] @ m, reduced.bases[name][1].T) for name, m in s.delta.items()}),
                        None if test is None else test.labels, eval_every)
        state = zeros()
        tracer(0, state)
        proximal_gd(reduced.objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n,
                    batch_size=batch_size, mode=mode, callback=tracer)
        trace = tracer.frame(0)
        full = final_metrics(state, trace)
        ranks = [_rank(d) for d in state.delta.values()]
        full.update({"solution_rank": max(ranks), **{f"solution_rank_{name}": r for name, r in zip(state.delta, ranks)},
                     "rel_gap": gap(full["final_objective"]), "epochs_to_tol": epochs_to(trace, f_star * (1 + params["rate_tol"])),
                     "sqrt_n": math.sqrt(n)})
        if reference:
            full["distance_to_reference"] = _distance(state.delta, reference[1].delta)
    record("full", {"task": args.task}, 0, full, trace, watch)

    # --- LoRA at every rank, seeds batched ------------------------------------------------------------
    seeds = params["seed_list"]
    epochs_by_rank, test_accuracy = {}, {}
    for rank in params["ranks"]:
        with Stopwatch() as watch:
            state, a0 = lora_init(reduced, rank, seeds, shapes)
            initial_idle = state.a_idle_sq.clone()

            def lift(s, a0=a0, initial_idle=initial_idle):
                shrink = torch.sqrt(s.a_idle_sq / initial_idle.clamp_min(1e-300))
                return {name: reduced.lift_lora(name, s.b[name], s.a[name], a0[name], shrink) for name in s.b}

            tracer = Tracer(reduced.objective, reduced.labels, weight_decay,
                            None if test is None else lambda s, lift=lift: test.outputs(lift(s)),
                            None if test is None else test.labels, eval_every)
            tracer(0, state)
            lora_gd(reduced.objective, state, lr=lr, weight_decay=weight_decay, epochs=epochs, n=n,
                    batch_size=batch_size, mode=mode, callback=tracer)
            lifted = lift(state)
        for i, seed in enumerate(seeds):
            trace = tracer.frame(i)
            metrics = final_metrics(state, trace, i)
            products = {name: b[i] @ a[i] for name, (b, a) in lifted.items()}
            nuclear = sum(float(nuclear_norm(p)) if torch.isfinite(p).all() else math.nan for p in products.values())
            metrics.update({
                "rel_gap": gap(metrics["final_objective"]),
                "rel_to_full": (metrics["final_objective"] - full["final_objective"]) / full["final_objective"],
                "abs_rel_to_full": abs(metrics["final_objective"] - full["final_objective"]) / full["final_objective"],
                "epochs_to_tol": epochs_to(trace, f_star * (1 + params["rate_tol"])),
                "grad_norm": _factor_grad_norm(reduced, state, weight_decay, mode, i),
                # Lemma 2.2: at a stationary point ½(‖A‖² + ‖B‖²) = Σ‖BA‖_*
                "balancedness_gap_rel": abs(metrics["final_penalty"] - nuclear) / max(nuclear, 1e-300),
                "solution_rank": max(_rank(p) for p in products.values()),
            })
            if reference:
                reduced_products = {name: state.b[name][i] @ state.a[name][i] for name in state.b}
                metrics["distance_to_reference"] = _distance(reduced_products, reference[1].delta)
            epochs_by_rank.setdefault(rank, []).append(metrics["epochs_to_tol"])
            test_accuracy.setdefault(rank, []).append(metrics.get("final_test_acc", float("nan")))
            record("lora", {"task": args.task, "r": rank}, seed, metrics, trace, watch, len(seeds),
                   {"above_threshold": rank >= r_nsm})

    # --- per-task summary: does the rate improve with the rank? -----------------------------------------
    with Stopwatch() as watch:
        medians = [_median_or_inf(epochs_by_rank[r]) for r in sorted(epochs_by_rank)]
        fastest = min(medians) if medians else float("inf")
        full_epochs = full["epochs_to_tol"] if not math.isnan(full["epochs_to_tol"]) else float("inf")
        summary = {
            "rate_violations": sum(later > earlier for earlier, later in zip(medians, medians[1:])),
            "full_rate_ratio": full_epochs / fastest if math.isfinite(fastest) else float("nan"),
            "full_solution_rank": full["solution_rank"],
            "reference_solution_rank": reference[0]["solution_rank"] if reference else float("nan"),
            "r_ex": r_ex, "r_nsm": r_nsm, "f_star": f_star, "ntk_gram_top": gram_top,
            **_test_gap(test_accuracy, full.get("final_test_acc")),
            "feature_load_s": load_watch.wall_s,
        }
    record("summary", {"task": args.task}, 0, summary, None, watch)


def _rank(delta: torch.Tensor) -> float:
    """Numerical rank of an update (NaN for a diverged run)."""
    return float(numerical_rank(delta, RANK_RTOL)) if torch.isfinite(delta).all() else math.nan


def _test_gap(lora: dict[int, list[float]], full: float | None) -> dict:
    """Figure 4's comparison: |LoRA − full| final test accuracy in points (median over seeds, worst rank),
    and whether it is within 2 points (claim C6)."""
    if full is None or not lora:
        return {}
    gap = max(abs(float(np.median(accs)) - full) for accs in lora.values()) * 100
    return {"test_acc_gap_points": gap, "test_acc_within_2_points": float(gap <= 2.0)}


def _median_or_inf(values) -> float:
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
