"""Figures of the NoRA paper from the run records.

Figure 1: optimality error vs iteration on a log scale, median over seeds with the range shaded.
Figure 2: after LoRA fine-tuning (the Table 4 runs), how often each singular-value index of the
adapted weights is among the r that changed most, summed over matrices and seeds, one panel per task.

    python -m lorarepro.experiments.nora.figures figure_1a --records …/metrics.json --out fig.pdf fig.png
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from lorarepro.records import load_records, load_traces
from lorarepro.report.plotting import curves, figure, save

# Round-off floor for log axes: the UP gap ‖XXᵀ − A‖_F − ‖Σ₂‖_F can dip below zero by round-off.
FLOOR = 1e-16


def label(row) -> str:
    """A curve's legend entry, from its method and parameters."""
    eta = f"η={row['params.eta']:g}"
    if row["method"] == "gd_small":
        return f"GD ({eta}), small init"
    if row["method"] == "scaledgd_small":
        return f"ScaledGD ({eta}), small init"
    if row["method"] == "scaledgd_perturbed":
        return f"AΩ + N (ξ={row['params.xi']:g}), ξₙ={row['params.xi_n']:g}"
    if row["experiment"] == "fig1b":
        return f"Nyström, ξ={row['params.xi']:g}"
    return f"ScaledGD ({eta}), Nyström init"


def on_log_steps(frame: pd.DataFrame, per_decade: int = 60) -> pd.DataFrame:
    """The rows of the first traced step (≥ 1) in each of `per_decade` log-bins per decade: enough
    for a log x-axis, and seaborn then aggregates seeds at a few hundred steps, not thousands."""
    steps = np.unique(frame.loc[frame["step"] >= 1, "step"].to_numpy())
    bins = np.floor(np.log10(steps) * per_decade)
    keep = steps[np.unique(bins, return_index=True)[1]]
    return frame[frame["step"].isin(np.append(keep, steps[-1]))]


def labelled(traces: pd.DataFrame) -> pd.DataFrame:
    frame = traces.copy()
    frame["curve"] = frame.apply(label, axis=1)
    return frame


def figure_1a(traces: pd.DataFrame, outputs) -> None:
    frame = labelled(traces)
    order = [c for c in ("GD (η=0.01), small init", "ScaledGD (η=0.5), small init", "ScaledGD (η=0.5), Nyström init")
             if c in set(frame["curve"])] or sorted(frame["curve"].unique())
    horizon = int(frame.loc[frame["method"] != "gd_small", "step"].max())
    fig, axes = figure(ncols=2, width=4.6, layout="constrained")
    early = frame[frame["step"] <= horizon]
    curves(axes[0, 0], early, x="step", y="error", hue="curve", hue_order=order, logy=True)
    axes[0, 0].set(xlabel="iteration", ylabel=r"$\|X_tX_t^\top - A\|_F$", title="(a) EP: ScaledGD's horizon")
    curves(axes[0, 1], on_log_steps(frame), x="step", y="error", hue="curve", hue_order=order, logy=True, logx=True, legend=False)
    axes[0, 1].axhline(0.01, color="grey", lw=0.8, ls=":")
    axes[0, 1].annotate(r"$\sigma_{\min}(A)=0.01$", (2e3, 0.02), color="grey", fontsize=8)
    axes[0, 1].set(xlabel="iteration (log)", ylabel=None, title="GD's horizon")
    axes[0, 0].legend(fontsize=8, loc="center right")
    save(fig, outputs)


