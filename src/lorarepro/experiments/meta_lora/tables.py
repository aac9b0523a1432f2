"""Meta-LoRA tables from the run records: the final test-task errors behind Figures 1-4 (the paper
prints none), and the theory checks (Theorem 2, Prop. 3, GD on (14), App. E.1).

    python -m lorarepro.experiments.meta_lora.tables --records …/metrics.json … --out …/table_2.csv …
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lorarepro.records import load_records
from lorarepro.report.tables import write_table


def median_range(values: pd.Series) -> str:
    return f"{values.median():.3g} [{values.min():.3g}, {values.max():.3g}]"


def table_2(records: pd.DataFrame) -> pd.DataFrame:
    """Final fine-tuning error per model, sweep and value: median [min, max] over trials, both methods."""
    runs = records[records["experiment"].str.match(r"(linear|shallow)_[TnNkd]$")]
    rows = []
    for (experiment, value), group in runs.groupby(["experiment", "params.setting"], sort=False):
        model, sweep = experiment.split("_")
        sr, ml = (group[group["method"] == m] for m in ("sr", "lora_ml"))
        rows.append({"model": model, "sweep": sweep, "setting": value, "rank": int(group["params.rank"].iloc[0]),
                     "steps": int(group["params.steps"].iloc[0]), "trials": len(ml),
                     "SR final error": median_range(sr["metrics.final_error"]),
                     "LoRA-ML final error": median_range(ml["metrics.final_error"]),
                     "median log10(SR / LoRA-ML)": round(ml["metrics.log10_gain_over_sr"].median(), 2),
                     "LoRA-ML wins": f"{(ml['metrics.log10_gain_over_sr'] > 0).sum()}/{len(ml)}"})
    return pd.DataFrame(rows)


def theory(records: pd.DataFrame, experiment: str, keys: list[str], metrics: dict[str, str]) -> pd.DataFrame:
    """One row per check point (mean over seeds) with the chosen metrics under readable names."""
    runs = records[records["experiment"] == experiment]
    frame = runs.groupby([f"params.{k}" for k in keys], sort=True)[[f"metrics.{m}" for m in metrics]].mean()
    frame = frame.reset_index().rename(columns={f"params.{k}": k for k in keys})
    return frame.rename(columns={f"metrics.{m}": name for m, name in metrics.items()})


TABLES = {
    "table_2": (table_2, "Final test-task error after LoRA fine-tuning (Figures 1-4)",
                "The paper plots these curves and prints no numbers; median [min, max] over trials."),
    "table_thm2": (lambda r: theory(r, "theory_thm2", ["T", "k", "d"], {
        "mc_mean": "Monte-Carlo Σ_t‖R_t − R̄‖²", "mc_sem": "s.e.", "corrected_constant": "(T−1)kd(d+1)",
        "paper_constant": "paper: (T+1−2/T)kd(d+1)", "ratio_to_corrected": "MC / corrected",
        "ratio_to_paper": "MC / paper"}),
        "Theorem 2: excess pooled risk of SR, 2·Σ_t L_t*(Â_SR)",
        "The paper's constant mis-sums the cross term; the exact expectation is (T−1)kd(d+1)."),
    "table_prop3": (lambda r: theory(r, "theory_prop3", ["T", "k", "d"], {
        "rank_threshold": "k(T+1)", "min_loss_below_threshold": "min L* at r = k(T+1) − 1",
        "max_loss_at_threshold": "max L* at r = k(T+1)"}),
        "Prop. 3: population loss of the best rank-r adapter on Â_SR",
        "Positive below the threshold k(T+1), zero (round-off) at it."),
    "table_gd_population": (lambda r: theory(r, "theory_gd", ["T", "k", "d"], {
        "fraction_zero_loss": "fraction at zero loss", "median_final_loss": "median final loss",
        "max_final_loss": "max final loss", "max_base_error": "max ‖Â − A*‖²"}),
        "GD on the population objective (14) from a random start", "Thm 11 (T = 2) and Sec. 4.1 (T ≥ 3)."),
    "table_e1": (lambda r: theory(r, "theory_e1", ["s"], {
        "loss": "loss (14)", "base_error": "‖A(s) − A*‖²", "gd_final_loss": "loss after GD from +δ",
        "gd_final_base_error": "‖A − A*‖² after GD"}),
        "App. E.1: the T = 2 family of zero-loss points with Â ≠ A*", ""),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", nargs="+", required=True, help="table CSVs; the stem names the table")
    args = parser.parse_args(argv)

    records = load_records(args.records)
    scale = records["scale"].iloc[0]
    for path in args.out:
        build, title, notes = TABLES[Path(path).stem]
        write_table(build(records), path, title=title, scale=scale, notes=notes)
        print(f"{Path(path).stem} written", flush=True)


if __name__ == "__main__":
    main()
