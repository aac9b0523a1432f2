"""Table 1, fine-tuning stage: every held-out task fine-tuned on one retrained base, at each of the
base's fine-tuning ranks, in one process (one engine run per rank and task).

    python -m lorarepro.experiments.meta_lora.lm_finetune --params '<json>' --method sr --seed 0 \
        --base results/meta_lora/lm_retrain/sr/base/seed=0/base.pt \
        --records results/meta_lora/lm_finetune/sr/r=8_task=deft-forum/seed=0/metrics.json … \
        --data-root resources/data --models-root resources/models

Each run freezes the retrained base, attaches a new LoRA (the retraining adapters were unloaded) and
trains it with the retrained head on the task's few-shot anchors (`train.run.finetune`); the record's
`best_accuracy` is Table 1's "accuracy of the best epoch" on the task's other anchors.
"""

from __future__ import annotations

import argparse
import json

from lorarepro.experiments.meta_lora.lm import finetune_params, finetune_runs
from lorarepro.train.run import finetune


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, required=True, help="the experiment's settings (JSON)")
    parser.add_argument("--method", required=True, help="the retraining method of the base")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--base", required=True, help="the retrained base's state dict")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--records", nargs="+", required=True, help="metrics.json of each (rank, task), in grid order")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args(argv)
    settings = {**args.params, "threads": args.threads}
    runs = finetune_runs(settings, args.method)
    if len(runs) != len(args.records):
        raise SystemExit(f"{len(runs)} runs (ranks x tasks) but {len(args.records)} record paths")
    for (rank, task), record in zip(runs, args.records):
        params = finetune_params(settings, args.method, args.seed, rank, task, args.base)
        rec = finetune(params, record.removesuffix("/metrics.json"), data_root=args.data_root,
                       models_root=args.models_root)
        print(json.dumps({"method": args.method, "seed": args.seed, "r": rank, "task": task,
                          "status": rec["status"], **rec["metrics"]}), flush=True)


if __name__ == "__main__":
    main()
