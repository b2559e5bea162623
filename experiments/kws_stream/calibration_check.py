"""Does a threshold calibrated for 2 FA/h keep 2 FA/h on fresh audio? A validation-only check
(experiments/kws_stream/README.md).

    python experiments/kws_stream/calibration_check.py RUNS SC_ROOT --arms wide long [--jobs 2]

For each checkpoint, on the validation speakers only, three calibrations pick the threshold for 2 FA/h
(smooth 3), each on its own streams (seed 0):
- `1h`: what train's stream_calibration builds (4 x 15 min, each word 3 times, the data's own words:
  kws12 with data.unknown=share);
- `1h_every_word`: the same over every word of the split (data.unknown=all): a live microphone hears
  mostly other words;
- `3h`: 12 streams, each word 9 times;
and each threshold is scored on check streams of every word (seed 1: other draws, orders and
backgrounds of the same speakers' words, about 1 h). Writes calibration_check.csv beside this script.
Nothing here reads the test split.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from evaluate import TARGET, read_rows, sc_source, score_at, write_rows

HERE = Path(__file__).resolve().parent


CALIBRATIONS = {"1h": ("share", 4, 3), "1h_every_word": ("all", 4, 3), "3h": ("share", 12, 9)}


def val_streams(root: str, words: str, seed: int, count: int = 4, passes: int = 3):
    from audioclf.streaming.streams import StreamRecipe, build_streams

    recipe = StreamRecipe(minutes=15.0, passes=passes)
    return build_streams(sc_source(root, words), "val", 16000, count, recipe, seed=seed)


def check_checkpoint(job: str, checkpoint: str, root: str) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from audioclf.lit.checkpoints import load_classifier
    from audioclf.streaming.evaluation import PostProcessing, calibrate, score_built_streams

    model = load_classifier(checkpoint)
    names = list(model.class_names)
    plain = PostProcessing(smooth=3)
    check = score_built_streams(model, val_streams(root, "all", seed=1))
    check_hours = sum(s.seconds for s in check) / 3600
    rows = []
    for name, (words, count, passes) in CALIBRATIONS.items():
        calibration = score_built_streams(model, val_streams(root, words, 0, count, passes))
        _, point = calibrate(calibration, names, TARGET, grid=[plain])
        frr, fa_per_hour, _ = score_at(check, names, point.threshold, plain)
        arm, seed = job.rsplit("-s", 1)
        rows.append({
            "job": job, "arm": arm, "seed": int(seed), "calibration": name,
            "calibration_hours": round(sum(s.seconds for s in calibration) / 3600, 3),
            "calibration_words_per_hour": round(sum(len(s.events) for s in calibration)
                                                / (sum(s.seconds for s in calibration) / 3600)),
            "threshold": round(float(point.threshold), 5), "calibration_frr": round(float(point.frr), 4),
            "calibration_fa_per_hour": round(float(point.fa_per_hour), 3),
            "check_frr": round(frr, 4), "check_fa_per_hour": round(fa_per_hour, 3),
            "check_hours": round(check_hours, 3),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("sc_root")
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", 2)))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = HERE / "calibration_check.csv"
    rows = read_rows(out)
    done = {row["job"] for row in rows}
    jobs = sorted(p.parents[1].name for p in args.runs.glob("*/0/metrics.json")
                  if p.parents[1].name.rsplit("-s", 1)[0] in args.arms and p.parents[1].name not in done)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(check_checkpoint, jobs,
                                [str(args.runs / job / "0/checkpoints/last.ckpt") for job in jobs],
                                [args.sc_root] * len(jobs)))
    write_rows(out, rows + [row for result in results for row in result])
    print(f"wrote {out} ({len(jobs)} checkpoints checked)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
