"""Table 1: held-out-task selection accuracy after LoRA fine-tuning of each retrained base.

    python -m lorarepro.experiments.meta_lora.lm_table --params '<json>' --records <metrics.json …> \
        --out results/meta_lora/tables/table_1.csv

As the paper: per task the median over seeds of the best evaluation's accuracy (%), and "average" the
mean of the per-task medians; one row per fine-tuning rank and retraining method, with the paper's
average and the range of its per-task medians beside ours (its tasks are ConvAI2 personas, ours the
held-out corpora, so only the averages and the orderings compare).
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from lorarepro.experiments.meta_lora.lm import FINETUNE, PAPER_TABLE_1
from lorarepro.records import load_records
from lorarepro.report.tables import write_table


def table_1(records: pd.DataFrame, tasks: list[str], methods: list[str]) -> pd.DataFrame:
    runs = records[records["experiment"] == FINETUNE]
    medians = (runs.groupby(["params.finetune_rank", "method", "params.test_task"])["metrics.best_accuracy"]
               .median().mul(100).unstack("params.test_task").reindex(columns=tasks))
    seeds = runs.groupby(["params.finetune_rank", "method"])["seed"].nunique()
    rows = []
    for (rank, method), row in medians.iterrows():
        paper = PAPER_TABLE_1.get((int(rank), method))
        rows.append({"finetune_rank": int(rank), "method": method, **row.round(2).to_dict(),
                     "average": round(float(row.mean()), 2), "seeds": int(seeds[(rank, method)]),
                     "paper_average": paper[-1] if paper else None,
                     "paper_task_min": min(paper[:-1]) if paper else None,
                     "paper_task_max": max(paper[:-1]) if paper else None})
    frame = pd.DataFrame(rows)
    frame["order"] = frame["method"].map({m: i for i, m in enumerate(methods)})
    return frame.sort_values(["finetune_rank", "order"]).drop(columns="order").reset_index(drop=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the experiment's settings (JSON)")
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    settings = args.params
    frame = table_1(load_records(args.records), list(settings["test_tasks"]), list(settings["retrain_methods"]))
    k = settings["task"]["candidates"]
    notes = (f"{k}-way selection accuracy (%), chance {100 / k:.0f}%: per held-out task the median over seeds of the "
             f"best evaluation, `average` the mean of those medians. {settings['model']['name']} retrained on "
             f"{', '.join(settings['retrain_tasks'])}. The paper's columns: RoBERTa-large on ConvAI2 (20 candidates, "
             "chance 5%), its average and the range of its ten per-task medians.")
    write_table(frame, args.out, title="Table 1 — held-out-task accuracy after LoRA fine-tuning of SR and LoRA-ML bases",
                scale=settings["scale"], notes=notes)
    print(frame.to_string())


if __name__ == "__main__":
    main()
