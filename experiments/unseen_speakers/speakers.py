"""Look at the FSDD speakers before tuning: what differs between them that is not speech?

Per speaker: clip length, level (RMS over the voiced frames, peak), noise floor, leading and
trailing silence, DC offset and spectral tilt/centroid of the voiced frames. Writes
speakers.md and speakers.csv next to this file.

    .venv/bin/python experiments/unseen_speakers/speakers.py [FSDD_RECORDINGS_DIR]

A frame (25 ms, 10 ms hop) is voiced when its energy is within SILENCE_DB of the clip's
loudest frame; leading/trailing silence is the time before the first and after the last voiced
frame. Tilt: least-squares slope of the mean voiced log power spectrum against log2 frequency
over 100-3,800 Hz (dB per octave; more negative = darker, more low-frequency energy).
"""

from __future__ import annotations

import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

SILENCE_DB = 30.0
FRAME, HOP = 200, 80  # 25 ms / 10 ms at 8 kHz
NAME = re.compile(r"(\d)_(\w+?)_(\d+)\.wav$")


def frames(samples: np.ndarray) -> np.ndarray:
    if len(samples) < FRAME:
        samples = np.pad(samples, (0, FRAME - len(samples)))
    count = 1 + (len(samples) - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    return samples[index]


def db(x: np.ndarray | float) -> np.ndarray | float:
    return 10 * np.log10(np.maximum(x, 1e-12))


def describe(samples: np.ndarray, rate: int) -> dict:
    dc = float(samples.mean())
    framed = frames(samples - dc)
    energy = (framed**2).mean(axis=1)
    voiced = db(energy) >= db(energy.max()) - SILENCE_DB
    first, last = np.flatnonzero(voiced)[[0, -1]]
    spectrum = np.abs(np.fft.rfft(framed[voiced] * np.hanning(FRAME), n=256)) ** 2
    freqs = np.fft.rfftfreq(256, 1 / rate)
    band = (freqs >= 100) & (freqs <= 3800)
    mean_db = db(spectrum.mean(axis=0))
    tilt = np.polyfit(np.log2(freqs[band]), mean_db[band], 1)[0]
    power = spectrum.mean(axis=0)
    return {
        "length_ms": 1000 * len(samples) / rate,
        "rms_dbfs": db(energy[voiced].mean()),
        "peak_dbfs": 20 * np.log10(max(np.abs(samples).max(), 1e-6)),
        "floor_dbfs": db(np.percentile(energy, 10)),
        "lead_ms": 1000 * first * HOP / rate,
        "trail_ms": 1000 * (len(samples) - (last * HOP + FRAME)) / rate,
        "dc": dc,
        "tilt_db_oct": tilt,
        "centroid_hz": float((freqs * power).sum() / power.sum()),
    }


def main(root: Path) -> None:
    per_speaker = defaultdict(list)
    for path in sorted(root.glob("*.wav")):
        match = NAME.search(path.name)
        if match:
            samples, rate = sf.read(path, dtype="float32")
            per_speaker[match.group(2)].append(describe(samples, rate))
    keys = list(next(iter(per_speaker.values()))[0])
    rows = []
    for speaker, stats in sorted(per_speaker.items()):
        row = {"speaker": speaker, "clips": len(stats)}
        for key in keys:
            values = np.array([s[key] for s in stats])
            row[key] = np.median(values)
            row[key + "_p10"], row[key + "_p90"] = np.percentile(values, [10, 90])
        rows.append(row)
    out = Path(__file__).parent
    with open(out / "speakers.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    header = ["speaker", "clips", "length ms", "voiced RMS dBFS", "peak dBFS", "noise floor dBFS",
              "lead silence ms", "trail silence ms", "DC offset", "tilt dB/oct", "centroid Hz"]
    fmt = ["{:.0f}", "{:.1f}", "{:.1f}", "{:.1f}", "{:.0f}", "{:.0f}", "{:+.4f}", "{:.1f}", "{:.0f}"]
    lines = [f"| {' | '.join(header)} |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        cells = [
            f"{f.format(row[k])} ({f.format(row[k + '_p10'])}..{f.format(row[k + '_p90'])})"
            if k not in ("dc",) else f.format(row[k])
            for k, f in zip(keys, fmt, strict=True)
        ]
        lines.append(f"| {row['speaker']} | {row['clips']} | " + " | ".join(cells) + " |")
    note = (f"Median per speaker (10th..90th percentile over its clips); voiced = frames within "
            f"{SILENCE_DB:.0f} dB of the clip's loudest. Written by speakers.py from {root}.")
    (out / "speakers.md").write_text("\n".join(lines) + "\n\n" + note + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fsdd/recordings"))
