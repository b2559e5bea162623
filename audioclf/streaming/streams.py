"""Labelled streams for keyword spotting: a split's words laid on a continuous background.

audioclf-streams data.root=<Speech Commands copy> split=test count=4 minutes=4

Every word clip of one split (keywords, and other words labelled `_unknown_`; `_silence_`
clips are left out) is used `passes` times, shuffled and dealt to `count` streams. In a stream
the words follow each other with random gaps; a stream shorter than `minutes` has its gaps
stretched to reach it. Under the words runs a bed of random crops of background recordings,
crossfaded, each at a level drawn from `background_dbfs`; each word is scaled so the RMS of its
speech is a drawn SNR above the background's RMS where it lands (less where that would peak above
-1 dBFS). An event's times are where that speech is, to the sample: (offset + speech start) / rate
to (offset + speech end) / rate.
The labels CSV is the one audioclf/streaming/scoring.py reads: file,start_s,end_s,label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioclf.data.io import resample, to_int16
from audioclf.data.sources import ClipRef, Source
from audioclf.errors import UserError

SILENCE, UNKNOWN = "_silence_", "_unknown_"
FRAME_S = 0.010  # speech_bounds' frame
CROSSFADE_S = 0.050  # between background crops
CROP_S = (2.0, 10.0)  # background crop lengths
SILENT_RMS = 1e-9  # below this a clip or a stretch of background counts as digital silence
WORD_PEAK = 0.89  # -1 dBFS: a word that would peak higher is turned down to it (its SNR then lower), not clipped


def speech_bounds(samples: np.ndarray, rate: int, floor_db: float = -35.0) -> tuple[int, int]:
    """[start, end) sample offsets of the speech in a clip: from the first to the last 10 ms frame
    whose RMS is within `floor_db` of the loudest frame's. A silent clip is all speech."""
    frame = max(1, round(rate * FRAME_S))
    if len(samples) == 0:
        return 0, 0
    starts = np.arange(0, len(samples), frame)
    sizes = np.diff(np.append(starts, len(samples)))
    power = np.add.reduceat(np.square(samples, dtype=np.float64), starts) / sizes
    if power.max() <= SILENT_RMS**2:
        return 0, len(samples)
    db = 10 * np.log10(np.maximum(power, 1e-30))
    speech = np.flatnonzero(db >= db.max() + floor_db)
    return int(starts[speech[0]]), int(min(len(samples), starts[speech[-1]] + frame))


@dataclass(frozen=True)
class StreamRecipe:
    minutes: float = 4.0  # the shortest a stream is; longer when its words do not fit
    gap_s: tuple[float, float] = (1.0, 4.0)  # silence-to-be between words, drawn uniformly
    snr_db: tuple[float, float] = (5.0, 20.0)  # speech RMS over the background's RMS where it lands
    background_dbfs: tuple[float, float] = (-45.0, -30.0)  # each background crop's RMS level
    passes: int = 1  # each word is used this many times


@dataclass
class Stream:
    name: str
    samples: np.ndarray  # float32 mono
    events: list[tuple[float, float, str]]  # (start_s, end_s, label), in time order


@dataclass(frozen=True)
class Word:
    samples: np.ndarray
    label: str
    speech: tuple[int, int]  # speech_bounds


def build_streams(source: Source, split: str, rate: int, count: int, recipe: StreamRecipe, seed: int,
                  background: list[np.ndarray] | None = None) -> list[Stream]:
    """`count` streams of the split's words on background (default: the source's noise recordings)."""
    background = source.noise_recordings(rate) if background is None else background
    background = [np.asarray(b, np.float32) for b in background if len(b) > 2 * crossfade_length(rate)]
    if not background:
        raise UserError(f"{source.name} has no background recordings (longer than {2 * CROSSFADE_S:g} s) "
                        "to lay the words on: give a folder of recordings")
    clips = [clip for clip in source.clips(split) if source.class_names[clip.label] != SILENCE]
    if not clips:
        raise UserError(f"the {split} split of {source.name} has no word clips to build streams from")
    deck_seed, *stream_seeds = np.random.SeedSequence(seed).spawn(count + 1)
    deck_rng = np.random.default_rng(deck_seed)
    deck = np.concatenate([deck_rng.permutation(len(clips)) for _ in range(recipe.passes)])
    streams = []
    for i, stream_seed in enumerate(stream_seeds):
        words = [read_word(source, clips[c], rate) for c in deck[i::count]]
        words = [word for word in words if word is not None]
        streams.append(build_stream(f"{split}_{i:02d}", words, rate, recipe, background,
                                    np.random.default_rng(stream_seed)))
    return streams


