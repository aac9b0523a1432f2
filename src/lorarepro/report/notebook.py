"""What the papermill report notebooks display. The notebooks stay thin (parameters + one call), so
the five paper reports share one renderer and differ only in workflow/report/<paper>.yaml."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from IPython.display import HTML, Markdown, display

from lorarepro.report.costs import BENCHMARKS_DIR, RULES_DIR, benchmark_records, job_costs, per_paper

VERDICT_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "not-run": "#6e7781"}
STYLE = """<style>
.lr-verdict{font-weight:bold;padding:1px 6px;border-radius:4px;color:white}
.lr-table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
.lr-table td,.lr-table th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
.lr-figure{max-width:100%;margin:0.5em 0}
.lr-missing{color:#6e7781;font-style:italic}
</style>"""


def verdict_badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#6e7781")
    return f'<span class="lr-verdict lr-{html.escape(verdict)}" style="background:{colour}">{html.escape(verdict)}</span>'


def _format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def claims_html(claims: pd.DataFrame) -> str:
    """Claim rows: where, statement, the paper's value, ours, verdict and how it was checked."""
    rows = []
    for c in claims.itertuples(index=False):
        rows.append(
            f'<tr class="lr-claim" data-claim="{html.escape(c.claim)}"><td>{html.escape(c.claim)}</td>'
            f"<td>{html.escape(str(c.where))}</td><td>{html.escape(str(c.statement))}</td>"
            f"<td>{_format_value(c.paper_value)}</td><td>{_format_value(c.reproduced)}</td>"
            f"<td>{verdict_badge(c.verdict)}</td><td>{html.escape(str(c.note if isinstance(c.note, str) else ''))}</td></tr>"
        )
    head = "<tr><th>claim</th><th>where</th><th>statement</th><th>paper</th><th>ours</th><th>verdict</th><th>check</th></tr>"
    return f'<table class="lr-table lr-claims">{head}{"".join(rows)}</table>'


def figure_html(png: Path, stem: str) -> str:
    if not png.exists():
        return f'<p class="lr-missing">{html.escape(stem)}: not produced at this scale.</p>'
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<img class="lr-figure" alt="{html.escape(stem)}" data-figure="{html.escape(stem)}" src="data:image/png;base64,{data}"/>'


def _frame_html(frame: pd.DataFrame, table_id: str) -> str:
    return frame.to_html(index=False, classes=["lr-table"], na_rep="–", float_format=lambda v: f"{v:.4g}",
                         table_id=table_id)


def table_html(csv: Path, stem: str) -> str:
    if not csv.exists():
        return f'<p class="lr-missing">{html.escape(stem)}: not produced at this scale.</p>'
    return _frame_html(pd.read_csv(csv), f"table-{stem}")


def load_spec(paper: str, root: Path) -> dict:
    """workflow/report/<paper>.yaml; a paper without one still gets a report of its claims."""
    path = root / "workflow" / "report" / f"{paper}.yaml"
    if not path.exists():
        return {"title": paper, "short": paper, "summary": "No experiments of this paper are wired yet.", "sections": []}
    return yaml.safe_load(path.read_text())


def paper_report(paper: str, scale: str, root: str | Path = ".") -> None:
    """Render one paper's report: per figure/table what it shows, ours, the paper's numbers, the
    claim rows, and every deviation from the paper's setting at this scale."""
    root = Path(root)
    spec = load_spec(paper, root)
    claims = pd.read_csv(root / "results" / paper / "claims.csv", dtype={"paper_value": str})
    display(HTML(STYLE))
    counts = claims["verdict"].value_counts().to_dict()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICT_COLOURS)
    display(Markdown(f"# {spec['title']}\n\n{spec.get('summary', '')}\n\n"
                     f"**Scale:** `{scale}` &nbsp; **Claims:** {summary}"))
    shown: set[str] = set()
    deviations = []
    for section in spec.get("sections", []):
        display(Markdown(f"## {section['title']}\n\n{section.get('shows', '')}"))
        for stem in section.get("figures", []):
            display(HTML(figure_html(root / "results" / paper / "figures" / f"{stem}.png", stem)))
        for stem in section.get("tables", []):
            display(HTML(table_html(root / "results" / paper / "tables" / f"{stem}.csv", stem)))
        ids = section.get("claims", [])
        rows = claims[claims["claim"].isin(ids)]
        if not rows.empty:
            display(HTML(claims_html(rows)))
        shown.update(ids)
        note = (section.get("deviations") or {}).get(scale)
        if note:
            display(Markdown(f"*Deviation from the paper at scale `{scale}`:* {note}"))
            deviations.append((section["title"], note))
    rest = claims[~claims["claim"].isin(shown)]
    if not rest.empty:
        display(Markdown("## Other claims"))
        display(HTML(claims_html(rest)))
    display(Markdown("## Deviations from the paper's setting"))
    if deviations:
        display(Markdown("\n".join(f"- **{title}**: {note}" for title, note in deviations)))
    else:
        display(Markdown("None at this scale."))


