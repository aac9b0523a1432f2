"""The paper's matrix figures (2, 3, 4, 5, 9, 10), each from the run records (and traces) of its experiment;
all in one process, since at small sizes starting the interpreter costs more than drawing.

    python -m lorarepro.experiments.deep_lora.figures --records results/deep_lora/fig*/**/metrics.json \
        --out results/deep_lora/figures/figure_4.pdf results/deep_lora/figures/figure_4.png ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lorarepro.records import load_records, load_traces
from lorarepro.report import plotting


def run_label(frame: pd.DataFrame) -> pd.Series:
    """'original', 'compressed (γ=0.01)', … for the runs of Figures 4 and 5."""
    gamma = frame["params.gamma"] if "params.gamma" in frame else pd.Series(np.nan, index=frame.index)
    return np.where(frame["method"] == "original", "original",
                    "compressed (γ=" + gamma.map("{:g}".format) + ")")


def figure_2(records: pd.DataFrame, traces: pd.DataFrame):
    fig, axes = plotting.figure(2)
    records = records.assign(depth="L = " + records["params.depth"].astype(str),
                             iters_x100=records["metrics.iters_to_tol"] / 100)
    plotting.curves(axes[0, 0], records, x="params.width", y="metrics.recovery_error", hue="depth",
                    spread="sd", estimator="mean", logy=True, marker="o")
    axes[0, 0].set(xlabel="width", ylabel="recovery error",
                   title="Recovery error at loss = tol (or at the end)")
    deep = records[records["params.depth"] == records["params.depth"].max()]
    plotting.curves(axes[0, 1], deep, x="params.width", y="iters_x100", hue="depth", spread="sd",
                    estimator="mean", marker="o")
    tol = records["params.tol"].iloc[0]
    axes[0, 1].set(xlabel="width", ylabel="iterations (×100)", title=f"Iterations to training loss {tol:.0e}")
    return fig


def figure_3(records: pd.DataFrame, traces: pd.DataFrame):
    trace = traces[traces["seed"] == traces["seed"].min()]
    angles = trace[trace["step"] >= 1]  # measured against t = 1 (at t = 0 the singular vectors are arbitrary)
    fig, axes = plotting.figure(3)
    rank = int(records["params.rank"].iloc[0])
    d = int(trace["index"].max())
    colours = plotting.plt.get_cmap("viridis")(np.linspace(0, 1, d))
    for index, rows in trace.groupby("index"):
        axes[0, 0].plot(rows["step"], rows["sigma"], color=colours[index - 1], linewidth=1.0)
    for index, rows in angles.groupby("index"):
        axes[0, 1].plot(rows["step"], rows["angle_v"], color=colours[index - 1], linewidth=1.0)
        axes[0, 2].plot(rows["step"], rows["angle_u"], color=colours[index - 1], linewidth=1.0)
    rho = trace.drop_duplicates("step")
    axes[0, 0].plot(rho["step"], rho["rho"], "k--", linewidth=1.2, label="ρ(t), recursion (6)")
    axes[0, 0].legend()
    axes[0, 0].set(xlabel="iteration t", ylabel="σ_i(t)", title="Singular values of W₁")
    axes[0, 1].set(xlabel="iteration t", ylabel="∠(v_i(t), v_i(1)) [rad]", title="Right singular vectors")
    axes[0, 2].set(xlabel="iteration t", ylabel="∠(u_i(t), u_i(1)) [rad]", title="Left singular vectors")
    sm = plotting.plt.cm.ScalarMappable(cmap="viridis", norm=plotting.plt.Normalize(1, d))
    fig.colorbar(sm, ax=axes[0, 2], label="index i")
    fig.subplots_adjust(wspace=0.35)
    fig.suptitle(f"d = {d}, r* = {rank}: {d - 2 * rank} singular values stay equal to ρ(t) and their "
                 f"subspace never moves", fontsize=10)
    return fig


def _pcs(ax, traces: pd.DataFrame):
    """The trajectories on the top 3 principal components of the original's."""
    for label, rows in traces.dropna(subset=["pc1"]).groupby("label", sort=False):
        width = 4.0 if label == "original" else 1.8
        ax.plot(rows["pc1"], rows["pc2"], rows["pc3"], label=label, linewidth=width)
    ax.set(xlabel="PC 1", ylabel="PC 2", zlabel="PC 3")
    ax.set_title("End-to-end trajectories (top 3 PCs)")
    ax.legend(fontsize=8, loc="upper left")


