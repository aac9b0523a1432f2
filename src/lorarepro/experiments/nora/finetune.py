"""NoRA's language-model runs (Tables 2 and 4, Figure 2): one task × method, every seed, in one process.

    python -m lorarepro.experiments.nora.finetune --params '<json>' --task sst2 --method nora \
        --records results/nora/table4/nora/task=sst2/seed=<s>/metrics.json … \
        --data-root resources/data --models-root resources/models

Each seed is one run of the fine-tuning engine (`train.run.finetune`) with the task block
`tasks[<task>]` and the method's init and optimizer:

    lora       PEFT's Kaiming-uniform lora_A, lora_B = 0, AdamW
    lora_p     the same init, NoRA's Frobenius-normalised preconditioner before AdamW (LoRA-P)
    pissa      PEFT's PiSSA;  olora: PEFT's OLoRA
    nora       lora_A = ΩᵀW₀/scaling (Ω ~ N(0, ξ²)), lora_B = 0, AdamW
    nora_plus  NoRA's init and the preconditioner (NoRA+)
    nora_released  the authors' released code: the sketch never reaches lora_A (plain LoRA)

Beside the task metrics, each record holds what the paper's Figure 2 and claim 9 look at: for every
adapted matrix, which singular values of the merged weight moved most during training (the counts of
each index among the r most-changed, `sv_change_counts`), and at init how far the merged weight is
from W₀ and how much of lora_A lies outside W₀'s row space.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Mapping

import numpy as np
import torch

from lorarepro.adapters.peft_adapters import lora_layers
from lorarepro.config import seeds_of
from lorarepro.metrics.spectral import most_changed_singular_values
from lorarepro.metrics.subspace import row_space_residual
from lorarepro.train.run import finetune

PAPER = "nora"


def run_params(settings: Mapping[str, Any], task: str, method: str, seed: int) -> dict[str, Any]:
    """The engine's parameters of one run: the experiment's model/adapter/train blocks, the task's
    block and the method's init and optimizer."""
    spec = settings["methods"][method]
    init_options = {key: spec[key] for key in ("xi", "released_code") if key in spec}
    optimizer = {"name": "adamw", "lr": spec["lr"], "weight_decay": 0.0}
    if spec.get("preconditioned", False):
        optimizer.update(name="preconditioned_adamw", lam=settings["precondition_lambda"], normalize=True)
    return {
        "paper": PAPER, "experiment": settings["experiment"], "method": method, "seed": seed,
        "scale": settings["scale"], "device": settings["device"], "threads": settings.get("threads"),
        "task_name": task,
        "model": dict(settings["model"]),
        "task": dict(settings["tasks"][task]),
        "adapter": {**settings["adapter"], "init": spec["init"], "init_options": init_options},
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


def weight_probe(r: int, bins: int, relative: bool):
    """The engine probe of these runs: the init's checks before training, Figure 2's counts after."""

    @torch.no_grad()
    def before(model: torch.nn.Module):
        reference = merged_weights(model)
        layers = lora_layers(model)
        init_metrics = {
            # ΔW₀ relative to W₀ (0 for B = 0; round-off for the inits that move W₀ into the factors)
            "init_delta_rel": max(float(torch.linalg.matrix_norm(w - layers[n].get_base_layer().weight.double().cpu())
                                        / torch.linalg.matrix_norm(w)) for n, w in reference.items()),
            # the largest share of a lora_A outside the row space of its W₀ (0 for NoRA's sketch)
            "init_rowspace_residual": max(float(row_space_residual(
                w, layers[n].lora_A[a].weight.detach().double().cpu())) for n, w in reference.items()
                for a in layers[n].lora_A),
        }

        @torch.no_grad()
        def after(trained: torch.nn.Module) -> dict[str, Any]:
            counts = np.zeros(bins + 1, dtype=np.int64)  # the last bin: indices ≥ bins
            inside = outside_slots = 0
            for name, w in merged_weights(trained).items():
                idx = most_changed_singular_values(reference[name], w, r, relative=relative).numpy()
                np.add.at(counts, np.minimum(idx, bins), 1)
                inside += int((idx < r).sum())
                outside_slots += min(w.shape) - r
            total = len(reference) * r
            share = inside / total
            # how often an index inside the top r is among the most changed, over how often one outside is
            per_outside = (total - inside) / outside_slots
            enrichment = share / per_outside if per_outside > 0 else None
            return {**init_metrics, "sv_change_counts": counts.tolist(), "sv_top_r_share": share,
                    "sv_outside_top_r_share": 1.0 - share, "sv_top_r_enrichment": enrichment}

        return after

    return before


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the experiment's settings (JSON)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--records", nargs="+", required=True, help="metrics.json of each seed, in seed order")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args(argv)
    settings = {**args.params, "threads": args.threads}
    seeds = seeds_of(settings)
    if len(seeds) != len(args.records):
        raise SystemExit(f"{len(seeds)} seeds but {len(args.records)} record paths")
    sv = settings["sv_change"]
    for seed, record in zip(seeds, args.records):
        params = run_params(settings, args.task, args.method, seed)
        probe = weight_probe(settings["adapter"]["r"], sv["bins"], sv["relative"])
        rec = finetune(params, record.removesuffix("/metrics.json"), data_root=args.data_root,
                       models_root=args.models_root, probe=probe)
        shown = {k: v for k, v in rec["metrics"].items() if not isinstance(v, list)}
        print(json.dumps({"seed": seed, "status": rec["status"], **shown}), flush=True)


if __name__ == "__main__":
    main()
