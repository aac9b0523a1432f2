"""NoRA's language-model runs (Tables 2 and 4, Figure 2): one job's runs in one process (Python, torch
and transformers load once; each run reloads the pretrained model), a job being one task's methods
and seeds, or, with `train_once` (Table 2 at the paper scale), one method's seeds trained once on the
training set its tasks share and scored on each task (see `run_jobs`).

    python -m lorarepro.experiments.nora.finetune --params '<json>' --experiment table4 \
        --records results/nora/table4/<method>/task=sst2/seed=<s>/metrics.json … \
        --data-root resources/data --models-root resources/models

Each seed is one run of the fine-tuning engine (`train.run.finetune`) with the task block
`tasks[<task>]` (sized by `task_sizes`, see grid.lm_tasks) and the method's init and optimizer:

    lora       PEFT's Kaiming-uniform lora_A, lora_B = 0, AdamW
    lora_p     the same init, NoRA's Frobenius-normalised preconditioner before AdamW (LoRA-P)
    pissa      PEFT's PiSSA;  olora: PEFT's OLoRA
    nora       lora_A = ΩᵀW₀/scaling (Ω ~ N(0, ξ²)), lora_B = 0, AdamW
    nora_plus  NoRA's init and the preconditioner (NoRA+)
    prefix     PEFT prefix tuning, MeZO's: 5 virtual tokens initialised from real activations, AdamW
    `released_code: true` on a NoRA method: the authors' released code, whose sketch never reaches
    lora_A (so it trains as LoRA / LoRA-P)

Beside the task metrics, each record holds what the paper's Figure 2 and claim 9 look at: for every
adapted matrix, which singular values of the merged weight moved most during training (the counts of
each index among the r most-changed, `sv_change_counts`), and at init how far the merged weight is
from W₀ and how much of lora_A lies outside W₀'s row space.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from lorarepro.adapters.build import PROMPT_LEARNING
from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.config import seeds_of
from lorarepro.data.materialize import MANIFEST
from lorarepro.data.tasks import dataset_folder
from lorarepro.experiments.nora.grid import lm_tasks
from lorarepro.io import read_json
from lorarepro.metrics.spectral import most_changed_singular_values
from lorarepro.metrics.subspace import row_space_residual
from lorarepro.train.run import finetune

PAPER = "nora"
# method keys that are options of its init (NoRA's ξ and released-code flag, the prefix's size and start)
INIT_OPTIONS = ("xi", "released_code", "num_virtual_tokens", "init_from")


def run_params(settings: Mapping[str, Any], task: str, method: str, seed: int) -> dict[str, Any]:
    """The engine's parameters of one run: the experiment's model/adapter/train blocks, the task's
    block and the method's init and optimizer."""
    spec = settings["methods"][method]
    init_options = {key: spec[key] for key in INIT_OPTIONS if key in spec}
    # prefix tuning adapts no linear layer: the LoRA block (r, α, targets) does not apply to it
    adapter = {} if spec["init"] in PROMPT_LEARNING else dict(settings["adapter"])
    optimizer = {"name": "adamw", "lr": spec["lr"], "weight_decay": 0.0}
    if spec.get("preconditioned", False):
        optimizer.update(name="preconditioned_adamw", lam=settings["precondition_lambda"], normalize=True)
    return {
        "paper": PAPER, "experiment": settings["experiment"], "method": method, "seed": seed,
        "scale": settings["scale"], "device": settings["device"], "threads": settings.get("threads"),
        "task_name": task,
        "model": dict(settings["model"]),
        "task": lm_tasks(settings)[task],
        "adapter": {**adapter, "init": spec["init"], "init_options": init_options},
        "optimizer": optimizer,
        "train": {**settings["train"], "progress": False},
    }


@torch.no_grad()
def merged_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """W₀ + ΔW of every adapted matrix, in float64 on the CPU."""
    out = {}
    for name, layer in lora_layers(model).items():
        base = layer.get_base_layer().weight.detach()
        delta = sum(layer.get_delta_weight(adapter) for adapter in layer.lora_A)
        out[name] = (base.double() + delta.double()).cpu()
    return out