def index_report(scale: str, papers: list[str], root: str | Path = ".") -> None:
    """The landing page: per paper the claim verdicts and a link to its report, then every claim."""
    root = Path(root)
    scorecard = pd.read_csv(root / "results" / "scorecard.csv", dtype={"paper_value": str})
    display(HTML(STYLE))
    display(Markdown(f"# lorarepro — reproduction scorecard\n\nScale: `{scale}`. Each claim of each paper, "
                     "the paper's value, ours, and a verdict computed from the run records "
                     "(`not-run` when no run of this scale covers it)."))
    rows = []
    for paper in papers:
        spec = load_spec(paper, root)
        counts = scorecard[scorecard["paper"] == paper]["verdict"].value_counts()
        cells = "".join(f"<td>{int(counts.get(v, 0))}</td>" for v in VERDICT_COLOURS)
        rows.append(f'<tr><td><a href="{paper}.html">{html.escape(spec.get("short", paper))}</a></td>'
                    f"<td>{html.escape(spec['title'])}</td>{cells}</tr>")
    head = "<tr><th>paper</th><th>title</th>" + "".join(f"<th>{v}</th>" for v in VERDICT_COLOURS) + "</tr>"
    display(HTML(f'<table class="lr-table lr-summary">{head}{"".join(rows)}</table>'))
    for paper in papers:
        part = scorecard[scorecard["paper"] == paper]
        if not part.empty:
            display(Markdown(f"## {load_spec(paper, root).get('short', paper)}"))
            display(HTML(claims_html(part)))
    leaderboard_section(root)
    cost_of_this_run(root)
    benchmark_results(root)


def leaderboard_section(root: Path) -> None:
    """The cross-paper leaderboard (results/leaderboard/), when this run built it: the figure, the
    average ranks, and per task every method with its paired comparison against the task's best."""
    folder = root / "results" / "leaderboard"
    table = folder / "leaderboard.csv"
    if not table.exists():
        return
    note = (folder / "leaderboard.md").read_text().split("\n\n")[1] if (folder / "leaderboard.md").exists() else ""
    display(Markdown(f"## Leaderboard: every method on the same tasks\n\n{note}"))
    display(HTML(figure_html(folder / "figures" / "leaderboard.png", "leaderboard")))
    display(HTML(table_html(folder / "average_rank.csv", "average_rank")))
    display(HTML(table_html(table, "leaderboard")))
    display(Markdown("What each task's job cost on this machine (run records; one thread per job):"))
    display(HTML(table_html(folder / "budget.csv", "budget")))


def cost_of_this_run(root: Path) -> None:
    """Per paper the jobs, their summed wall time and the largest peak memory, from Snakemake's
    benchmark files: what rerunning this scale costs on this machine."""
    jobs = job_costs(root / RULES_DIR)
    display(Markdown("## Cost of this run"))
    if jobs.empty:
        display(HTML('<p class="lr-missing">No benchmark files under results/benchmarks/rules/.</p>'))
        return
    papers = per_paper(jobs).assign(wall_h=lambda f: f["wall_s"] / 3600)
    display(Markdown(f"{len(jobs)} jobs, {jobs['wall_s'].sum() / 3600:.2f} h of job time (serial sum; "
                     f"wall-clock is shorter with parallel jobs), peak memory of one job "
                     f"{jobs['max_rss_mb'].max():.0f} MB. Per rule: `python benchmarks/rule_costs.py`."))
    display(HTML(_frame_html(papers[["paper", "jobs", "wall_h", "max_rss_mb", "costliest_rule"]], "table-costs")))


def benchmark_results(root: Path) -> None:
    """The latest record of each benchmark script that was run (scripts/benchmark.sh), if any."""
    records = benchmark_records(root / BENCHMARKS_DIR)
    if records.empty:
        return
    display(Markdown("## Benchmarks\n\nFrom `scripts/benchmark.sh` (benchmarks/*.py); each row is one record."))
    for experiment, part in records.groupby("experiment", sort=True):
        metrics = part.dropna(axis=1, how="all").filter(regex=r"^(method|metrics\.)")
        display(Markdown(f"### {experiment}"))
        display(HTML(_frame_html(metrics.rename(columns=lambda c: c.removeprefix("metrics.")),
                                 f"table-benchmark-{experiment}")))
