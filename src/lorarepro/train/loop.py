"""One training loop for every fine-tuning task: regression, classification, prompted classification
and generation, on CPU or CUDA alike.

Each optimizer step draws `grad_accum` seeded batches, accumulates their gradients, optionally
preconditions them (P-LoRA / LoRA-One-P / NoRA+) and clips them, then steps the optimizer and the
schedule. Every step adds a trace row (loss, learning rate, step time, peak memory); every
`eval_every` steps, and at the end, the task's metrics on the evaluation split join the row. A loss
that stops being finite ends the run as diverged, which is a result, not an error.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from lorarepro.data.tasks import BatchSampler
from lorarepro.metrics.tasks import score
from lorarepro.optim.schedules import lr_schedule
from lorarepro.records import peak_rss_mb
from lorarepro.train.checkpoint import load_checkpoint, save_checkpoint
from lorarepro.train.objectives import Objective, predict_all


@dataclass
class TrainConfig:
    steps: int
    batch_size: int = 16
    grad_accum: int = 1
    schedule: str = "constant"
    warmup: float = 0  # steps, or a fraction of `steps` when below 1
    eval_every: int = 0  # 0: evaluate at the end only
    eval_at_start: bool = True  # step 0 = the model at init (zero-shot for function-preserving inits)
    eval_batch_size: int = 64
    max_grad_norm: float | None = None
    checkpoint_every: int = 0
    progress: bool = True

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**spec)


@dataclass
class TrainResult:
    trace: list[dict[str, Any]]
    diverged_at: int | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)  # {"step": s, <metric>: value, ...}


def evaluate(model: nn.Module, objective: Objective, examples, batch_size: int) -> dict[str, float]:
    preds, refs = predict_all(model, objective, examples, batch_size)
    return score(objective.data.metrics, preds, refs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory(device: torch.device) -> dict[str, float]:
    out = {"peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def optimizer_step(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, scheduler,
                   micro_batches, *, max_grad_norm: float | None = None) -> float:
    """One optimizer step on the summed gradients of `micro_batches` (lists of examples), each weighted
    1/len(micro_batches); returns the loss. A non-finite loss leaves the parameters untouched."""
    total = 0.0
    for examples in micro_batches:
        loss = objective.loss(model, examples) / len(micro_batches)
        loss.backward()
        total += loss.item()
    if not math.isfinite(total):
        optimizer.zero_grad(set_to_none=True)
        return total
    if hasattr(optimizer, "precondition_grads"):
        optimizer.precondition_grads()
    if max_grad_norm:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def train(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, config: TrainConfig, *,
          seed: int, checkpoint_dir: str | Path | None = None, extra_state: Iterable[str] = ()) -> TrainResult:
    """Train `model` on `objective.data.train` for `config.steps` optimizer steps; see the module doc.

    `extra_state` names frozen parameters that checkpoints must keep too (base weights an init moved).
    """
    data, device = objective.data, objective.device
    sampler = BatchSampler(len(data.train), config.batch_size, seed)
    scheduler = lr_schedule(optimizer, config.schedule, config.steps, config.warmup)
    extra_state = list(extra_state)
    start, trace = (0, [])
    if checkpoint_dir is not None:
        start, trace = load_checkpoint(checkpoint_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                                       sampler=sampler)
        if start:
            print(f"resuming from the checkpoint at step {start} in {checkpoint_dir}", file=sys.stderr)
    result = TrainResult(trace, evals=[{"step": r["step"], **{k[5:]: v for k, v in r.items() if k.startswith("eval_")}}
                                       for r in trace if any(k.startswith("eval_") for k in r)])

    def run_eval(row: dict[str, Any]) -> None:
        metrics = evaluate(model, objective, data.eval, config.eval_batch_size)
        row.update({f"eval_{k}": v for k, v in metrics.items()})
        result.evals.append({"step": row["step"], **metrics})

    if start == 0 and config.eval_at_start:
        row = {"step": 0}
        run_eval(row)
        trace.append(row)
    model.train()
    bar = tqdm(total=config.steps, initial=start, disable=not config.progress, desc="train", dynamic_ncols=True,
               mininterval=5.0)
    for step in range(start + 1, config.steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        micro = [[data.train[i] for i in next(sampler)] for _ in range(config.grad_accum)]
        lr = optimizer.param_groups[0]["lr"]
        total = optimizer_step(model, objective, optimizer, scheduler, micro, max_grad_norm=config.max_grad_norm)
        if not math.isfinite(total):
            result.diverged_at = step
            trace.append({"step": step, "loss": total})
            break
        _sync(device)
        row = {"step": step, "loss": total, "lr": lr, "step_s": time.perf_counter() - t0, **_memory(device)}
        if step == config.steps or (config.eval_every and step % config.eval_every == 0):
            run_eval(row)
        trace.append(row)
        bar.update(1)
        shown = {"loss": f"{total:.4f}"}
        if result.evals:
            shown[data.primary_metric] = f"{result.evals[-1][data.primary_metric]:.4f}"
        bar.set_postfix(shown)
        if checkpoint_dir is not None and config.checkpoint_every and step % config.checkpoint_every == 0:
            save_checkpoint(checkpoint_dir, step=step, model=model, extra_params=extra_state, optimizer=optimizer,
                            scheduler=scheduler, sampler=sampler, trace=trace)
    bar.close()
    return result
