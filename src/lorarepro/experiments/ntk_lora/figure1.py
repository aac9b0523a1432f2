"""Figure 1: the rank-1 global minimisers of the three toy problems of Theorem 3.1, computed and drawn.

Each panel shows the slice w = 1 of the 2x2 matrices [[w, x], [y, z]]: the rank-1 surface z = xy
coloured by the objective (blue = small), the global minimisers (purple) and their rank-1 members
(black). One run record per panel carries the computed dimensions and counts the claims check.

    python -m lorarepro.experiments.ntk_lora.figure1 --params '{...}' --records a.json b.json c.json \
        --figure results/ntk_lora/figures/figure_1.pdf results/ntk_lora/figures/figure_1.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.tri import Triangulation

from lorarepro.problems.ntk_toy import PANELS, Panel, solve_panel
from lorarepro.records import Stopwatch, write_run
from lorarepro.report import plotting

PURPLE, BLACK = "#7b2d8e", "black"


def rank_one_minimisers(panel: Panel, extent: float) -> np.ndarray:
    """The rank-1 global minimisers in (x, y, z): the isolated points, or the curve sampled in the box."""
    if panel.rank_one.dimension == 1:
        return panel.rank_one_curve(np.linspace(-2 * extent, 2 * extent, 241))
    return panel.rank_one_points


def panel_metrics(panel: Panel, extent: float) -> dict:
    points = rank_one_minimisers(panel, extent)
    dim = panel.rank_one.dimension
    return {
        "n_samples": panel.problem.n_samples,
        "minimiser_dimension": panel.minimisers.dimension,
        "rank1_minimiser_dimension": dim,
        # Isolated rank-1 minimisers; NaN when they form a curve (infinitely many).
        "rank1_minimiser_points": float(len(points)) if dim <= 0 else float("nan"),
        "min_rank_of_minimisers": panel.min_rank,
        # Both ~0 by construction: the drawn points are minimisers (loss 0) and rank 1 (z = xy).
        "max_loss_at_rank1_minimisers": float(panel.problem.loss(1.0, *points.T).max()) if len(points) else float("nan"),
        "max_det_at_rank1_minimisers": float(np.abs(points[:, 2] - points[:, 0] * points[:, 1]).max())
        if len(points) else float("nan"),
    }


def draw(ax, panel: Panel, extent: float) -> None:
    box = extent * extent  # |z| = |xy| reaches extent² on the surface
    grid = np.linspace(-extent, extent, 61)
    x, y = np.meshgrid(grid, grid)
    loss = np.log1p(panel.problem.loss(1.0, x, y, x * y))
    colours = plotting.plt.get_cmap("Blues_r")(loss / loss.max())
    ax.plot_surface(x, y, x * y, facecolors=colours, rstride=2, cstride=2, linewidth=0, alpha=0.5, shade=False)

    def inside(points):
        return (np.abs(points[:, :2]) <= extent).all(1) & (np.abs(points[:, 2]) <= box)

    if panel.minimisers.dimension == 2:  # a plane: a translucent patch, triangulated in its own coordinates
        t = np.stack([g.ravel() for g in np.meshgrid(*[np.linspace(-2 * box, 2 * box, 81)] * 2)], -1)
        keep = inside(panel.minimisers.at(t))
        tri = Triangulation(*t[keep].T)
        ax.plot_trisurf(*panel.minimisers.at(t[keep]).T, triangles=tri.triangles, color=PURPLE, alpha=0.35,
                        linewidth=0, label="global minima")
    else:  # a line
        line = panel.minimisers.at(np.linspace(-2 * box, 2 * box, 401)[:, None])
        ax.plot(*line[inside(line)].T, color=PURPLE, linewidth=2.5, label="global minima")

    points = rank_one_minimisers(panel, extent)
    if panel.rank_one.dimension == 1:
        ax.plot(*points[inside(points)].T, color=BLACK, linewidth=2.5, label="rank-1 global minima")
    elif len(points):
        ax.scatter(*points.T, color=BLACK, s=40, depthshade=False, label="rank-1 global minima")
    ax.set(xlabel="x", ylabel="y", zlabel="z", xlim=(-extent, extent), ylim=(-extent, extent), zlim=(-box, box))
    verdict = {1: "a curve", 0: f"{len(points)} points", -1: "none (rank 2)"}[panel.rank_one.dimension]
    ax.set_title(f"({panel.problem.name}) N = {panel.problem.n_samples}: rank-1 minima: {verdict}", fontsize=10)
    ax.view_init(elev=25, azim=-20)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--records", nargs=len(PANELS), required=True, help="metrics.json of panels a, b, c")
    parser.add_argument("--figure", nargs="+", required=True)
    args = parser.parse_args(argv)
    params = json.loads(args.params)

    fig, axes = plotting.figure(ncols=len(PANELS), width=4.4, height=4.2, subplot_kw={"projection": "3d"})
    for ax, problem, record in zip(axes[0], PANELS, args.records):
        with Stopwatch() as watch:
            panel = solve_panel(problem)
            metrics = panel_metrics(panel, params["extent"])
        draw(ax, panel, params["extent"])
        write_run(Path(record).parent, paper="ntk_lora", experiment="fig1", method=f"panel_{problem.name}", seed=0,
                  scale=params["scale"], params={k: v for k, v in params.items() if k != "device"},
                  metrics=metrics, runtime=watch.runtime())
    for ax in axes[0]:
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Global minima of the toy problems in the slice w = 1; the surface z = xy holds the rank-1 matrices")
    plotting.save(fig, args.figure)


if __name__ == "__main__":
    main()
