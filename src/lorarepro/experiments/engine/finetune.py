"""Fine-tune a pretrained model with an adapter and write the run record.

    python -m lorarepro.experiments.engine.finetune --params '{"model": {...}, "task": {...}, ...}' \\
        --out results/<paper>/<experiment>/<method>/<setting>/seed=<s>

The parameters are described in `lorarepro.train.run`; `--params` takes JSON text or a path to a
JSON file. Data sets and models are read from `--data-root` and `--models-root`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lorarepro.train.run import finetune


def parse_params(text: str) -> dict:
    path = Path(text)
    return json.loads(path.read_text(encoding="utf-8") if not text.lstrip().startswith("{") and path.exists() else text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, help="JSON text or a JSON file")
    parser.add_argument("--out", required=True, help="the run folder (metrics.json, trace.parquet)")
    parser.add_argument("--data-root", default="resources/data")
    parser.add_argument("--models-root", default="resources/models")
    args = parser.parse_args(argv)
    record = finetune(parse_params(args.params), args.out, data_root=args.data_root, models_root=args.models_root)
    shown = {k: v for k, v in record["metrics"].items() if not k.startswith("best_")}
    print(json.dumps({"status": record["status"], **shown}, indent=1))


if __name__ == "__main__":
    main()
