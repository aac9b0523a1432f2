"""Synthesise the spoken-words corpus of the speech task with eSpeak NG (log-mel spectrograms).
Stops at once, naming the Debian package, when the espeak-ng program is missing.

    python -m lorarepro.experiments.ntk_lora.spoken_words --params '{...}' --out spoken_words.parquet
"""

from __future__ import annotations

import argparse
import json

from lorarepro.data.assets import AssetError
from lorarepro.data.speech import espeak_binary, spoken_words
from lorarepro.io import write_parquet


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        espeak_binary()
    except AssetError as missing:
        raise SystemExit(f"error: {missing}") from None
    speech = json.loads(args.params)["modalities"]["speech"]
    words = list(speech["pretrain_classes"]) + list(speech["finetune_classes"])
    n_mels, frames = speech["vit"]["image_size"]
    corpus = spoken_words(words, speech["corpus"]["per_word"], test_variants=speech["corpus"]["test_variants"],
                          seed=speech["corpus"]["seed"], n_mels=n_mels, frames=frames)
    write_parquet(args.out, corpus)
    print(corpus.groupby(["split"]).size().to_dict(), f"{len(words)} words")


if __name__ == "__main__":
    main()