def _with_3d_first(ncols: int):
    fig, axes = plotting.figure(ncols, width=5.0, height=3.8)
    axes[0, 0].remove()
    fig.subplots_adjust(wspace=0.45)
    return fig, fig.add_subplot(1, ncols, 1, projection="3d"), axes[0, 1:]


def figure_4(records: pd.DataFrame, traces: pd.DataFrame):
    traces = traces.assign(label=run_label(traces))
    fig, pcs, (loss,) = _with_3d_first(2)
    _pcs(pcs, traces)
    plotting.curves(loss, traces, x="wall_s", y="loss", hue="label", spread=None, logy=True)
    loss.set(xlabel="wall time [s]", ylabel="training loss", title="Training loss vs wall time")
    loss.get_legend().set_title(None)
    return fig


def figure_5(records: pd.DataFrame, traces: pd.DataFrame):
    traces = traces.assign(label=run_label(traces), iters_x100=traces["step"] / 100)
    fig, pcs, (by_iter, by_time) = _with_3d_first(3)
    _pcs(pcs, traces)
    plotting.curves(by_iter, traces, x="iters_x100", y="recovery_error", hue="label", spread=None, logy=True)
    by_iter.set(xlabel="iteration (×100)", ylabel="recovery error", title="Recovery error vs iteration")
    plotting.curves(by_time, traces, x="wall_s", y="recovery_error", hue="label", spread=None, logy=True)
    by_time.set(xlabel="wall time [s]", ylabel="recovery error", title="Recovery error vs wall time")
    for ax in (by_iter, by_time):
        ax.get_legend().set_title(None)
    return fig


def figure_9(records: pd.DataFrame, traces: pd.DataFrame):
    fig, axes = plotting.figure(1, width=5.0)
    rank = int(records["params.rank"].iloc[0])
    plotting.curves(axes[0, 0], traces.assign(seed=traces["seed"].astype(str)), x="index", y="sigma",
                    hue="seed", spread=None, logy=True)
    axes[0, 0].axvline(rank + 0.5, color="grey", linestyle=":", label=f"r* = {rank}")
    axes[0, 0].set(xlabel="index i", ylabel="σ_i of ∇ℓ w.r.t. W₂", title="Gradient spectrum at init, ReLU factorization")
    axes[0, 0].set_xscale("log")
    axes[0, 0].legend(title="seed")
    return fig


def figure_10(records: pd.DataFrame, traces: pd.DataFrame):
    fig, axes = plotting.figure(2)
    records = records.assign(iters_x100=records["metrics.iters_to_tol"] / 100)
    for ax, y, label, title in ((axes[0, 0], "iters_x100", "iterations (×100)", "Iterations to converge"),
                                (axes[0, 1], "metrics.wall_s_to_tol", "wall time [s]", "Wall time to converge")):
        plotting.curves(ax, records, x="params.rank_hat", y=y, hue="method", spread="sd", estimator="mean",
                        marker="o")
        ax.set(xlabel="overestimated rank r̂ (width 2r̂)", ylabel=label, title=title)
    return fig


def by_figure(paths: list[Path]) -> dict[str, list[Path]]:
    """Output files figure_<n>.<format> grouped by the figure number n."""
    out: dict[str, list[Path]] = {}
    for path in paths:
        out.setdefault(path.stem.removeprefix("figure_"), []).append(path)
    return out


# Figure number -> the experiment whose records it draws, and how.
FIGURES = {"2": ("fig2", figure_2), "3": ("fig3", figure_3), "4": ("fig4", figure_4), "5": ("fig5", figure_5),
           "9": ("fig9", figure_9), "10": ("fig10", figure_10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", nargs="+", required=True, help="metrics.json of every drawn experiment")
    parser.add_argument("--out", nargs="+", type=Path, required=True,
                        help="figure files figure_<n>.<format>, n one of " + ", ".join(FIGURES))
    args = parser.parse_args()
    records = load_records(args.records)
    for number, paths in by_figure(args.out).items():
        experiment, draw = FIGURES[number]
        mine = records[records["experiment"] == experiment]
        plotting.save(draw(mine, load_traces(mine["path"])), paths)


if __name__ == "__main__":
    main()
