"""Figures and tables of LoRA-One's synthetic experiments, made only from run records.

    python -m lorarepro.experiments.lora_one.plots fig2 --records .../metrics.json --outputs fig.pdf fig.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lorarepro.records import load_records, load_traces
from lorarepro.report import plotting
from lorarepro.report.tables import summarize, write_table

LABELS = {"lora_init": "LoRA-init", "spectral_init": "Spectral-init", "lora_one": "LoRA-One", "lora_ga": "LoRA-GA",
          "lora_sb": "LoRA-SB", "gd": "GD", "prec_gd": "Prec-GD", "full_ft": "Full FT", "lora": "LoRA"}


def figure_2(records, outputs, table, scale):
    traces = load_traces(records)
    traces["log risk"] = np.log(traces["risk"])
    traces["α²"] = traces["params.alpha2"].map(lambda a: f"{a:g}")
    dims = sorted(traces["params.d"].unique())
    fig, axes = plotting.figure(ncols=2, nrows=len(dims))
    for row, d in enumerate(dims):
        part = traces[traces["params.d"] == d]
        order = sorted(part["α²"].unique(), key=float, reverse=True)
        plotting.curves(axes[row, 0], part, x="step", y="log risk", hue="α²", hue_order=order)
        plotting.curves(axes[row, 1], part, x="step", y="angle", hue="α²", hue_order=order)
        axes[row, 0].set_title(f"d = {d}: log risk")
        axes[row, 1].set_title(f"d = {d}: principal angle")
    plotting.save(fig, outputs)
    recs = load_records(records)
    summary = summarize(recs, ["params.d", "params.alpha2"], ["final_log_risk", "min_angle"])
    write_table(summary.rename(columns={"params.d": "d", "params.alpha2": "alpha2"}), table,
                title="Figure 2: final log-risk and best principal angle per init scale", scale=scale,
                notes="Mean ± std over seeds; a diverged run has no final value.")


def figure_3(records, outputs, table, scale):
    traces = load_traces(records)
    fig = plotting.plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    t = np.concatenate([np.linspace(0.6, 4, 200)])
    ax.plot(2 / t, 1 / t, t, "k--", lw=1, label="global minimisers")
    for (method, seed), part in traces.groupby(["method", "seed"]):
        line, = ax.plot(part.a1, part.a2, part.b, label=f"{LABELS[method]} (seed {seed})")
        ax.scatter(part.a1.iloc[0], part.a2.iloc[0], part.b.iloc[0], marker="o", color=line.get_color())
        ax.scatter(part.a1.iloc[-1], part.a2.iloc[-1], part.b.iloc[-1], marker="*", s=80, color=line.get_color())
    ax.set_xlabel("a₁"), ax.set_ylabel("a₂"), ax.set_zlabel("b")
    ax.legend(fontsize=7)
    plotting.save(fig, outputs)
    recs = load_records(records)
    write_table(recs[["method", "seed", "metrics.start_distance", "metrics.steps_to_tol"]].rename(
        columns=lambda c: c.replace("metrics.", "")), table, title="Figure 3: distance to the minimisers at start, "
                "steps to loss ≤ 1e-3", scale=scale)


def figure_4(records, outputs, table, scale):
    traces = load_traces(records)
    traces["method"] = traces["method"].map(LABELS)
    fig, axes = plotting.figure(ncols=2)
    for ax, case in zip(axes[0], ["under", "over"]):
        part = traces[traces["params.case"] == case]
        plotting.curves(ax, part, x="step", y="risk", hue="method", logy=True)
        ax.set_title(f"{case}-ranked")
    plotting.save(fig, outputs)
    recs = load_records(records)
    summary = summarize(recs, ["params.case", "method"], ["final_risk", "floor"])
    write_table(summary.rename(columns={"params.case": "case"}), table,
                title="Figure 4: final risk and the rank-r floor ½Σ_{i>r}σ_i²", scale=scale)


def kappa_sweep(records, outputs, table, scale):
    recs = load_records(records)
    recs["method"] = recs["method"].map(LABELS)
    fig, axes = plotting.figure()
    import seaborn as sns

    sns.lineplot(recs, x="params.kappa", y="metrics.steps_to_tol", hue="method", marker="o", ax=axes[0, 0],
                 errorbar=("pi", 100))
    axes[0, 0].set(xscale="log", yscale="log", xlabel="κ(Δ)", ylabel="steps to risk ≤ tol")
    plotting.save(fig, outputs)
    summary = summarize(recs, ["method", "params.kappa"], ["steps_to_tol"])
    write_table(summary.rename(columns={"params.kappa": "kappa"}), table,
                title="Theorem C.21: steps to the risk tolerance from Spectral-init, by condition number", scale=scale)


def figure_1c(records, outputs, table, scale):
    traces = load_traces(records)
    traces["method"] = traces["method"].map(LABELS)
    fig, axes = plotting.figure(ncols=2)
    plotting.curves(axes[0, 0], traces, x="step", y="loss", hue="method")
    axes[0, 0].set_title("fine-tuning loss")
    seed = int(traces["seed"].min())
    first = next(Path(r).parent for r in records if "full_ft" in str(r) and f"seed={seed}" in str(r))
    grid = pd.read_parquet(first / "landscape.parquet")
    size = int(round(np.sqrt(len(grid))))
    ax = axes[0, 1]
    ax.contourf(grid.x.to_numpy().reshape(size, size), grid.y.to_numpy().reshape(size, size),
                np.log(grid.loss.to_numpy().reshape(size, size)), levels=30, cmap="viridis", alpha=0.8)
    for method, part in traces[traces["seed"] == seed].groupby("method"):
        ax.plot(part.x, part.y, label=method, lw=2)
        ax.scatter(part.x.iloc[-1], part.y.iloc[-1], marker="*", s=80)
    ax.set_title(f"paths on the log-loss landscape (seed {seed})")
    ax.legend()
    plotting.save(fig, outputs)
    summary = summarize(load_records(records), ["method"], ["final_loss", "mean_path_distance"])
    write_table(summary, table, title="Figure 1(c): loss after the fine-tuning steps and distance to the Full-FT path",
                scale=scale)


FIGURES = {"fig2": figure_2, "fig3": figure_3, "fig4": figure_4, "kappa": kappa_sweep, "fig1c": figure_1c}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--outputs", nargs="+", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--scale", required=True)
    args = parser.parse_args()
    FIGURES[args.figure](args.records, args.outputs, args.table, args.scale)


if __name__ == "__main__":
    main()
