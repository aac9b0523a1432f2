"""One leaderboard job: every method of one task, in one process.

    python -m lorarepro.experiments.leaderboard.run --params <json> --task stsb --threads 1

The pretrained model is loaded and the task tokenised once; with `cache_lower_layers`, the frozen
lower layers run once per example too (models/top_layers.py). Each run then copies the loaded
model, attaches its adapter through the engine (`train.run.attach_adapter`), trains with the
engine's loop and writes its own record: per method, a learning-rate sweep at the sweep seed scored
on the validation split; the rate with the best validation score; every seed at that rate scored on
the held-out split (the sweep seed's run is the sweep's own, scored on the held-out split only once
it was selected). `runtime.wall_s` is the run's own time; `runtime.job_setup_s` is the shared
loading it did not pay. A short unrecorded run first pays the process's one-time costs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from lorarepro.config import seeds_of
from lorarepro.experiments.leaderboard.grid import (PAPER, SELECTED, engine_params, lr_folder, lr_grid,
                                                  task_methods)
from lorarepro.data.tasks import load_task
from lorarepro.models.load import MeanPooledHead
from lorarepro.models.top_layers import cache_lower_layers, top_layer_targets
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.records import Stopwatch, write_run
from lorarepro.report.leaderboard import select_rate
from lorarepro.seeding import seed_everything
from lorarepro.train.loop import TrainConfig, evaluate, train
from lorarepro.train.objectives import make_objective
from lorarepro.train.run import attach_adapter, load, resolve_device, summarize

CLEAR_REFS, STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")


def reset_peak_rss() -> bool:
    """Restart the kernel's resident-memory high-water mark, so each run reports its own peak."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    for line in STATUS.read_text().splitlines() if STATUS.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@dataclasses.dataclass
class Job:
    """What every run of a task shares: the loaded (and possibly truncated) model, the task on the
    validation split and on the held-out split, and their objectives."""

    model: Any
    validation: Any
    held_out: Any
    setup_s: float
    device: str


def load_job(settings: Mapping[str, Any], task: str, *, data_root: str, models_root: str, device: str) -> Job:
    start = time.perf_counter()
    spec, seed = settings["tasks"][task], int(settings.get("sweep_seed", 0))
    params = {"model": spec["model"], "task": {**spec["task"], "eval_split": settings["selection_split"]},
              "seed": seed, "device": device}
    model, tokenizer, data, objective = load(params, data_root=data_root, models_root=models_root)
    held = load_task({**params["task"], "eval_split": settings["report_split"]}, tokenizer,
                     model_kind=objective.model_kind, seed=seed, data_root=data_root)
    held_out = make_objective(dataclasses.replace(data, eval=held.eval), model_kind=objective.model_kind,
                              device=objective.device, tokenizer=tokenizer,
                              **({"max_new_tokens": objective.max_new_tokens} if data.kind == "generation" else {}))
    if spec.get("cache_lower_layers"):
        model = cache_lower_layers(model, data.train + data.eval + held.eval, adapt_top=spec["adapt_top"],
                                   pad_id=data.pad_id)
    return Job(model, objective, held_out, time.perf_counter() - start, str(objective.device))


def fresh_copy(job: Job):
    """A copy of the job's loaded model, with a new head from the (seeded) global generator."""
    model = copy.deepcopy(job.model)
    if isinstance(model, MeanPooledHead):
        model.reset_head()
    return model


def run(job: Job, params: Mapping[str, Any], objective, threads: int):
    """Copy the loaded model, attach the run's adapter, train; returns (model, result, metrics, runtime)."""
    seed = params["seed"]
    seed_everything(seed, threads=threads)
    tracked = reset_peak_rss()
    with Stopwatch(job.device) as watch:
        model = fresh_copy(job)
        adapter = dict(params["adapter"])
        if params.get("adapt_top"):
            adapter["targets"] = top_layer_targets(model, adapter["targets"], params["adapt_top"])
        model, info = attach_adapter(model, objective, adapter, seed=seed,
                                     model_kind=params["model"].get("kind", "encoder"))
        optimizer = build_optimizer(model, params["optimizer"])
        result = train(model, objective, optimizer, TrainConfig.from_dict(params["train"]), seed=seed)
    peak = peak_rss_mb() if tracked else None
    runtime = {**watch.runtime(), "job_setup_s": round(job.setup_s, 3),
               "run_peak_rss_mb": None if peak is None else round(peak, 1)}
    return model, result, summarize(result, info), runtime


