"""The leaderboard tables from the run records:

    python -m lorarepro.experiments.leaderboard.tables --params <json> --records <metrics.json ...> \
        --out leaderboard.csv average_rank.csv learning_rates.csv budget.csv

- leaderboard.csv: per task and method, the held-out score's mean ± std over seeds at the selected rate,
  the rank on the task, wall time per run and peak memory, and the paired comparison with the task's
  best (p-value, verdict, seeds a difference of this size needs);
- average_rank.csv: per method, its rank averaged over the tasks;
- learning_rates.csv: every sweep run's validation score and the rate each method selected;
- budget.csv: per task's job, its runs, median step time, training and wall time, and shared setup.
"""

from __future__ import annotations

import argparse
import json

from lorarepro.config import seeds_of
from lorarepro.experiments.leaderboard.grid import SELECTED
from lorarepro.records import load_records
from lorarepro.report.leaderboard import average_ranks, job_budget, leaderboard, runs_frame
from lorarepro.report.tables import write_table

COLUMNS = ["method", "task", "metric", "mean", "std", "seeds", "rank", "wall_s", "peak_mb", "lr", "diverged", "best",
           "diff", "diff_std", "paired_seeds", "p_value", "seeds_needed", "verdict"]


def notes(settings) -> str:
    tasks = settings["tasks"]
    cached = sorted(t for t, s in tasks.items() if s.get("cache_lower_layers"))
    top = ", ".join(f"{t}: top {s['adapt_top']}" for t, s in tasks.items() if s.get("adapt_top"))
    return (f"Scores on the `{settings['report_split']}` split, mean ± std over {len(seeds_of(settings))} "
            f"seeds at the learning rate each method selected on the `{settings['selection_split']}` split "
            f"(seed {settings.get('sweep_seed', 0)}). Rank 1 = best mean. `verdict`: paired t-test over seeds "
            f"against the task's best at level {settings['significance']}; `seeds_needed`: the seeds a "
            f"difference of the observed size and spread needs to be significant. Adapted layers: {top or 'all'}; "
            f"frozen lower layers cached (no dropout below the adapters): {', '.join(cached) or 'none'}. "
            f"`wall_s`: one run's time (adapter init, training, evaluation), without the job's shared model "
            f"loading and caching; `peak_mb`: the largest resident memory during a run (the job's shared model included).")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True)
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", nargs=4, required=True, metavar=("LEADERBOARD", "RANKS", "RATES", "BUDGET"))
    args = parser.parse_args(argv)
    settings = args.params
    records = load_records(args.records)
    selected = records["path"].astype(str).str.contains(f"/{SELECTED}/")
    runs = runs_frame(records[selected])
    table = leaderboard(runs, alpha=settings["significance"])
    lrs = runs.groupby(["task", "method"])["lr"].first()
    table["lr"] = [lrs[(t, m)] for t, m in zip(table["task"], table["method"])]
    metric = runs.groupby("task")["metric"].first()
    table["metric"] = table["task"].map(metric)
    scale = settings["scale"]
    write_table(table[COLUMNS], args.out[0], title="Leaderboard: every method on every task", scale=scale,
                notes=notes(settings))
    write_table(average_ranks(table), args.out[1], title="Average rank over the tasks", scale=scale,
                notes="Mean of each method's rank (1 = best) over the tasks every method ran (`tasks`); "
                "wall time per run and peak memory over all its tasks.")
    sweep = runs_frame(records[~selected]).rename(columns={"value": "validation"})
    sweep["selected"] = [lrs.get((t, m)) == lr for t, m, lr in zip(sweep["task"], sweep["method"], sweep["lr"])]
    write_table(sweep[["task", "method", "lr", "metric", "validation", "selected", "wall_s"]]
                .sort_values(["task", "method", "lr"], ignore_index=True),
                args.out[2], title="Learning-rate sweep", scale=scale,
                notes=f"Validation scores at seed {settings.get('sweep_seed', 0)}; `selected`: the rate used for every seed.")
    write_table(job_budget(records, settings.get("sweep_seed", 0)), args.out[3], title="What each task's job cost",
                scale=scale, notes="Measured on this machine (timings grow with its load): `train_s` = Σ step_s_median × "
                "steps over the job's runs; `runs_wall_s` adds adapter inits and evaluations; `job_s` adds the shared "
                "model loading, tokenisation and lower-layer cache (`setup_s`). One thread per job.")


if __name__ == "__main__":
    main()
