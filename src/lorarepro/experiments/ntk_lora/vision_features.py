"""NTK features of last-layer fine-tuning of the pretrained ViT on held-out classes (Figure 3, Table 4):
the frozen blocks run once, G of the last block's W_q and W_v for every training and test example.

    python -m lorarepro.experiments.ntk_lora.vision_features --params '{...}' --modality image \
        --data resources/data/mnist5k --model model.pt --train train.pt --test test.pt
"""

from __future__ import annotations

import torch

from lorarepro.experiments.cli import parse_paths
from lorarepro.experiments.ntk_lora.vision import finetune_problem
from lorarepro.models.ntk_features import block_features


def main(argv=None) -> None:
    args = parse_paths(__doc__, "--modality", "--data", "--model", "--train", "--test", argv=argv)
    params = args.params
    torch.set_num_threads(params.get("threads", 1))
    problem = finetune_problem(params["modalities"][args.modality], args.data, args.model,
                               per_class=params["per_class"], data_seed=params["data_seed"],
                               head_seed=params["head_seed"], test_size=params["test_size"],
                               device=params.get("device", "cpu"))
    block = problem.block
    for inputs, labels, out in [(problem.train_inputs, problem.train_labels, args.train),
                                (problem.test_inputs, problem.test_labels, args.test)]:
        features = block_features(block, block.targets, [(inputs[i:i + 256],) for i in range(0, len(inputs), 256)],
                                  labels)
        features.save(out)
        print(out, len(labels), "examples; ranks", [u.shape[-1] for u, _ in features.factors.values()])


if __name__ == "__main__":
    main()
