"""An embedded, deterministic keyword dataset made in code: no files, no network.

Each class is a "word": a sequence of speech-like segments (harmonic vowels
shaped by formants, noise bursts, short pauses). Pitch, formants, durations,
onset, loudness and background noise are drawn per clip. Pairs of classes such
as `usa`/`sau` use the same segments in a different order, so a model must
hear order, not just content.
"""

from __future__ import annotations

import numpy as np

from audioclf.data.sources.base import SPLITS, ClipRef, Source

# Formant frequencies (Hz) of a few vowels.
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "u": (300, 870, 2240)}

WORDS = {
    "ai": "ai",
    "ia": "ia",
    "usa": "usa",
    "sau": "sau",
    "tet": "tet",
    "ete": "ete",
    "is": "is",
    "u_e": "u_e",
}


class SyntheticSource(Source):
    name = "synthetic"

    def __init__(
        self,
        num_classes: int = 8,
        train_per_class: int = 64,
        val_per_class: int = 16,
        test_per_class: int = 16,
        sample_rate: int = 16000,
        seconds: float = 1.0,
        seed: int = 0,
    ):
        if not 2 <= num_classes <= len(WORDS):
            raise ValueError(f"data.num_classes must be 2..{len(WORDS)}, got {num_classes}")
        self.class_names = list(WORDS)[:num_classes]
        self.per_class = {"train": train_per_class, "val": val_per_class, "test": test_per_class}
        self.sample_rate = sample_rate
        self.num_samples = int(round(seconds * sample_rate))
        self.seed = seed

    def clips(self, split: str) -> list[ClipRef]:
        count = self.per_class[split] * len(self.class_names)
        return [
            ClipRef(f"synthetic:{split}:{i}", i % len(self.class_names)) for i in range(count)
        ]

    def read(self, clip: ClipRef) -> tuple[np.ndarray, int]:
        _, split, index = clip.path.split(":")
        rng = np.random.default_rng([self.seed, SPLITS.index(split), int(index)])
        word = WORDS[self.class_names[clip.label]]
        return render_word(word, rng, self.sample_rate, self.num_samples), self.sample_rate

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        """Ten seconds each of white, brown and mains-hum noise."""
        rng = np.random.default_rng([self.seed, 99])
        n = 10 * sample_rate
        white = rng.normal(0, 0.3, n)
        brown = np.cumsum(rng.normal(0, 1, n))
        brown = (brown - np.convolve(brown, np.ones(400) / 400, "same")) * 0.05
        hum = 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / sample_rate) + rng.normal(0, 0.02, n)
        return [np.clip(x, -1, 1).astype(np.float32) for x in (white, brown, hum)]

    def fingerprint(self) -> str:
        return f"synthetic-v1:{self.seed}:{self.sample_rate}:{self.num_samples}"


def render_word(word: str, rng: np.random.Generator, rate: int, length: int) -> np.ndarray:
    f0 = rng.uniform(90, 260)
    stretch = rng.uniform(0.9, 1.1)  # speaker's vocal tract length
    parts = [render_segment(s, rng, rate, f0, stretch) for s in word]
    speech = np.concatenate(parts)[:length]
    speech *= rng.uniform(0.1, 0.6) / (np.abs(speech).max() + 1e-9)
    clip = np.zeros(length, dtype=np.float32)
    onset = rng.integers(0, length - len(speech) + 1)
    clip[onset : onset + len(speech)] = speech
    snr_db = rng.uniform(10, 30)
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (snr_db / 20)
    clip += rng.normal(0, noise_rms, length).astype(np.float32)
    return np.clip(clip, -1, 1)


def render_segment(kind: str, rng, rate: int, f0: float, stretch: float) -> np.ndarray:
    if kind in VOWELS:
        return vowel(VOWELS[kind], rng, rate, f0, stretch)
    if kind == "s":
        return fricative(rng, rate, rng.uniform(0.08, 0.15))
    if kind == "t":
        return fricative(rng, rate, rng.uniform(0.02, 0.04), low_hz=500) * 1.5
    if kind == "_":
        return np.zeros(int(rng.uniform(0.05, 0.12) * rate), dtype=np.float32)
    raise ValueError(f"unknown segment {kind!r}")


def vowel(formants, rng, rate: int, f0: float, stretch: float) -> np.ndarray:
    n = int(rng.uniform(0.12, 0.25) * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1 + rng.uniform(-0.08, 0.08) * t / t[-1])  # a slight glide
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = np.arange(1, int(rate / 2 / f0))
    centres = np.array(formants) * stretch * rng.uniform(0.95, 1.05, len(formants))
    freqs = harmonics[:, None] * f0
    gains = (1 / (1 + ((freqs - centres) / 90.0) ** 2)).sum(axis=1)
    wave = (gains[:, None] * np.sin(harmonics[:, None] * phase)).sum(axis=0)
    return (wave * np.hanning(n)).astype(np.float32)


def fricative(rng, rate: int, seconds: float, low_hz: float = 3000) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) < low_hz] = 0
    burst = np.fft.irfft(spectrum, n) * np.hanning(n)
    return (burst / (np.abs(burst).max() + 1e-9) * 0.5).astype(np.float32)
