"""Table 1, retraining stage: one base model retrained on the `retrain_tasks` by standard retraining
(SR: the model alone) or LoRA-ML (one rank-r LoRA per task over the shared, trainable base), saved as
a state dict for the fine-tuning stage.

    python -m lorarepro.experiments.meta_lora.lm_retrain --params '<json>' --method lora_ml_8 --seed 0 \
        --record results/meta_lora/lm_retrain/lora_ml_8/base/seed=0/metrics.json \
        --base results/meta_lora/lm_retrain/lora_ml_8/base/seed=0/base.pt \
        --data-root resources/data --models-root resources/models

Every step draws one batch per task and calls `train.meta.meta_step`: each task's adapter steps on its
own batch's gradient, the base once on the sum of the tasks' gradients (`retrain.mode: paper`, the
paper's Algorithm 1; `round_robin` is the authors' code). SR takes the same step without adapters, so
the two methods differ only in the adapters. The saved base has no adapters (PEFT `unload`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lorarepro.adapters.multitask import adapter_parameters, base_parameters, build_task_adapters
from lorarepro.data.tasks import BatchSampler, load_task
from lorarepro.device import resolve_device
from lorarepro.experiments.meta_lora.lm import PAPER, RETRAIN, retrain_adapter, retrain_tasks
from lorarepro.io import atomic_path
from lorarepro.models.load import load_model, load_tokenizer, resolve_model
from lorarepro.optim.schedules import lr_schedule
from lorarepro.records import Stopwatch, write_run
from lorarepro.seeding import seed_everything
from lorarepro.train.meta import meta_step
from lorarepro.train.objectives import make_objective


def retrain(settings, method: str, seed: int, *, data_root: str, models_root: str):
    """The retrained model (adapters unloaded), its trace, the step at which it diverged (or None) and the
    number of parameters retraining trained (the base's and, for LoRA-ML, every task's adapter)."""
    device = resolve_device(settings.get("device", "auto"))
    spec, method_spec = settings["retrain"], settings["methods"][method]
    tokenizer = load_tokenizer(resolve_model(settings["model"]["name"], models_root))
    tasks = {name: load_task(block, tokenizer, seed=seed, data_root=data_root)
             for name, block in retrain_tasks(settings).items()}
    model = load_model(settings["model"], num_labels=1, models_root=models_root).to(device)
    # A selection loss reads only its examples, so one objective serves every task.
    objective = make_objective(next(iter(tasks.values())), model_kind="encoder", device=device)
    adapter = retrain_adapter(settings, method)
    adapter_opt = None
    if adapter is not None:
        model = build_task_adapters(model, adapter, list(tasks), seed=seed)
        adapter_opt = torch.optim.AdamW([p for name in tasks for p in adapter_parameters(model, name)],
                                        lr=method_spec["adapter_lr"], weight_decay=spec["weight_decay"])
    for name, param in model.named_parameters():  # `freeze`: base modules kept pretrained (CPU budget)
        if "lora_" not in name and any(part in name for part in spec.get("freeze", [])):
            param.requires_grad_(False)
    base_opt = torch.optim.AdamW(base_parameters(model), lr=method_spec["lr"], weight_decay=spec["weight_decay"])
    schedules = [lr_schedule(opt, spec["schedule"], spec["steps"], spec.get("warmup", 0))
                 for opt in (base_opt, adapter_opt) if opt is not None]
    samplers = {name: BatchSampler(len(data.train), spec["batch_size"], seed + t)
                for t, (name, data) in enumerate(tasks.items())}
    model.train()
    trace, diverged_at = [], None
    for step in range(1, spec["steps"] + 1):
        t0 = time.perf_counter()
        batches = {name: [tasks[name].train[i] for i in next(sampler)] for name, sampler in samplers.items()}
        losses = meta_step(model, batches, objective.loss, adapter_opt, base_opt, mode=spec["mode"])
        for schedule in schedules:
            schedule.step()
        loss = float(np.mean(list(losses.values())))
        trace.append({"step": step, "loss": loss, "step_s": time.perf_counter() - t0,
                      **{f"loss_{name}": value for name, value in losses.items()}})
        if not math.isfinite(loss):
            diverged_at = step
            break
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model = model.unload() if adapter is not None else model
    return model, trace, diverged_at, trainable


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the experiment's settings (JSON)")
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--record", required=True, help="the run's metrics.json")
    parser.add_argument("--base", required=True, help="where the retrained base's state dict goes")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args(argv)
    settings = args.params
    seed_everything(args.seed, threads=args.threads)
    with Stopwatch(str(resolve_device(settings.get("device", "auto")))) as watch:
        model, trace, diverged_at, trainable = retrain(settings, args.method, args.seed, data_root=args.data_root,
                                            models_root=args.models_root)
        with atomic_path(args.base) as tmp:
            torch.save(model.state_dict(), tmp)
    tail = [row["loss"] for row in trace[-max(1, len(trace) // 10):]]
    metrics = {"steps_done": len(trace), "train_loss_last": float(np.mean(tail)),
               "step_s_median": statistics.median(row["step_s"] for row in trace),
               "trainable_params": trainable}
    record = write_run(Path(args.record).parent, paper=PAPER, experiment=RETRAIN, method=args.method, seed=args.seed,
                       scale=settings["scale"], params={**settings, "threads": args.threads}, metrics=metrics,
                       runtime=watch.runtime(), trace=pd.DataFrame(trace), diverged_at=diverged_at)
    print(json.dumps({"method": args.method, "seed": args.seed, "status": record["status"], **metrics}), flush=True)


if __name__ == "__main__":
    main()