def read_word(source: Source, clip: ClipRef, rate: int) -> Word | None:
    """A clip at `rate` with its label and speech bounds; None for a digitally silent clip."""
    samples = resample(*source.read(clip), rate).astype(np.float32)
    start, end = speech_bounds(samples, rate)
    if rms(samples[start:end]) <= SILENT_RMS:
        return None
    return Word(samples, source.class_names[clip.label], (start, end))


def build_stream(name: str, words: list[Word], rate: int, recipe: StreamRecipe,
                 background: list[np.ndarray], rng: np.random.Generator) -> Stream:
    offsets, length = lay_out([len(w.samples) for w in words], rate, recipe, rng)
    bed, levels = background_bed(background, length, rate, recipe.background_dbfs, rng)
    samples, events = bed.copy(), []
    for word, offset in zip(words, offsets, strict=True):
        start, end = offset + word.speech[0], offset + word.speech[1]
        reference = rms(bed[start:end])
        if reference <= SILENT_RMS:  # a silent background recording: the level it was meant to have
            reference = levels[np.searchsorted(levels[:, 0], start, side="right") - 1, 1]
        snr = rng.uniform(*recipe.snr_db)
        gain = reference * 10 ** (snr / 20) / rms(word.samples[word.speech[0]:word.speech[1]])
        gain = min(gain, WORD_PEAK / np.abs(word.samples).max())
        samples[offset:offset + len(word.samples)] += gain * word.samples
        events.append((start / rate, end / rate, word.label))
    return Stream(name, samples.astype(np.float32), events)


def lay_out(lengths: list[int], rate: int, recipe: StreamRecipe, rng: np.random.Generator) -> tuple[list[int], int]:
    """Word offsets (samples) and the stream's length: a drawn gap before each word and after the
    last, all stretched by one factor (or, all zero, widened equally) to reach `minutes`."""
    gaps = rng.uniform(*recipe.gap_s, size=len(lengths) + 1) * rate
    target = round(recipe.minutes * 60 * rate)
    short = target - sum(lengths) - gaps.sum()
    if short > 0:
        gaps = gaps * (1 + short / gaps.sum()) if gaps.sum() > 0 else gaps + short / len(gaps)
    edges = np.round(np.cumsum(gaps[:-1]) + np.cumsum([0, *lengths[:-1]])).astype(int)
    length = max(target, int(round(gaps.sum())) + sum(lengths))
    return [int(e) for e in edges], length


def background_bed(recordings: list[np.ndarray], length: int, rate: int, dbfs: tuple[float, float],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`length` samples of random crops, equal-power crossfaded, each scaled to a drawn RMS level;
    also the (first sample, RMS) of every crop, in order."""
    fade = crossfade_length(rate)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade, dtype=np.float32))
    bed = np.zeros(length + fade, np.float32)
    levels, position = [], 0
    while position < length:
        recording = recordings[rng.integers(len(recordings))]
        size = min(len(recording), round(rng.uniform(*CROP_S) * rate), length + fade - position)
        size = max(size, min(len(recording), 2 * fade))  # the last crop still fades in whole
        first = rng.integers(len(recording) - size + 1)
        crop = recording[first:first + size].copy()
        level = 10 ** (rng.uniform(*dbfs) / 20)
        if rms(crop) > SILENT_RMS:
            crop *= level / rms(crop)
        if position > 0:
            crop[:fade] *= ramp
        crop[-fade:] *= ramp[::-1]
        end = min(position + size, len(bed))
        bed[position:end] += crop[:end - position]
        levels.append((position, level))
        position += size - fade
    return bed[:length], np.array(levels)


def crossfade_length(rate: int) -> int:
    return max(1, round(CROSSFADE_S * rate))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def write_streams(streams: list[Stream], folder: Path, rate: int) -> Path:
    """`<name>.wav` (PCM 16) per stream and labels.csv (file,start_s,end_s,label) beside them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "start_s", "end_s", "label"])
        for stream in streams:
            sf.write(str(folder / f"{stream.name}.wav"), to_int16(stream.samples), rate, subtype="PCM_16")
            for start, end, label in stream.events:
                writer.writerow([f"{stream.name}.wav", f"{start:.6f}", f"{end:.6f}", label])
    return labels
