"""Synthetic NTK features with N training examples (the √N-scaling sweep, claim C9).

    python -m lorarepro.experiments.ntk_lora.synthetic_features --params '{...}' --n 32 --out train.pt
"""

from __future__ import annotations

import argparse
import json

from lorarepro.problems.ntk_synthetic import synthetic_features
from lorarepro.seeding import seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    p = json.loads(args.params)
    _, generator = seed_everything(p["data_seed"] * 1000 + args.n)
    features = synthetic_features(args.n, classes=p["classes"], shape=tuple(p["shape"]), matrices=p["matrices"],
                                  positions=p["positions"], true_rank=p["true_rank"], signal=p["signal"],
                                  generator=generator)
    features.save(args.out)


if __name__ == "__main__":
    main()