@torch.no_grad()
def init_checks(model: torch.nn.Module, merged: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Claim 9 on the adapted model before training (max over the adapted matrices): the adapter's share
    ‖ΔW₀‖_F / ‖W‖_F of the merged weight W (0 when lora_B = 0, as for LoRA and NoRA; PiSSA and OLoRA
    move the top of W into the factors), and the share of lora_A outside the row space of W (0 for
    NoRA's sketch and PiSSA's right singular vectors, most of a random A)."""
    layers = lora_layers(model)
    delta = {n: sum(layer.get_delta_weight(a) for a in layer.lora_A).double().cpu() for n, layer in layers.items()}
    return {
        "init_delta_rel": max(float(torch.linalg.matrix_norm(delta[n]) / torch.linalg.matrix_norm(w))
                              for n, w in merged.items()),
        "init_rowspace_residual": max(float(row_space_residual(w, layers[n].lora_A[a].weight.detach().double().cpu()))
                                      for n, w in merged.items() for a in layers[n].lora_A),
    }


def sv_change_metrics(reference: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], r: int,
                      bins: int, relative: bool) -> dict[str, Any]:
    """Figure 2: over every adapted matrix, how often each singular-value index is among the r that
    moved most (`sv_change_counts`, the last bin pooling indices ≥ bins), the share of those inside the
    top r, and how much likelier an index inside the top r is to be picked than one outside."""
    counts = np.zeros(bins + 1, dtype=np.int64)
    inside = outside_slots = 0
    for name, w in trained.items():
        idx = most_changed_singular_values(reference[name], w, r, relative=relative).numpy()
        np.add.at(counts, np.minimum(idx, bins), 1)
        inside += int((idx < r).sum())
        outside_slots += min(w.shape) - r
    total = len(trained) * r
    share = inside / total
    per_outside = (total - inside) / outside_slots
    return {"sv_change_counts": counts.tolist(), "sv_top_r_share": share, "sv_outside_top_r_share": 1.0 - share,
            "sv_top_r_enrichment": share / per_outside if per_outside > 0 else None}


def weight_probe(settings: Mapping[str, Any]):
    """The engine probe of these runs: the init checks (`probe.init_checks`) before training, Figure 2's
    singular-value changes (`probe.sv_change`, if set) after it; nothing for an adapter without LoRA
    layers (prefix tuning)."""
    probe = settings.get("probe") or {}
    sv = probe.get("sv_change")

    @torch.no_grad()
    def before(model: torch.nn.Module):
        reference = merged_weights(model)
        if not reference:
            return lambda trained, out_dir: {}
        checks = init_checks(model, reference) if probe.get("init_checks", True) else {}

        @torch.no_grad()
        def after(trained: torch.nn.Module, out_dir) -> dict[str, Any]:
            if not sv:
                return checks
            changes = sv_change_metrics(reference, merged_weights(trained), settings["adapter"]["r"],
                                        sv["bins"], sv["relative"])
            return {**checks, **changes}

        return after

    return before


def record_run(record: str) -> tuple[str, str, int]:
    """(method, task, seed) of a run from its record path …/<method>/task=<task>/seed=<s>/metrics.json."""
    method, setting, seed = Path(record).parts[-4:-1]
    return method, setting.removeprefix("task="), int(seed.removeprefix("seed="))


# Task-block keys that only say how a task is evaluated: tasks trained once may differ in these alone.
EVALUATION_KEYS = ("dataset", "eval_split", "eval_size", "eval_seed", "metrics", "references", "stop")


def check_shared_training(tasks: Mapping[str, Mapping[str, Any]], data_root: str) -> None:
    """Stop unless every task trains on the same data in the same way (the `train_once` premise): the
    same train split (by its manifest checksum) and the same task block up to EVALUATION_KEYS."""
    def training(spec):
        manifest = read_json(dataset_folder(spec, data_root) / MANIFEST)
        checksum = manifest["splits"][spec.get("train_split", "train")]["sha256"]
        return checksum, {k: v for k, v in spec.items() if k not in EVALUATION_KEYS}

    first, *others = tasks
    differ = [name for name in others if training(tasks[name]) != training(tasks[first])]
    if differ:
        raise SystemExit(f"train_once: tasks {differ} do not train as {first!r} does (train split or task block)")


def run_jobs(settings: Mapping[str, Any], records: list[str], *, data_root: str, models_root: str):
    """Every run of `records`, in their order; with `train_once`, the tasks of one method and seed share
    a training set (commonsense_170k in every Table 2 task's train split): it is trained once, on the
    first of them, and scored on each task's evaluation split. Yields each trained run's record."""
    runs: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for record in records:
        method, task, seed = record_run(record)
        key = (method, seed) if settings.get("train_once") else (method, seed, task)
        runs.setdefault(key, []).append((task, record.removesuffix("/metrics.json")))
    if settings.get("train_once"):
        tasks = lm_tasks(settings)
        check_shared_training({task: tasks[task] for task in dict.fromkeys(t for ts in runs.values() for t, _ in ts)},
                              data_root)
    for (method, seed, *_), targets in runs.items():
        (task, folder), others = targets[0], targets[1:]
        also = {other_folder: run_params(settings, other_task, method, seed) for other_task, other_folder in others}
        yield finetune(run_params(settings, task, method, seed), folder, data_root=data_root, models_root=models_root,
                       probe=weight_probe(settings), also_evaluate=also)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the experiment's settings (JSON)")
    parser.add_argument("--experiment", required=True, help="table4 or table2: the records' experiment")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--records", nargs="+", required=True,
                        help="metrics.json of each run: …/<method>/task=<task>/seed=<s>/metrics.json")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args(argv)
    settings = {**args.params, "experiment": args.experiment, "threads": args.threads}
    known = {(method, task, seed) for method in settings["methods"] for task in lm_tasks(settings)
             for seed in seeds_of(settings)}
    unknown = [record for record in args.records if record_run(record) not in known]
    if unknown:
        raise SystemExit(f"records of runs this experiment does not have: {unknown}")
    for rec in run_jobs(settings, args.records, data_root=args.data_root, models_root=args.models_root):
        shown = {k: v for k, v in rec["metrics"].items() if not isinstance(v, list)}
        print(json.dumps({"method": rec["method"], "seed": rec["seed"], "status": rec["status"], **shown}), flush=True)


if __name__ == "__main__":
    main()