def warm_up(job: Job, params: Mapping[str, Any], threads: int) -> None:
    """One short, unrecorded run (of `params`, a run's engine parameters) before the timed ones: the first
    run in a process pays one-time costs (thread pools, allocator growth, kernel choice) that would
    otherwise inflate the wall time and peak memory of whichever method happens to run first."""
    params = {**params, "train": {**params["train"], "steps": 1, "eval_at_start": False}}
    objective = copy.copy(job.validation)
    objective.data = dataclasses.replace(objective.data, eval=objective.data.eval[:TrainConfig.eval_batch_size])
    run(job, params, objective, threads)


def record(out: Path, params, metrics, runtime, result, scale: str) -> None:
    """One run's record; `result` is None for a run that did not train (no trace)."""
    write_run(out, paper=params.get("paper", PAPER), experiment=params["experiment"], method=params["method"],
              seed=params["seed"], scale=scale, params=dict(params), metrics=metrics, runtime=runtime,
              trace=None if result is None else pd.DataFrame(result.trace),
              diverged_at=None if result is None else result.diverged_at)


def job_parser(description: str) -> argparse.ArgumentParser:
    """The command line of a job that runs many engine runs of one task (settings JSON, task, folders)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the job's settings (JSON)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--root", default="results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    return parser


def main(argv=None) -> None:
    args = job_parser(__doc__).parse_args(argv)
    settings, task = args.params, args.task
    scale, device = settings["scale"], str(resolve_device(settings.get("device", "auto")))
    seed_everything(int(settings.get("sweep_seed", 0)), threads=args.threads)
    job = load_job(settings, task, data_root=args.data_root, models_root=args.models_root, device=device)
    primary = job.validation.data.primary_metric
    root = Path(args.root) / PAPER / task
    sweep_seed = int(settings.get("sweep_seed", 0))
    print(f"{task}: setup {job.setup_s:.1f} s; selecting on validation {primary}", flush=True)
    first = task_methods(settings, task)[0]
    first_lr = lr_grid(settings, first)[0]
    warm_up(job, engine_params(settings, task, first, first_lr, sweep_seed, settings["selection_split"]), args.threads)
    for method in task_methods(settings, task):
        scores, best = {}, None
        for lr in lr_grid(settings, method):
            params = engine_params(settings, task, method, lr, sweep_seed, settings["selection_split"])
            model, result, metrics, runtime = run(job, params, job.validation, args.threads)
            record(root / method / lr_folder(lr) / f"seed={sweep_seed}", params, metrics, runtime, result, scale)
            print(f"  {method} lr={lr:g}: validation {primary} {metrics.get(primary)}", flush=True)
            scores[lr] = metrics.get(primary)
            if select_rate(scores) == lr:  # keep only the model the sweep selects so far
                best = (lr, model, metrics, runtime, result, params)
        lr, model, metrics, runtime, result, params = best
        selection = {"selected_lr": lr, f"validation_{primary}": metrics.get(primary)}
        # The sweep seed's run at the selected rate, scored once on the held-out split.
        held_out, start = {}, time.perf_counter()
        if result.diverged_at is None:
            held_out = evaluate(model, job.held_out, job.held_out.data.eval, params["train"]["eval_batch_size"])
        runtime = {**runtime, "wall_s": round(runtime["wall_s"] + time.perf_counter() - start, 4)}
        final = {**params, "task": {**params["task"], "eval_split": settings["report_split"]}}
        validation_only = {f"{prefix}{m}" for m in job.validation.data.metrics for prefix in ("best_", "init_")}
        trained = {k: v for k, v in metrics.items() if k not in validation_only}
        record(root / method / SELECTED / f"seed={sweep_seed}", final, {**trained, **held_out, **selection},
               runtime, result, scale)
        for seed in seeds_of(settings):
            if seed == sweep_seed:
                continue
            params = engine_params(settings, task, method, lr, seed, settings["report_split"])
            _, result, metrics, runtime = run(job, params, job.held_out, args.threads)
            record(root / method / SELECTED / f"seed={seed}", params, {**metrics, **selection}, runtime, result, scale)
        print(f"  {method}: selected lr={lr:g}", flush=True)


if __name__ == "__main__":
    main()
