"""One fine-tuning run from its parameters to its run record: load the model and the task, attach and
initialise the adapter, train, evaluate, write `metrics.json` and `trace.parquet`.

The parameters (the JSON a rule passes) hold a block per concern:

    {"paper": "lora_one", "experiment": "glue", "method": "lora_one", "seed": 0, "scale": "default",
     "device": "auto", "threads": 2,
     "model":     {"name": "minilm_l6", "kind": "encoder", "head": "mean_pool"},
     "task":      {"dataset": "stsb", "kind": "regression", "max_length": 64},
     "adapter":   {"init": "lora_one", "r": 8, "alpha": 16, "targets": ["query", "value"],
                   "train_modules": ["head"], "gradient": {"examples": 8, "batch_size": 1}},
     "optimizer": {"name": "adamw", "lr": 1e-3},
     "train":     {"steps": 300, "batch_size": 16, "eval_every": 100}}

Metrics written: every task metric at the end (`pearson`), its best over the evaluations
(`best_pearson`) and its value at step 0 (`init_pearson`: zero-shot for function-preserving inits),
the mean training loss of the last 10% of steps, the init's wall time and share of the run, the
median step time and the number of trainable parameters.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.build import build_adapter
from lorarepro.data.tasks import load_task
from lorarepro.device import resolve_device
from lorarepro.models.load import load_model, load_tokenizer, resolve_model
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.records import Stopwatch, write_run
from lorarepro.seeding import seed_everything
from lorarepro.train.checkpoint import FILE as CHECKPOINT_FILE
from lorarepro.train.loop import TrainConfig, TrainResult, evaluate, train
from lorarepro.train.objectives import make_objective

TASK_TYPES = {"causal_lm": "CAUSAL_LM", "seq2seq_lm": "SEQ_2_SEQ_LM"}
# Task-block keys that configure a kind's objective rather than its data.
OBJECTIVE_OPTIONS = {"generation": ("stop",), "cloze": ("train_as", "score_batch")}
# A probe sees the adapted model before training; what it returns sees the trained model and its
# run folder, and gives extra metrics for the record.
Probe = Callable[[torch.nn.Module], Callable[[torch.nn.Module, Path], Mapping[str, Any]]]


def gradient_batches(train_examples, spec: Mapping[str, Any], seed: int) -> list[list[dict]]:
    """The examples a gradient-based init sees: the first `examples` (LoRA-One's code) or a seeded
    random sample, in batches of `batch_size` (1: one backward pass per example, as that code)."""
    n = min(int(spec.get("examples", 8)), len(train_examples))
    if spec.get("select", "first") == "first":
        chosen = list(range(n))
    else:
        chosen = np.random.default_rng(seed).choice(len(train_examples), n, replace=False).tolist()
    size = int(spec.get("batch_size", 1))
    return [[train_examples[i] for i in chosen[k: k + size]] for k in range(0, n, size)]


def load(params: Mapping[str, Any], *, data_root="resources/data", models_root="resources/models"):
    """Tokenizer, task, pretrained model and objective of a run, on its device: everything before the
    adapter (what a job running many adapters on one model and task loads once)."""
    device = resolve_device(params.get("device", "auto"))
    model_spec, task_spec = params["model"], params["task"]
    kind = model_spec.get("kind", "encoder")
    tokenizer = load_tokenizer(resolve_model(model_spec["name"], models_root))
    data, objective = task_objective(task_spec, tokenizer, model_kind=kind, device=device,
                                     seed=int(params.get("seed", 0)), data_root=data_root)
    model = load_model(model_spec, num_labels=data.num_labels, pad_token_id=tokenizer.pad_token_id,
                       models_root=models_root).to(device)
    return model, tokenizer, data, objective


def task_objective(task_spec: Mapping[str, Any], tokenizer, *, model_kind: str, device, seed: int = 0,
                   data_root="resources/data"):
    """A task block's data and objective for a model of `model_kind`."""
    data = load_task(task_spec, tokenizer, model_kind=model_kind, seed=seed, data_root=data_root)
    options = {key: task_spec[key] for key in OBJECTIVE_OPTIONS.get(data.kind, ()) if key in task_spec}
    if data.kind == "generation":
        options["max_new_tokens"] = task_spec.get("max_target_length", 64)
    return data, make_objective(data, model_kind=model_kind, device=device, tokenizer=tokenizer, **options)


def attach_adapter(model, objective, adapter_spec: Mapping[str, Any], *, seed: int, model_kind: str = "encoder"):
    """Attach and initialise the adapter; gradient-based inits read training batches of the objective's task."""
    batches = gradient_batches(objective.data.train, adapter_spec.get("gradient") or {}, seed)
    return build_adapter(model, adapter_spec, seed=seed, loss_fn=objective.loss, init_batches=batches,
                         task_type=TASK_TYPES.get(model_kind))


def setup(params: Mapping[str, Any], *, data_root="resources/data", models_root="resources/models"):
    """Model, tokenizer, task, objective and adapter of a run, on its device: everything but training."""
    seed = int(params.get("seed", 0))
    seed_everything(seed, threads=params.get("threads"))
    model, tokenizer, data, objective = load(params, data_root=data_root, models_root=models_root)
    model, info = attach_adapter(model, objective, params["adapter"], seed=seed,
                                 model_kind=params["model"].get("kind", "encoder"))
    return model, tokenizer, data, objective, info


def summarize(result, info) -> dict[str, Any]:
    """The record's metrics from a finished (or diverged) run."""
    metrics: dict[str, Any] = {"trainable_params": info.trainable_params, "init_s": info.init_s,
                               "steps_done": max((r["step"] for r in result.trace), default=0)}
    losses = [r["loss"] for r in result.trace if "loss" in r]
    if losses:
        tail = losses[-max(1, len(losses) // 10):]
        metrics["train_loss_last"] = float(np.mean(tail))
    step_times = [r["step_s"] for r in result.trace if "step_s" in r]
    if step_times:
        metrics["step_s_median"] = statistics.median(step_times)
        metrics["init_share"] = info.init_s / (info.init_s + sum(step_times))
    if result.evals:
        names = [k for k in result.evals[-1] if k != "step"]
        for name in names:
            values = [e[name] for e in result.evals if name in e]
            if result.diverged_at is None:
                metrics[name] = result.evals[-1][name]
            metrics[f"best_{name}"] = float(np.nanmax(values)) if not np.all(np.isnan(values)) else None
            if result.evals[0]["step"] == 0:
                metrics[f"init_{name}"] = result.evals[0][name]
    return metrics


def finetune(params: Mapping[str, Any], out_dir: str | os.PathLike, *, data_root="resources/data",
             models_root="resources/models", probe: Probe | None = None,
             also_evaluate: Mapping[str | os.PathLike, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Run one fine-tuning job and write its record into `out_dir`; returns the record.

    `probe(model)`, if given, sees the adapted model before training and returns `finish(trained,
    out_dir)`, which sees it after training and returns extra metrics for the record (how its weights
    moved, the ranks of the learned updates); it may write files of its own into `out_dir`.

    `also_evaluate` maps further run folders to their parameters (this run's, with another task
    block): tasks that share this run's training set are trained once and scored each on its own
    evaluation split. Each gets a record of its own, with this run's training trace and its task's
    final metrics (as `<metric>` and `best_<metric>`).

    A checkpoint (every `train.checkpoint_every` steps) lives in `out_dir` while the job runs and is
    removed once the record is written; a rerun of a killed job resumes from it.
    """
    out_dir = Path(out_dir)
    device = resolve_device(params.get("device", "auto"))
    config = TrainConfig.from_dict(params["train"])
    seed = int(params.get("seed", 0))
    kind = params["model"].get("kind", "encoder")
    with Stopwatch(str(device)) as watch:
        model, tokenizer, data, objective, info = setup(params, data_root=data_root, models_root=models_root)
        finish = probe(model) if probe is not None else None
        optimizer = build_optimizer(model, params["optimizer"])
        result = train(model, objective, optimizer, config, seed=seed,
                       checkpoint_dir=out_dir if config.checkpoint_every else None, extra_state=info.moved_base)
        probed = finish(model, out_dir) if finish is not None else {}
        others = {Path(folder): run for folder, run in (also_evaluate or {}).items()}
        scores = {}
        for folder, other in others.items():
            other_data, other_objective = task_objective(other["task"], tokenizer, model_kind=kind, device=device,
                                                         seed=seed, data_root=data_root)
            scores[folder] = evaluate(model, other_objective, other_data.eval, config.eval_batch_size)
    runtime = watch.runtime()

    def record(folder: Path, run: Mapping[str, Any], outcome: TrainResult, trace: pd.DataFrame) -> dict[str, Any]:
        return write_run(
            folder, paper=run.get("paper", "engine"), experiment=run.get("experiment", data.kind),
            method=run.get("method", run["adapter"].get("init", "default")), seed=seed,
            scale=run.get("scale", "default"), params=dict(run), metrics={**summarize(outcome, info), **probed},
            runtime=runtime, trace=trace, diverged_at=outcome.diverged_at)

    trace = pd.DataFrame(result.trace)
    main = record(out_dir, params, result, trace)
    training = trace.drop(columns=[c for c in trace.columns if c.startswith("eval_")])
    for folder, metrics in scores.items():  # the training trace, the other task's scores on its last row
        other_trace = training.copy()
        for name, value in metrics.items():
            other_trace.loc[other_trace.index[-1], f"eval_{name}"] = value
        step = int(other_trace["step"].iloc[-1])
        record(folder, others[folder], dataclasses.replace(result, evals=[{"step": step, **metrics}]), other_trace)
    (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return main
