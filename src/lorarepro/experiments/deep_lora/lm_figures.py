"""The paper's few-shot fine-tuning figures and Table 2 from the few-shot run records:

- Figure 6: validation Pearson against the training-set size n (rank `rank`), Deep LoRA vs vanilla LoRA;
- Figure 7: histogram of the numerical ranks of the learned ΔW of every adapted layer (n = `histogram_n`,
  rank `rank`, seed 0), read from each run's layers.parquet;
- Figure 8: validation Pearson against the rank r at n = `rank_n`;
- Table 2: median step time and peak memory per method, with the paper's V100 numbers beside them.

    python -m lorarepro.experiments.deep_lora.lm_figures --params '{...}' \
        --records results/deep_lora/fewshot/**/metrics.json \
        --out results/deep_lora/figures/figure_6.pdf ... --table results/deep_lora/tables/table_2.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lorarepro.experiments.deep_lora.figures import by_figure
from lorarepro.records import load_records
from lorarepro.report import plotting
from lorarepro.report.tables import write_table

METHODS = {"vanilla": "vanilla LoRA", "deep": "Deep LoRA"}
# Table 2 of the paper (V100): per-step wall time [ms] and memory [GB].
PAPER_TABLE_2 = {"vanilla": (102.0, 12.526), "deep": (106.0, 12.648)}


def pearson_curve(records: pd.DataFrame, x: str, label: str, logx: bool):
    fig, axes = plotting.figure(1)
    frame = records.assign(method=records["method"].map(METHODS))
    plotting.curves(axes[0, 0], frame, x=x, y="metrics.pearson", hue="method", spread="sd", estimator="mean",
                    logx=logx, marker="o", hue_order=list(METHODS.values()))
    axes[0, 0].set(xlabel=label, ylabel="validation Pearson")
    axes[0, 0].legend(title=None)
    return fig, axes[0, 0]


def figure_6(records: pd.DataFrame, params: dict):
    mine = records[records["params.r"] == params["rank"]]
    fig, ax = pearson_curve(mine, "params.n", "training examples n", logx=True)
    ax.set_title(f"Few-shot STS-B, r = {params['rank']}")
    return fig


def figure_7(records: pd.DataFrame, params: dict):
    mine = records[(records["params.r"] == params["rank"]) & (records["params.n"] == params["histogram_n"])
                   & (records["seed"] == records["seed"].min())]
    layers = pd.concat([pd.read_parquet(Path(path).parent / "layers.parquet").assign(method=METHODS[method])
                        for path, method in zip(mine["path"], mine["method"])], ignore_index=True)
    fig, axes = plotting.figure(1)
    bins = np.arange(-0.5, params["rank"] + 1.5)
    for method in METHODS.values():
        ranks = layers.loc[layers["method"] == method, "rank"]
        axes[0, 0].hist(ranks, bins=bins, alpha=0.6, label=method)
    axes[0, 0].set(xlabel="numerical rank of ΔW (σ > 1e-8)", ylabel="adapted layers",
                   title=f"Ranks of the learned updates (n = {params['histogram_n']})")
    axes[0, 0].legend()
    return fig


def figure_8(records: pd.DataFrame, params: dict):
    mine = records[records["params.n"] == params["rank_n"]]
    fig, ax = pearson_curve(mine, "params.r", "adapter rank r", logx=True)
    ax.set_title(f"Rank robustness, n = {params['rank_n']}")
    return fig


def table_2(records: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Step time and memory per method over the runs at rank `rank` (GPU memory where a GPU ran)."""
    mine = records[records["params.r"] == params["rank"]]
    memory = "runtime.peak_gpu_mb" if mine.get("runtime.peak_gpu_mb", pd.Series(dtype=float)).notna().any() \
        else "runtime.peak_rss_mb"
    rows = []
    for method, label in METHODS.items():
        runs = mine[mine["method"] == method]
        rows.append({"method": label, "runs": len(runs),
                     "step_ms": 1000 * runs["metrics.step_s_median"].median(),
                     "memory_gb": runs[memory].max() / 1024,
                     "paper_step_ms": PAPER_TABLE_2[method][0], "paper_memory_gb": PAPER_TABLE_2[method][1]})
    return pd.DataFrame(rows)


FIGURES = {"6": figure_6, "7": figure_7, "8": figure_8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the few-shot experiment's settings")
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", nargs="+", type=Path, required=True, help="figure files figure_<6|7|8>.<format>")
    parser.add_argument("--table", type=Path, required=True, help="Table 2's CSV")
    args = parser.parse_args()
    records = load_records(args.records)
    for number, paths in by_figure(args.out).items():
        plotting.save(FIGURES[number](records, args.params), paths)
    memory = "GPU" if args.params.get("resources", {}).get("gpu") else "CPU (process RSS, includes the model)"
    write_table(table_2(records, args.params), args.table,
                title="Table 2 — step time and memory, Deep LoRA vs vanilla LoRA", scale=args.params["scale"],
                notes=f"Median step time and peak {memory} memory over the runs at r = {args.params['rank']}; "
                      "paper: V100, batch 16, sequence length 128 (spec 004 §3).")


if __name__ == "__main__":
    main()
