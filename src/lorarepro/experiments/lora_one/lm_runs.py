"""One job of LoRA-One's language-model experiments: every run of one task, in one process.

    python -m lorarepro.experiments.lora_one.lm_runs --params <json> --experiment table2 --task rotten_tomatoes

The model is loaded, the task tokenised and (with `cache_lower_layers`) the frozen lower layers run
once (train/job.py); each run then copies the model. Engine methods (LoRA, LoRA+, P-LoRA, PiSSA,
LoRA-GA, LoRA-One, LoRA-One-P) train through `train.job.run` (the engine's adapter, optimizer and
loop); the untrained rows of Table 2 are computed here:

- Pre-train: the pretrained encoder with its (seeded, untrained) head;
- one-step full gradient: W ← W₀ − η·∇W on every adapted layer and the head, ∇W averaged over the
  first `examples` training examples (the paper: a batch of 2048);
- its rank-r approximation: W ← W₀ − η·P_r(∇W) (the paper: a batch of 8, r = 8), i.e. Spectral-init
  with no training;
  η is the grid value with the least loss on the gradient batch (the authors' `search_eta`).

Every record's `score` is the task's primary metric (accuracy, or Pearson for STS-B), so claims can
average over tasks; `peak_mb` is the run's own resident-memory peak (the job's shared model included).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import torch

from lorarepro.adapters.gradient import target_linears, weight_gradients
from lorarepro.adapters.matrix_inits import top_svd
from lorarepro.config import deep_merge
from lorarepro.device import resolve_device
from lorarepro.experiments.cli import job_parser
from lorarepro.experiments.leaderboard.grid import engine_params
from lorarepro.experiments.lora_one.lm_grid import PAPER, is_trained, runs
from lorarepro.models.top_layers import top_layer_targets
from lorarepro.records import Stopwatch
from lorarepro.seeding import seed_everything
from lorarepro.train.job import Job, fresh_copy, load_job, record, run, warm_up
from lorarepro.train.loop import evaluate
from lorarepro.train.run import gradient_batches


def adapted_weights(model, spec: Mapping[str, Any]) -> dict[str, torch.nn.Parameter]:
    """The weights the adapters sit on (in the top `adapt_top` layers) and those of `train_modules`."""
    targets = list(spec["targets"])
    if spec.get("adapt_top"):
        targets = top_layer_targets(model, targets, spec["adapt_top"])
    return {name: m.weight for name, m in target_linears(model, targets + list(spec.get("train_modules", []))).items()}


@torch.no_grad()
def batch_loss(model, objective, batches) -> float:
    return float(sum(objective.loss(model, b) for b in batches) / len(batches))


def one_step(model, objective, spec: Mapping[str, Any], step: Mapping[str, Any], seed: int) -> dict[str, float]:
    """W₀ − η·∇W (or −η·P_r(∇W) with `rank`) in place, η from `etas` by the loss on the gradient batch."""
    weights = adapted_weights(model, spec)
    batches = gradient_batches(objective.data.train, step, seed)
    grads = weight_gradients(model, weights, batches, objective.loss)
    rank = step.get("rank")
    directions = {}
    for name, grad in grads.items():
        if rank:
            svd = top_svd(grad, int(rank))
            grad = (svd.U * svd.S.unsqueeze(-2)) @ svd.Vh
        directions[name] = -grad.to(weights[name].dtype)
    start = {name: w.detach().clone() for name, w in weights.items()}
    losses = {}
    for eta in step["etas"]:
        with torch.no_grad():
            for name, w in weights.items():
                w.copy_(start[name] + float(eta) * directions[name])
        losses[float(eta)] = batch_loss(model, objective, batches)
    best = min(losses, key=lambda eta: (losses[eta], eta))
    with torch.no_grad():
        for name, w in weights.items():
            w.copy_(start[name] + best * directions[name])
    return {"eta": best, "gradient_batch_loss": losses[best]}


def untrained(job: Job, settings: Mapping[str, Any], task: str, method: str, seed: int, threads: int):
    """Pre-train or a one-step update of a fresh copy of the job's model; returns (params, metrics, runtime)."""
    spec, values = settings["tasks"][task], settings["methods"][method]
    seed_everything(seed, threads=threads)
    with Stopwatch(job.device) as watch:
        model = fresh_copy(job)
        start = time.perf_counter()
        stepped = one_step(model, job.held_out, spec, values["one_step"], seed) if "one_step" in values else {}
        init_s = time.perf_counter() - start
        metrics = evaluate(model, job.held_out, job.held_out.data.eval, settings["train"]["eval_batch_size"])
    runtime = {**watch.runtime(), "job_setup_s": round(job.setup_s, 3)}
    params = {"paper": PAPER, "method": method, "seed": seed, "model": spec["model"],
              "task": {**spec["task"], "eval_split": settings["report_split"]}, "targets": spec["targets"],
              "adapt_top": spec.get("adapt_top"), **values}
    metrics = {**metrics, **stepped, "init_s": init_s, "trainable_params": 0, "peak_mb": runtime["peak_rss_mb"]}
    return params, metrics, runtime


def main(argv=None) -> None:
    parser = job_parser(__doc__)
    parser.add_argument("--experiment", required=True, choices=["table2", "fig6"])
    args = parser.parse_args(argv)
    settings, task = args.params, args.task
    experiment, scale = args.experiment, settings["scale"]
    # the leaderboard's loader reads the held-out split twice when both splits are the same; that is all
    settings = {**settings, "selection_split": settings["report_split"], "sweep_seed": 0,
                "methods": deep_merge(settings["methods"], settings["tasks"][task].get("method_options", {}))}
    seed_everything(0, threads=args.threads)
    job = load_job(settings, task, data_root=args.data_root, models_root=args.models_root,
                   device=str(resolve_device(settings.get("device", "auto"))))
    primary = job.held_out.data.primary_metric
    print(f"{experiment}/{task}: setup {job.setup_s:.1f} s; scoring test {primary}", flush=True)
    trained = [(method, lr, seed) for method, lr, _, seed in runs(settings, task)
               if is_trained(settings["methods"][method])]
    if trained:
        method, lr, seed = trained[0]
        warm_up(job, engine_params(settings, task, method, lr, seed, settings["report_split"]), args.threads)
    for method, lr, setting, seed in runs(settings, task):
        folder = Path(args.root) / PAPER / experiment / method / setting / f"seed={seed}"
        if is_trained(settings["methods"][method]):
            params = engine_params(settings, task, method, lr, seed, settings["report_split"])
            every = int(settings.get("eval_every", 0))  # a traced run (Figure 6) is scored from step 0
            params["train"].update(eval_every=every, eval_at_start=every > 0)
            model, result, metrics, runtime = run(job, params, job.held_out, args.threads)
            metrics["peak_mb"] = runtime["peak_rss_mb"]
        else:
            params, metrics, runtime = untrained(job, settings, task, method, seed, args.threads)
            result = None
        params = {**params, "paper": PAPER, "experiment": experiment, "task_name": task, "lr": lr}
        metrics["score"] = metrics.get(primary)
        record(folder, PAPER, params, metrics, runtime, result, scale)
        print(f"  {method} lr={lr} seed={seed}: {primary} {metrics.get(primary)}", flush=True)


if __name__ == "__main__":
    main()
