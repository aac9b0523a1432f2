"""Figures 1-5 of Meta-LoRA from the run records.

    python -m lorarepro.experiments.meta_lora.figures --records …/metrics.json … --out …/figure_1.pdf …

Figures 1-4: test-task error (log scale) against the fine-tuning iteration, one colour per swept
value, LoRA-ML solid and SR dashed; the line is the median over trials (the shallow code's
statistic), the band the range. Figure 5: the loss along GD started near the spurious minima of the
reduced loss found by the search (T = 3), and near App. E.1's T = 2 zero-loss points with Â ≠ A*.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from lorarepro.experiments.meta_lora.grid import FIGURES
from lorarepro.records import load_traces
from lorarepro.report.plotting import curves, figure, save

TITLES = {"T": "vary T", "n": "vary n", "N": "vary N", "k": "vary k", "d": "vary d"}
METHOD_LABELS = {"lora_ml": "LoRA-ML", "sr": "SR"}
POINTS = 300  # iterations drawn per curve; the traces hold every one
FLOOR = 1e-16  # log axes: an exact zero loss is drawn at the floor


def thinned(frame: pd.DataFrame, points: int = POINTS) -> pd.DataFrame:
    """Rows at about `points` evenly spaced iterations (and the last one) of each experiment."""
    keep = []
    for _, group in frame.groupby("experiment"):
        steps = np.unique(group["step"].to_numpy())
        chosen = steps[np.unique(np.linspace(0, len(steps) - 1, points).round().astype(int))]
        keep.append(group[group["step"].isin(chosen)])
    return pd.concat(keep, ignore_index=True)


def sweep_panel(ax, traces: pd.DataFrame, experiment: str, letter: str, legend: bool) -> None:
    frame = traces[traces["experiment"] == experiment].copy()
    key = frame["params.sweep"].iloc[0]
    values = sorted(frame[f"params.{key}"].unique())
    frame["value"] = frame[f"params.{key}"].map(lambda v: f"{key}={v}")
    frame["method"] = frame["method"].map(METHOD_LABELS)
    curves(ax, frame, x="step", y="error", hue="value", hue_order=[f"{key}={v}" for v in values], style="method",
           style_order=list(METHOD_LABELS.values()), logy=True, legend=legend)
    model = experiment.split("_")[0]
    ax.set(xlabel="fine-tuning iteration", ylabel="test task loss", title=f"({letter}) {model}, {TITLES[key]}")
    if legend:
        # between SR's plateau and LoRA-ML's noise floor, where no curve runs at the end
        ax.legend(fontsize=7, loc="center right", ncols=2)


def sweep_figure(traces: pd.DataFrame, experiments: list[str], outputs) -> None:
    fig, axes = figure(ncols=len(experiments), layout="constrained")
    for i, experiment in enumerate(experiments):
        sweep_panel(axes[0, i], traces, experiment, "abc"[i], legend=True)
    save(fig, outputs)


def figure_5(spurious: pd.DataFrame, e1: pd.DataFrame, outputs) -> None:
    fig, axes = figure(ncols=3, layout="constrained")
    ax = axes[0, 0]
    if len(spurious):
        for (seed, point), path in spurious.groupby(["seed", "point"]):
            ax.plot(path["step"], path["loss"], lw=1)
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no spurious minimum found\n(every Newton root with a positive\n"
                "definite Hessian had zero loss)", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set(xticks=[], yticks=[])
    ax.set(xlabel="GD iteration", ylabel=r"reduced loss $\hat L(U)$", title="(a) T=3: GD from spurious minima + δ")
    e1 = e1.assign(s=e1["params.s"].map(lambda s: f"s={s:g}"), loss=e1["loss"].clip(lower=FLOOR))
    order = [f"s={s:g}" for s in sorted(e1["params.s"].unique())]
    curves(axes[0, 1], e1, x="step", y="loss", hue="s", hue_order=order, logy=True, spread=None)
    axes[0, 1].set(xlabel="GD iteration", ylabel="loss (14)", title="(b) App. E.1 (T=2): GD from A(s), U(s) + δ")
    curves(axes[0, 2], e1, x="step", y="base_error", hue="s", hue_order=order, spread=None, legend=False)
    axes[0, 2].set(xlabel="GD iteration", ylabel=r"$\|\hat A - A^*\|_F^2$", title="(c) App. E.1: distance to A*")
    save(fig, outputs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", nargs="+", required=True, help="figure files; the stem names the figure")
    args = parser.parse_args(argv)

    by_experiment = defaultdict(list)
    for path in args.records:
        by_experiment[Path(path).parents[3].name].append(path)
    outputs = defaultdict(list)
    for path in args.out:
        outputs[Path(path).stem].append(path)
    for stem, files in outputs.items():
        if stem == "figure_5":
            figure_5(load_traces(by_experiment["spurious"]), load_traces(by_experiment["theory_e1"]), files)
        else:
            experiments = FIGURES[stem]
            traces = load_traces([p for e in experiments for p in by_experiment[e]])
            sweep_figure(thinned(traces), experiments, files)
        print(f"{stem}: {len(files)} files", flush=True)


if __name__ == "__main__":
    main()
