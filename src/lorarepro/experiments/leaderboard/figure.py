"""The leaderboard figure from leaderboard.csv and average_rank.csv:

    python -m lorarepro.experiments.leaderboard.figure --table leaderboard.csv --ranks average_rank.csv \
        --out figure.pdf figure.png

Top row: per task, each method's held-out score (mean ± std over seeds), best first, its rank on the
bar, the task's best in a darker shade and the methods whose paired difference from it is noise
hatched. Bottom row: the average rank over tasks, and the wall time and peak memory of a run.
"""

from __future__ import annotations

import argparse

import pandas as pd

from lorarepro.report.plotting import figure, save


def task_panel(ax, part: pd.DataFrame, colours: dict) -> None:
    part = part.sort_values("rank", kind="stable")
    labels = [f"#{row.rank} {row.method}" for row in part.itertuples()]
    bars = ax.barh(labels, part["mean"], xerr=part["std"], color=[colours[m] for m in part["method"]],
                   edgecolor="black", linewidth=0.4, error_kw={"elinewidth": 0.8, "capsize": 2})
    for bar, row in zip(bars, part.itertuples()):
        if row.verdict == "noise":
            bar.set_hatch("///")
    ax.invert_yaxis()
    ax.set_title(part["task"].iloc[0])
    ax.set_xlabel(f"{part['metric'].iloc[0]} (held-out)")
    ax.tick_params(axis="y", labelsize=7)


def cost_panel(ax, ranks: pd.DataFrame, column: str, label: str, colours: dict, names: bool = True) -> None:
    ax.barh(ranks["method"], ranks[column], color=[colours[m] for m in ranks["method"]], edgecolor="black",
            linewidth=0.4)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.tick_params(axis="y", labelsize=7, labelleft=names)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True)
    parser.add_argument("--ranks", required=True)
    parser.add_argument("--out", nargs="+", required=True)
    args = parser.parse_args(argv)
    table, ranks = pd.read_csv(args.table), pd.read_csv(args.ranks)
    tasks = list(dict.fromkeys(table["task"]))
    ncols = max(len(tasks), 3)
    fig, axes = figure(ncols, 2, width=3.0, height=3.4)
    import seaborn as sns

    palette = sns.color_palette("tab20", len(ranks))
    colours = dict(zip(ranks["method"], palette))
    for ax, task in zip(axes[0], tasks):
        task_panel(ax, table[table["task"] == task], colours)
    for ax in axes[0][len(tasks):]:
        ax.set_visible(False)
    cost_panel(axes[1][0], ranks, "average_rank", "average rank over tasks (1 = best)", colours)
    cost_panel(axes[1][1], ranks, "wall_s", "wall time of a run (s)", colours, names=False)
    cost_panel(axes[1][2], ranks, "peak_mb", "peak memory of a run (MB)", colours, names=False)
    for ax in axes[1][3:]:
        ax.set_visible(False)
    fig.subplots_adjust(wspace=0.55)
    fig.suptitle("LoRA leaderboard: held-out score ± std over seeds (#rank on the task; hatched: the paired "
                 "difference from the task's best is not significant)", fontsize=10)
    save(fig, args.out)


if __name__ == "__main__":
    main()
