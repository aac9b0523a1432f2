"""Cost of the fine-tuning engine against plain PEFT LoRA, on the same model and batch.

1. Step time: for each init (and the preconditioned / LoRA+ optimizers), one training step of the
   engine (`lorarepro.train.loop.optimizer_step`: collation, objective, backward, optimizer, schedule)
   is timed against one step of a bare PEFT LoRA loop (forward, MSE, backward, AdamW). Steps of the two
   alternate, so machine load hits both alike; the result is the median over pairs of adjacent steps
   of their time ratio. Target: ≤ 1.05.
2. LoRA-One's one-off init (gradient on 8 examples, one at a time as the authors' code, plus the SVDs)
   as a share of a default fine-tuning run of the recipe (paper's Table 4: under 2%).

    python benchmarks/engine_step_time.py [--variants default lora_one ...] [--pairs 20] [--device cuda]

Writes run records under results/benchmarks/engine_step_time/ and results/benchmarks/engine_init_cost/.
Needs the bundled model and data set (`snakemake resources/models/minilm_l6 resources/data/stsb`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from lorarepro.models.load import load_model
from lorarepro.optim.lora_optimizers import build_optimizer
from lorarepro.optim.schedules import lr_schedule
from lorarepro.records import Stopwatch, run_dir, write_run
from lorarepro.train.loop import optimizer_step
from lorarepro.train.run import setup

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "benchmarks" / "recipes" / "minilm_stsb.json"
ROOTS = {"data_root": ROOT / "resources" / "data", "models_root": ROOT / "resources" / "models"}
TARGET_RATIO, TARGET_SHARE = 1.05, 0.02
VARIANTS = {  # name: (adapter overrides, optimizer overrides)
    "default": ({"init": "default"}, {}),
    "gaussian": ({"init": "gaussian"}, {}),
    "pissa": ({"init": "pissa"}, {}),
    "olora": ({"init": "olora"}, {}),
    "lora_ga": ({"init": "lora_ga"}, {}),
    "lora_one": ({"init": "lora_one"}, {}),
    "spectral": ({"init": "spectral"}, {}),
    "nora": ({"init": "nora"}, {}),
    "lora_sb": ({"init": "lora_sb"}, {}),
    "deep_compressed": ({"init": "deep", "init_options": {"compressed": True}}, {"lr_scale": {"outer": 0.01}}),
    "deep_full_width": ({"init": "deep"}, {}),
    "lora_p": ({"init": "default"}, {"name": "preconditioned_adamw", "lam": 1e-6}),
    "nora_plus": ({"init": "nora"}, {"name": "preconditioned_adamw", "lam": 1e-6, "normalize": True}),
    "lora_plus": ({"init": "default"}, {"name": "loraplus", "loraplus_ratio": 16}),
}


def engine(recipe, name):
    """The engine's model, objective and optimizer for one variant of the recipe."""
    adapter_over, opt_over = VARIANTS[name]
    params = {**recipe, "adapter": {**recipe["adapter"], **adapter_over},
              "optimizer": {**recipe["optimizer"], **opt_over}}
    model, _, data, objective, info = setup(params, **ROOTS)
    optimizer = build_optimizer(model, params["optimizer"])
    return params, model, data, objective, info, optimizer, lr_schedule(optimizer, "constant", 10**6)


def plain_peft(recipe, device):
    """The reference: PEFT's own LoRA on the pretrained model with the same head trainable, and AdamW."""
    from peft import LoraConfig, get_peft_model

    adapter = recipe["adapter"]
    model = load_model(recipe["model"], num_labels=1, models_root=ROOTS["models_root"]).to(device)
    model = get_peft_model(model, LoraConfig(r=adapter["r"], lora_alpha=adapter["alpha"],
                                             target_modules=adapter["targets"], lora_dropout=adapter["dropout"]))
    for name, p in model.named_parameters():
        if ".head." in name:
            p.requires_grad_(True)
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe["optimizer"]["lr"])


