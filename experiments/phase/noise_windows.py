"""Can each kws12 model tell noise from speech? Threshold-free: every 1 s window of the noise files.

    python experiments/phase/noise_windows.py logs/multiruns/phase/<stamp> [out_dir] [hop_seconds]
    python experiments/phase/noise_windows.py experiments/phase/noise_windows_runs.csv   # the table again

For every `kws12_<arm>-s<seed>/0` job's best checkpoint, slides 1 s windows (hop 0.25 s) over the
held-out and the seen noise files that run.sh linked into the run folder, scores every window in
bf16 autocast as the model trained (no level gate), and counts the windows whose top class is
`_silence_` (noise recognized as noise), `_unknown_`, or a command word, and the mean top command
probability. The false-alarm scan (kws12.py) counts detections above per-model thresholds, a
handful per run; this counts every window, so arms compare on hundreds of decisions per seed.
Writes noise_windows.md (mean +- std over seeds per arm) and noise_windows_runs.csv (per job and
noise) into out_dir (experiments/phase).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import torch

from audioclf.data.io import read_audio, resample
from audioclf.lit.checkpoints import load_classifier
from audioclf.report.results import pm, read_runs

ARMS = ("magnitude", "phase2d", "phase3d")
SCANS = ("held_out", "seen")


def window_probabilities(model, files: list[Path], hop_seconds: float) -> np.ndarray:
    rate, window = int(model.hparams.sample_rate), int(model.hparams.num_samples)
    hop = int(hop_seconds * rate)
    rows = []
    for path in files:
        samples = resample(*read_audio(path), rate)
        starts = range(0, len(samples) - window + 1, hop)
        waves = torch.from_numpy(np.stack([samples[s : s + window] for s in starts]).astype(np.float32))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for batch in waves.split(128):
                rows.append(model(batch).float().softmax(dim=-1).numpy())
    return np.concatenate(rows)


def scan_row(model, files: list[Path], hop_seconds: float) -> dict[str, float]:
    names = list(model.class_names)
    probabilities = window_probabilities(model, files, hop_seconds)
    top = probabilities.argmax(axis=1)
    commands = [i for i, name in enumerate(names) if not name.startswith("_")]
    return {
        "windows": len(top),
        "silence": 100 * float(np.mean(top == names.index("_silence_"))),
        "unknown": 100 * float(np.mean(top == names.index("_unknown_"))),
        "command": 100 * float(np.mean(np.isin(top, commands))),
        "top_command_probability": float(probabilities[:, commands].max(axis=1).mean()),
    }


def job_rows(runs: Path, hop_seconds: float) -> list[dict]:
    rows = []
    for job in sorted(runs.glob("kws12_*-s*/0")):
        best = sorted((job / "checkpoints").glob("epoch_*.ckpt"))
        if not best:
            print(f"skipped (no checkpoint): {job}")
            continue
        arm, seed = re.fullmatch(r"kws12_(\w+)-s(\d+)", job.parent.name).groups()
        model = load_classifier(best[0])
        for scan in SCANS:
            files = sorted((runs / f"{scan}_noise").glob("*.wav"))
            rows.append({"arm": arm, "seed": int(seed), "noise": scan, **scan_row(model, files, hop_seconds)})
    if not rows:
        sys.exit(f"error: no kws12 checkpoints under {runs}: run PARTS=kws12 experiments/phase/run.sh first")
    return rows


def write_table(rows: list[dict], out: Path) -> None:
    """noise_windows.md: per arm and noise, each share's mean ± std over seeds."""
    lines = ["| arm | noise | seeds | windows | top class _silence_ % | _unknown_ % | a command % "
             "| mean top command probability |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for arm in ARMS:
        for scan in SCANS:
            group = [row for row in rows if row["arm"] == arm and row["noise"] == scan]
            if not group:
                continue
            cells = [pm((row[key] for row in group), digits)
                     for key, digits in (("silence", 1), ("unknown", 1), ("command", 1),
                                         ("top_command_probability", 3))]
            lines.append(f"| {arm} | {scan} | {len(group)} | {group[0]['windows']} | " + " | ".join(cells) + " |")
    (out / "noise_windows.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(source: Path, out: Path, hop_seconds: float) -> None:
    if source.suffix == ".csv":
        rows = read_runs(source)
    else:
        rows = job_rows(source, hop_seconds)
        with (out / "noise_windows_runs.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    write_table(rows, out)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    default_out = source.parent if source.suffix == ".csv" else Path("experiments/phase")
    main(source, Path(sys.argv[2]) if len(sys.argv) > 2 else default_out,
         float(sys.argv[3]) if len(sys.argv) > 3 else 0.25)
