"""Many fine-tuning runs of one task in one process: the model is loaded and the task tokenised once
(with `cache_lower_layers`, the frozen lower layers run once per example too), then every run trains a
fresh copy through the engine (`train.run.attach_adapter`, the optimizer zoo, `train.loop`).

This is how the leaderboard and LoRA-One's language-model jobs amortise loading over a learning-rate
sweep and several methods and seeds. `runtime.wall_s` is each run's own time and `runtime.peak_rss_mb`
its own memory peak (records.Stopwatch); `runtime.job_setup_s` is the shared loading it did not pay.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from lorarepro.data.tasks import load_task
from lorarepro.models.load import MeanPooledHead
from lorarepro.models.top_layers import cache_lower_layers, top_layer_targets
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.records import Stopwatch, write_run
from lorarepro.seeding import seed_everything
from lorarepro.train.loop import TrainConfig, train
from lorarepro.train.objectives import make_objective
from lorarepro.train.run import attach_adapter, load, summarize


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
    """`settings["tasks"][task]` names the model and task; `selection_split` and `report_split` the two
    evaluation splits; `sweep_seed` the seed of the shared data split and tokenisation."""
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
    with Stopwatch(job.device) as watch:
        model = fresh_copy(job)
        adapter = dict(params["adapter"])
        if params.get("adapt_top"):
            adapter["targets"] = top_layer_targets(model, adapter["targets"], params["adapt_top"])
        model, info = attach_adapter(model, objective, adapter, seed=seed,
                                     model_kind=params["model"].get("kind", "encoder"))
        optimizer = build_optimizer(model, params["optimizer"])
        result = train(model, objective, optimizer, TrainConfig.from_dict(params["train"]), seed=seed)
    runtime = {**watch.runtime(), "job_setup_s": round(job.setup_s, 3)}
    return model, result, summarize(result, info), runtime


def warm_up(job: Job, params: Mapping[str, Any], threads: int) -> None:
    """One short, unrecorded run (of `params`, a run's engine parameters) before the timed ones: the first
    run in a process pays one-time costs (thread pools, allocator growth, kernel choice) that would
    otherwise inflate the wall time and peak memory of whichever method happens to run first."""
    params = {**params, "train": {**params["train"], "steps": 1, "eval_at_start": False}}
    objective = copy.copy(job.validation)
    objective.data = dataclasses.replace(objective.data, eval=objective.data.eval[:TrainConfig.eval_batch_size])
    run(job, params, objective, threads)


def record(out: Path, paper: str, params, metrics, runtime, result, scale: str) -> None:
    """One run's record; `result` is None for a run that did not train (no trace)."""
    write_run(out, paper=paper, experiment=params["experiment"], method=params["method"],
              seed=params["seed"], scale=scale, params=dict(params), metrics=metrics, runtime=runtime,
              trace=None if result is None else pd.DataFrame(result.trace),
              diverged_at=None if result is None else result.diverged_at)