def step_times(recipe, name, pairs):
    """Interleaved step times of the engine (variant `name`) and of plain PEFT LoRA on one batch."""
    params, ours, data, objective, info, optimizer, scheduler = engine(recipe, name)
    examples = data.train[: recipe["train"]["batch_size"]]
    plain, plain_opt = plain_peft(recipe, objective.device)
    batch = objective.batch(examples)
    inputs = objective.inputs(batch)
    target = (batch["label"].float() - data.label_mean) / data.label_std

    def plain_step():
        F.mse_loss(plain(**inputs).logits.squeeze(-1), target).backward()
        plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    def our_step():
        optimizer_step(ours, objective, optimizer, scheduler, [examples])

    device = objective.device

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    ours.train()
    plain.train()
    for _ in range(3):  # warm-up: allocator, lazy optimizer state
        plain_step()
        our_step()
    rows = []
    for k in range(pairs):  # alternate which goes first, so neither always follows the other
        if k % 2:
            ours_s, plain_s = timed(our_step), timed(plain_step)
        else:
            plain_s, ours_s = timed(plain_step), timed(our_step)
        rows.append({"step": k, "ours_s": ours_s, "plain_s": plain_s})
    return params, info, pd.DataFrame(rows)


def bench_step(recipe, name, pairs, out_root, device):
    with Stopwatch(device) as watch:
        params, info, trace = step_times(recipe, name, pairs)
    trace["ratio"] = trace["ours_s"] / trace["plain_s"]
    ratio = float(trace["ratio"].median())
    metrics = {"step_ratio": ratio, "ours_s_median": float(trace["ours_s"].median()),
               "plain_s_median": float(trace["plain_s"].median()),
               "ratio_of_medians": float(trace["ours_s"].median() / trace["plain_s"].median()),
               "within_target": ratio <= TARGET_RATIO, "trainable_params": info.trainable_params}
    write_run(run_dir(out_root, "benchmarks", "engine_step_time", name, "base", 0), paper="benchmarks",
              experiment="engine_step_time", method=name, seed=0, scale="default",
              params={"model": params["model"], "task": params["task"], "adapter": params["adapter"],
                      "optimizer": params["optimizer"], "batch_size": recipe["train"]["batch_size"], "pairs": pairs,
                      "target_ratio": TARGET_RATIO},
              metrics=metrics, runtime=watch.runtime(), trace=trace)
    print(f"{name:16s} ours {metrics['ours_s_median']:.3f} s  plain PEFT {metrics['plain_s_median']:.3f} s  "
          f"ratio {ratio:.3f}", flush=True)
    return metrics


def bench_init_cost(recipe, step_s, repeats, out_root, device):
    """LoRA-One's init (the authors' protocol: 8 examples, one backward pass each, then the SVDs) against a
    default run of the recipe (its step count at the default variant's measured step time)."""
    params = {**recipe, "adapter": {**recipe["adapter"], "init": "lora_one",
                                    "gradient": {"examples": 8, "batch_size": 1, "select": "first"}}}
    with Stopwatch(device) as watch:
        init_s = [setup(params, **ROOTS)[4].init_s for _ in range(repeats)]
    steps = recipe["train"]["steps"]
    init = statistics.median(init_s)
    share = init / (init + steps * step_s)
    metrics = {"init_s_median": init, "run_s": steps * step_s, "init_share": share,
               "within_target": share < TARGET_SHARE, "steps": steps, "step_s": step_s}
    write_run(run_dir(out_root, "benchmarks", "engine_init_cost", "lora_one", "base", 0), paper="benchmarks",
              experiment="engine_init_cost", method="lora_one", seed=0, scale="default",
              params={"model": params["model"], "adapter": params["adapter"], "steps": steps, "repeats": repeats,
                      "target_share": TARGET_SHARE},
              metrics=metrics, runtime=watch.runtime(),
              trace=pd.DataFrame({"step": range(repeats), "init_s": init_s}))
    print(f"LoRA-One init {init:.2f} s = {100 * share:.2f}% of a {steps}-step run ({steps * step_s:.0f} s)")
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(RECIPE))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "results"))
    args = parser.parse_args()
    recipe = {**json.loads(Path(args.recipe).read_text()), "device": args.device, "threads": args.threads}
    needed = [ROOT / "resources" / "models" / recipe["model"]["name"], ROOT / "resources" / "data" / recipe["task"]["dataset"]]
    if not all(p.exists() for p in needed):
        print(f"skipped: build {' '.join(str(p.relative_to(ROOT)) for p in needed)} with snakemake first")
        return
    results = {name: bench_step(recipe, name, args.pairs, args.out, args.device) for name in args.variants}
    step_s = results["default"]["ours_s_median"] if "default" in results else \
        bench_step(recipe, "default", args.pairs, args.out, args.device)["ours_s_median"]
    bench_init_cost(recipe, step_s, args.repeats, args.out, args.device)


if __name__ == "__main__":
    main()
