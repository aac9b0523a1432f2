"""Spoken words synthesised offline with eSpeak NG, as log-mel spectrograms: a small keyword-spotting
task (in the spirit of SUPERB's Speech Commands task) for models pretrained in the pipeline.

Each utterance is one word spoken by one "speaker": an English accent of eSpeak NG (British, American,
Scottish, Caribbean, ...) combined with a voice variant (male, female, whisper, creaky ...), at a drawn
speed and pitch. Speakers are split by voice variant, so test speakers are never heard in training.
Needs the `espeak-ng` program (Debian package `espeak-ng`; scripts/bootstrap.sh installs it when run as root).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import pandas as pd
import torch

from lorarepro.data.assets import AssetError

SAMPLE_RATE = 22050  # eSpeak NG's output rate
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "whisper", "klatt",
            "klatt2", "klatt3", "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Linda", "Mario", "Michael",
            "Mike", "Paul", "Rob", "Steph", "Tweaky", "grandpa")


def espeak_binary() -> str:
    """The espeak-ng program, or an AssetError that names the package to install."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise AssetError("the speech task synthesises its words with espeak-ng, which is not on PATH: install "
                         "Debian's espeak-ng package (`apt-get install espeak-ng`, or run scripts/bootstrap.sh as root)")
    return binary


def espeak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """One utterance as float32 samples in [-1, 1] at SAMPLE_RATE."""
    wav = subprocess.run([espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         check=True, capture_output=True).stdout
    # In stream mode the RIFF header carries no length: read the PCM after the "data" chunk header.
    with wave.open(io.BytesIO(wav)) as header:
        assert header.getframerate() == SAMPLE_RATE and header.getsampwidth() == 2
    start = wav.index(b"data") + 8
    return np.frombuffer(wav[start:start + (len(wav) - start) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1]."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    filters = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    return torch.tensor(filters, dtype=torch.float32)


def log_mel(samples: np.ndarray, *, n_mels: int = 40, frames: int = 100, n_fft: int = 512, hop: int = 220) -> np.ndarray:
    """A standardised log-mel spectrogram [n_mels, frames] (10 ms hop), the word centred and padded."""
    loud = np.flatnonzero(np.abs(samples) > 1e-3)  # trim eSpeak's leading and trailing silence
    samples = samples[loud[0]:loud[-1] + 1] if len(loud) else samples
    spectrum = torch.stft(torch.from_numpy(samples), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    power = mel_filterbank(n_fft, n_mels, SAMPLE_RATE, 60.0, 8000.0) @ spectrum.abs().square()
    logmel = torch.log(power + 1e-6)
    have = logmel.shape[1]
    if have >= frames:
        logmel = logmel[:, (have - frames) // 2:(have - frames) // 2 + frames]
    else:  # pad with the quietest level seen, on both sides
        left = (frames - have) // 2
        logmel = torch.nn.functional.pad(logmel, (left, frames - have - left), value=float(logmel.min()))
    return ((logmel - logmel.mean()) / logmel.std().clamp_min(1e-6)).numpy()


def spoken_words(words: list[str], per_word: int, *, test_variants: int, seed: int, n_mels: int = 40,
                 frames: int = 100) -> pd.DataFrame:
    """`per_word` utterances of each word by drawn speakers; the last `test_variants` voice variants are
    held out as test speakers. Columns: features (flat float32 [n_mels·frames]), word, accent, variant,
    speed, pitch, split (train | test)."""
    rng = np.random.default_rng(seed)
    rows = []
    for word in words:
        for _ in range(per_word):
            accent, variant = ACCENTS[rng.integers(len(ACCENTS))], VARIANTS[rng.integers(len(VARIANTS))]
            speed, pitch = int(rng.integers(130, 211)), int(rng.integers(25, 76))
            samples = espeak(word, f"{accent}+{variant}", speed, pitch)
            rows.append({"features": log_mel(samples, n_mels=n_mels, frames=frames).reshape(-1), "word": word,
                         "accent": accent, "variant": variant, "speed": speed, "pitch": pitch,
                         "split": "test" if variant in VARIANTS[len(VARIANTS) - test_variants:] else "train"})
    return pd.DataFrame(rows)
