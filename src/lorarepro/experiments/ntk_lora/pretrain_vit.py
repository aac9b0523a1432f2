"""Pretrain the small ViT of the image or speech task on its pretraining classes.

    python -m lorarepro.experiments.ntk_lora.pretrain_vit --params '{...}' --modality image \
        --data resources/data/mnist5k --out model.pt --record .../metrics.json
"""

from __future__ import annotations

from pathlib import Path

import torch

from lorarepro.experiments.cli import parse_paths
from lorarepro.experiments.ntk_lora.vision import pretrain
from lorarepro.records import Stopwatch, write_run


def main(argv=None) -> None:
    args = parse_paths(__doc__, "--modality", "--data", "--out", "--record", argv=argv)
    params = args.params
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