def figure_1b(traces: pd.DataFrame, outputs) -> None:
    frame = labelled(traces)
    nystrom = frame[frame["method"] == "scaledgd_nystrom"].sort_values("params.xi")["curve"].unique().tolist()
    perturbed = frame[frame["method"] == "scaledgd_perturbed"].sort_values("params.xi_n")["curve"].unique().tolist()
    order = nystrom + perturbed
    fig, axes = figure(width=5.2, height=3.6)
    # hue and style on the same column: one legend entry per curve, its colour and its dash together
    curves(axes[0, 0], frame, x="step", y="error", hue="curve", hue_order=order, style="curve", style_order=order,
           dashes=[""] * len(nystrom) + [(2, 2)] * len(perturbed), logy=True)
    axes[0, 0].set(xlabel="iteration", ylabel=r"$\|X_tX_t^\top - A\|_F$",
                   title="(b) EP, ScaledGD η=0.5: Nyström ξ (solid), perturbed (dotted)")
    axes[0, 0].legend(fontsize=7, loc="upper right", title=None)
    save(fig, outputs)


def figure_1c(traces: pd.DataFrame, outputs) -> None:
    frame = labelled(on_log_steps(traces))
    frame["gap"] = frame["gap"].clip(lower=FLOOR)
    order = sorted(frame["curve"].unique(), key=lambda c: (not c.startswith("GD"), -float(c.split("η=")[1].split(")")[0])))
    fig, axes = figure(ncols=2, width=4.6, layout="constrained")
    curves(axes[0, 0], frame, x="step", y="gap", hue="curve", hue_order=order, logy=True, logx=True)
    axes[0, 0].set(xlabel="iteration (log)", ylabel=r"$\|X_tX_t^\top - A\|_F - \|\Sigma_2\|_F$",
                   title="(c) UP: gap to the optimum")
    curves(axes[0, 1], frame, x="step", y="weak_error", hue="curve", hue_order=order, logy=True, logx=True,
           legend=False)
    axes[0, 1].set(xlabel="iteration (log)", ylabel=r"$\|X_t^\top A^\dagger X_t - I_r\|_F$",
                   title="(c) UP: weak optimality")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    save(fig, outputs)


FIGURES = {"figure_1a": figure_1a, "figure_1b": figure_1b, "figure_1c": figure_1c}


def figure_2(records: pd.DataFrame, outputs, method: str = "lora") -> None:
    runs = records[(records["experiment"] == "table4") & (records["method"] == method)]
    tasks = list(dict.fromkeys(runs["params.task_name"]))
    fig, axes = figure(ncols=len(tasks), width=4.6)
    for ax, task in zip(axes[0], tasks):
        group = runs[runs["params.task_name"] == task]
        counts = np.sum(np.stack(group["metrics.sv_change_counts"].map(np.asarray).to_list()), axis=0)
        r = int(group["params.adapter"].iloc[0]["r"])
        shown, pooled = counts[:-1], int(counts[-1])
        index = np.arange(1, len(shown) + 1)
        top = index <= r
        ax.bar(index[top], shown[top], width=0.85, color="C1", label=f"top-{r} indices")
        ax.bar(index[~top], shown[~top], width=0.85, color="C0", label="other indices")
        share = float(group["metrics.sv_outside_top_r_share"].mean())
        ax.set_title(f"{task}: {share:.0%} outside the top {r}", fontsize=10)
        ax.set_xlabel(f"singular value index (indices > {len(shown)}: {pooled} picks)")
        ax.set_xlim(0, len(shown) + 1)
    axes[0][0].set_ylabel(f"times among the {r} most changed")
    axes[0][0].legend(loc="upper right")
    seeds = runs["seed"].nunique()
    fig.suptitle(f"Most-changed singular values after {METHOD_LABELS.get(method, method)} "
                 f"({seeds} seed{'s' if seeds > 1 else ''})", fontsize=11)
    save(fig, outputs)


METHOD_LABELS = {"lora": "LoRA", "nora": "NoRA"}
# Figures drawn from the runs' traces, and from their records' metrics.
RECORD_FIGURES = {"figure_2": figure_2}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figure", choices=sorted(FIGURES) + sorted(RECORD_FIGURES))
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", nargs="+", required=True, help="output files (.pdf, .png)")
    args = parser.parse_args(argv)
    if args.figure in RECORD_FIGURES:
        RECORD_FIGURES[args.figure](load_records(args.records), args.out)
    else:
        FIGURES[args.figure](load_traces(args.records), args.out)


if __name__ == "__main__":
    main()
