"""One leaderboard job: every method of one task, in one process (train/job.py).

    python -m lorarepro.experiments.leaderboard.run --params <json> --task stsb --threads 1

Each run writes its own record: per method, a learning-rate sweep at the sweep seed scored on the
validation split; the rate with the best validation score; every seed at that rate scored on the
held-out split (the sweep seed's run is the sweep's own, scored on the held-out split only once it
was selected). A short unrecorded run first pays the process's one-time costs.
"""

from __future__ import annotations

import time
from pathlib import Path

from lorarepro.config import seeds_of
from lorarepro.device import resolve_device
from lorarepro.experiments.cli import job_parser
from lorarepro.experiments.leaderboard.grid import (PAPER, SELECTED, engine_params, lr_folder, lr_grid,
                                                  task_methods)
from lorarepro.report.leaderboard import select_rate
from lorarepro.seeding import seed_everything
from lorarepro.train.job import load_job, record, run, warm_up
from lorarepro.train.loop import evaluate


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
            record(root / method / lr_folder(lr) / f"seed={sweep_seed}", PAPER, params, metrics, runtime, result, scale)
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
        record(root / method / SELECTED / f"seed={sweep_seed}", PAPER, final, {**trained, **held_out, **selection},
               runtime, result, scale)
        for seed in seeds_of(settings):
            if seed == sweep_seed:
                continue
            params = engine_params(settings, task, method, lr, seed, settings["report_split"])
            _, result, metrics, runtime = run(job, params, job.held_out, args.threads)
            record(root / method / SELECTED / f"seed={seed}", PAPER, params, {**metrics, **selection}, runtime, result, scale)
        print(f"  {method}: selected lr={lr:g}", flush=True)


if __name__ == "__main__":
    main()
