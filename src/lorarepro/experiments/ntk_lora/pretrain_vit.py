"""Pretrain the small ViT of the image or speech task on its pretraining classes.

    python -m lorarepro.experiments.ntk_lora.pretrain_vit --params '{...}' --modality image \
        --data resources/data/mnist5k --out model.pt --record .../metrics.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lorarepro.experiments.ntk_lora.vision import pretrain
from lorarepro.records import Stopwatch, write_run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--modality", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    torch.set_num_threads(params.get("threads", 1))
    modality = params["modalities"][args.modality]
    with Stopwatch() as watch:
        model, metrics = pretrain(modality, args.data, seed=modality["pretrain"]["seed"])
    model.save(args.out)
    write_run(Path(args.record).parent, paper="ntk_lora", experiment="pretrain", method=args.modality,
              seed=modality["pretrain"]["seed"], scale=params["scale"],
              params={"modality": args.modality, **modality["pretrain"], **modality["vit"]},
              metrics=metrics, runtime=watch.runtime())
    print(args.modality, metrics)


if __name__ == "__main__":
    main()
