"""Synthesise the spoken-words corpus of the speech task with eSpeak NG (log-mel spectrograms).
Stops at once, naming the Debian package, when the espeak-ng program is missing.

    python -m lorarepro.experiments.ntk_lora.spoken_words --params '{...}' --out spoken_words.parquet
"""

from __future__ import annotations

from lorarepro.data.assets import AssetError
from lorarepro.data.speech import espeak_binary, spoken_words
from lorarepro.experiments.cli import parse_paths
from lorarepro.io import write_parquet


def main(argv=None) -> None:
    args = parse_paths(__doc__, "--out", argv=argv)
    try:
        espeak_binary()
    except AssetError as missing:
        raise SystemExit(f"error: {missing}") from None
    speech = args.params["modalities"]["speech"]
    words = list(speech["pretrain_classes"]) + list(speech["finetune_classes"])
    n_mels, frames = speech["vit"]["image_size"]
    corpus = spoken_words(words, speech["corpus"]["per_word"], test_variants=speech["corpus"]["test_variants"],
                          seed=speech["corpus"]["seed"], n_mels=n_mels, frames=frames)
    write_parquet(args.out, corpus)
    print(corpus.groupby(["split"]).size().to_dict(), f"{len(words)} words")


if __name__ == "__main__":
    main()
