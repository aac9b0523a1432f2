"""One figure style for all five papers: seaborn on matplotlib, log axes where the paper uses them,
labelled curves, the spread over seeds shaded, every figure saved atomically as PDF and PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lorarepro.io import atomic_path  # noqa: E402

DPI = 150


def apply_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.bbox": "tight", "legend.frameon": False,
                         "axes.titleweight": "bold", "lines.linewidth": 1.8})


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure with `ncols x nrows` panels of the house size; returns (fig, axes-array)."""
    apply_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)
    return fig, axes


def curves(ax, frame: pd.DataFrame, *, x: str, y: str, hue: str, style: str | None = None,
           spread: str = "range", logy: bool = False, logx: bool = False, hue_order: Sequence | None = None,
           estimator: str = "median", **kwargs):
    """Median curve per `hue` with the spread over seeds shaded (range, or 'sd', or 'iqr')."""
    errorbar = {"range": ("pi", 100), "iqr": ("pi", 50), "sd": "sd", None: None}[spread]
    sns.lineplot(data=frame, x=x, y=y, hue=hue, style=style, estimator=estimator, errorbar=errorbar,
                 hue_order=hue_order, ax=ax, **kwargs)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    return ax


def save(fig, outputs: Iterable[str | Path], dpi: int = DPI) -> None:
    """Save one figure to each output path (format from the suffix), atomically; then close it."""
    for path in outputs:
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=dpi)
    plt.close(fig)
