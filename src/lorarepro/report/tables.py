"""Paper tables from run records: mean ± std over seeds, the paper's numbers beside ours, CSV + Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lorarepro.io import atomic_path, write_text


def summarize(records: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of `by`: mean, std and count over seeds of each metric (columns <metric>_mean, ...)."""
    columns = {m: m if m.startswith(("metrics.", "runtime.")) else f"metrics.{m}" for m in metrics}
    grouped = records.groupby(list(by), dropna=False, sort=False)
    out = grouped.size().rename("seeds").to_frame()
    for name, column in columns.items():
        values = pd.to_numeric(records[column], errors="coerce")
        stats = values.groupby([records[b] for b in by], dropna=False, sort=False).agg(["mean", "std"])
        out[f"{name}_mean"] = stats["mean"]
        out[f"{name}_std"] = stats["std"].fillna(0.0)
    return out.reset_index()


def mean_std(mean: float, std: float, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def to_markdown(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    def cell(v):
        if isinstance(v, float):
            return "–" if np.isnan(v) else format(v, floatfmt)
        return str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_table(frame: pd.DataFrame, csv_path: str | Path, *, title: str, scale: str, notes: str = "") -> None:
    """Write a table as CSV and as Markdown (same stem, .md) with its title, scale and notes."""
    csv_path = Path(csv_path)
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    text = f"### {title}\n\nScale: `{scale}`.{(' ' + notes) if notes else ''}\n\n{to_markdown(frame)}"
    write_text(csv_path.with_suffix(".md"), text)
