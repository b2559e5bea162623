"""Score every checkpoint of a kws_stream study on the same streams (experiments/kws_stream/README.md).

    python experiments/kws_stream/evaluate.py RUNS SC_ROOT [--jobs 2]

RUNS holds one folder per training job (`<arm>-s<seed>/0/checkpoints/last.ckpt` + metrics.json),
as experiments/kws_stream/run.sh makes them. For every checkpoint, its window probabilities are
computed once on
- calibration streams: the validation split (its speakers only), train's stream_calibration defaults
  (4 streams, each word 3 times, about 1 h), built in memory;
- test streams: the test split, every keyword and every other word (data.unknown=all) 4 times,
  about 1 h in 4 streams, seed 0: the same audio for every checkpoint (written to RUNS/streams/);
and three ways of deciding are scored on the test streams:
- clip: the checkpoint's per-keyword thresholds (1 % false accepts on validation clips), smooth 3
  (what predict stream=true did before stream calibration);
- calibrated: one threshold chosen on the calibration streams for 2 false alarms per hour, smooth 3;
- calibrated+post: threshold and post-processing (smooth, refractory, min windows) chosen together on
  the calibration streams (train's stream_calibration).
Writes experiments/kws_stream/runs.csv (one row per checkpoint and decision) and the per-run test
curves (curves.csv); summarize.py turns them into the README's tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGET = 2.0  # false alarms per hour the calibration aims at
BUDGETS = (1.0, 2.0, 8.0)


def sc_source(root: str, split_unknowns: str):
    from audioclf.data.sources import build_source

    return build_source("speech_commands", root=root, data_dir="data", version="v0.02", url="file:///nowhere",
                        download=False, labels="kws12", unknown=split_unknowns)


def build_test_streams(root: str, folder: Path):
    from audioclf.streaming.streams import StreamRecipe, build_streams, write_streams

    streams = build_streams(sc_source(root, "all"), "test", 16000, 4, StreamRecipe(minutes=15.0, passes=4), seed=0)
    write_streams(streams, folder, 16000)
    return streams


def build_calibration_streams(root: str, passes: int = 3):
    """train's stream_calibration streams: 3 passes (about 1 h of the sample's validation words) as the
    arms were first calibrated; 9 passes (about 3 h) as stream_calibration.min_hours=3 now builds them."""
    from audioclf.streaming.streams import StreamRecipe, build_streams

    recipe = StreamRecipe(minutes=15.0, passes=passes)
    return build_streams(sc_source(root, "share"), "val", 16000, 4, recipe, seed=0)


def score_at(streams, class_names, threshold, post):
    """(FRR, FA/h, mean delay) of one threshold (a number, or per keyword) and post-processing."""
    from audioclf.streaming.detection import detect
    from audioclf.streaming.scoring import KeywordScore, delay, match_file

    total = KeywordScore()
    for stream in streams:
        found = detect(stream.starts, stream.probabilities, class_names, stream.rate, stream.window, threshold,
                       post.smooth, refractory_s=post.refractory_s, min_windows=post.min_windows)
        hits, false_alarms, misses = match_file(found, stream.events, collar=0.5)
        total.add(KeywordScore(len(hits), len(misses), len(false_alarms), [delay(f, e) for f, e in hits]))
    hours = sum(stream.seconds for stream in streams) / 3600
    return 1 - (total.recall or 0.0), total.false_alarms / hours, total.mean_delay


def evaluate_checkpoint(job: str, checkpoint: str, root: str, test_folder: str) -> tuple[list[dict], list[dict]]:
    from audioclf.streaming.evaluation import PostProcessing, curve, operating_point, score_built_streams

    model, names = load_model(checkpoint)
    started = time.perf_counter()
    scored_test = score_test_streams(model, test_folder)
    seconds_scored = time.perf_counter() - started
    plain, fixed_point, post, post_point = calibrations(score_built_streams(model, build_calibration_streams(root)),
                                                        names)
    metrics = json.loads((Path(checkpoint).parents[1] / "metrics.json").read_text())
    per_checkpoint = {"clip_test_acc": round(metrics["test/acc"], 4), "epochs": metrics["epochs"],
                      "train_seconds": metrics["train_seconds"],
                      "realtime_factor": round(hours(scored_test) * 3600 / seconds_scored, 1)}
    clip = dict(model.detection_thresholds or {}) or 0.6
    rows = [decision_row(job, "clip", clip, PostProcessing(smooth=3), None, scored_test, names) | per_checkpoint,
            decision_row(job, "calibrated", fixed_point.threshold, plain, fixed_point, scored_test, names)
            | per_checkpoint,
            decision_row(job, "calibrated+post", post_point.threshold, post, post_point, scored_test, names)
            | per_checkpoint]
    oracle = curve(scored_test, names, post=post)
    arm, seed = job.rsplit("-s", 1)
    curve_rows = [{"job": job, "arm": arm, "seed": int(seed), "budget": budget,
                   "frr": round(float(point.frr), 4), "threshold": round(float(point.threshold), 5)}
                  for budget in BUDGETS for point in [operating_point(oracle, budget)]]
    return rows, curve_rows


def calibrated_3h_rows(job: str, checkpoint: str, root: str, test_folder: str) -> list[dict]:
    """The calibrated decisions again, on 3 h of validation streams (train's min_hours=3): rows
    `calibrated_3h` and `calibrated_3h+post`; add_calibrated_3h copies the per-checkpoint columns."""
    from audioclf.streaming.evaluation import score_built_streams

    model, names = load_model(checkpoint)
    scored_test = score_test_streams(model, test_folder)
    plain, fixed_point, post, post_point = calibrations(
        score_built_streams(model, build_calibration_streams(root, passes=9)), names)
    return [decision_row(job, "calibrated_3h", fixed_point.threshold, plain, fixed_point, scored_test, names),
            decision_row(job, "calibrated_3h+post", post_point.threshold, post, post_point, scored_test, names)]


def load_model(checkpoint: str):
    import torch

    torch.set_num_threads(1)
    from audioclf.lit.checkpoints import load_classifier

    model = load_classifier(checkpoint)
    return model, list(model.class_names)


def score_test_streams(model, test_folder: str):
    from audioclf.data.io import read_audio
    from audioclf.streaming.evaluation import score_built_streams
    from audioclf.streaming.streams import Stream

    return score_built_streams(model, [Stream(p.stem, read_audio(p)[0], events)
                                       for p, events in _test_streams(Path(test_folder))])


def calibrations(scored_val, names: list[str]):
    """(smooth 3, its point, the chosen post-processing, its point) for TARGET on the calibration streams."""
    from audioclf.streaming.evaluation import PostProcessing, calibrate

    plain = PostProcessing(smooth=3)
    _, fixed_point = calibrate(scored_val, names, TARGET, grid=[plain])
    post, post_point = calibrate(scored_val, names, TARGET)
    return plain, fixed_point, post, post_point


def hours(streams) -> float:
    return sum(s.seconds for s in streams) / 3600


def decision_row(job: str, decision: str, threshold, post, point, scored_test, names: list[str]) -> dict:
    """One runs.csv row: a decision's test FRR, FA/h and delay, and its validation point (None: none)."""
    frr, fa_per_hour, delay = score_at(scored_test, names, threshold, post)
    arm, seed = job.rsplit("-s", 1)
    return {"job": job, "arm": arm, "seed": int(seed), "decision": decision,
            "threshold": "per keyword" if isinstance(threshold, dict) else round(float(threshold), 5),
            "smooth": post.smooth, "refractory_s": post.refractory_s, "min_windows": post.min_windows,
            "test_frr": round(frr, 4), "test_fa_per_hour": round(fa_per_hour, 3),
            "test_mean_delay_s": None if delay is None else round(delay, 3),
            "test_hours": round(hours(scored_test), 3), **validation_columns(point)}


def validation_columns(point) -> dict:
    """The calibration's own point on the validation streams: what a recipe is chosen on."""
    if point is None:
        return {"val_frr": "", "val_fa_per_hour": ""}
    return {"val_frr": round(float(point.frr), 4), "val_fa_per_hour": round(float(point.fa_per_hour), 3)}


def validation_points(job: str, checkpoint: str, root: str) -> tuple[str, dict[str, dict]]:
    """(job, decision -> validation columns) for a checkpoint already scored on the test streams."""
    from audioclf.streaming.evaluation import score_built_streams

    model, names = load_model(checkpoint)
    _, fixed_point, _, post_point = calibrations(score_built_streams(model, build_calibration_streams(root)), names)
    return job, {"calibrated": validation_columns(fixed_point), "calibrated+post": validation_columns(post_point)}


def add_validation(runs: list[dict], arms: list[str], folder: Path, root: str, jobs: int) -> int:
    """Fill val_frr / val_fa_per_hour of the scored rows of `arms` that lack them; how many checkpoints."""
    missing = sorted({row["job"] for row in runs if row["arm"] in arms and not row.get("val_frr")})
    with ProcessPoolExecutor(jobs) as pool:
        found = dict(pool.map(validation_points, missing,
                              [str(folder / job / "0/checkpoints/last.ckpt") for job in missing],
                              [root] * len(missing)))
    for row in runs:
        row.update(found.get(row["job"], {}).get(row["decision"], {}))
        row.setdefault("val_frr", ""), row.setdefault("val_fa_per_hour", "")
    return len(missing)


def _test_streams(folder: Path):
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    for path in sorted(folder.glob("*.wav")):
        yield path, [(float(r["start_s"]), float(r["end_s"]), r["label"]) for r in rows if r["file"] == path.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("sc_root")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", 2)))
    parser.add_argument("--validation", nargs="+", default=[], metavar="ARM",
                        help="only add the validation-stream point to these arms' rows scored before it existed")
    parser.add_argument("--calibrated-3h", nargs="+", default=[], metavar="ARM",
                        help="only add these arms' decisions calibrated on 3 h of validation streams")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.calibrated_3h:
        add_calibrated_3h(args.calibrated_3h, args.runs, args.sc_root, args.jobs)
        return
    if args.validation:
        runs = read_rows(HERE / "runs.csv")
        count = add_validation(runs, args.validation, args.runs, args.sc_root, args.jobs)
        write_rows(HERE / "runs.csv", runs)
        print(f"wrote {HERE / 'runs.csv'} (validation points of {count} checkpoints added)")
        return
    test_folder = args.runs / "streams"
    if not (test_folder / "labels.csv").is_file():
        build_test_streams(args.sc_root, test_folder)
    runs, curves = read_rows(HERE / "runs.csv"), read_rows(HERE / "curves.csv")
    done = {row["job"] for row in runs}  # a rerun scores only the checkpoints not in runs.csv yet
    finished = args.runs.glob("*/0/metrics.json")  # a job still training has a last.ckpt but no metrics
    jobs = sorted(p.parents[1].name for p in finished if p.parents[1].name not in done)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(evaluate_checkpoint, job, str(args.runs / job / "0/checkpoints/last.ckpt"),
                               args.sc_root, str(test_folder)) for job in jobs]
        results = [future.result() for future in futures]
    write_rows(HERE / "runs.csv", runs + [row for rows, _ in results for row in rows])
    write_rows(HERE / "curves.csv", curves + [row for _, rows in results for row in rows])
    print(f"wrote {HERE / 'runs.csv'} and curves.csv ({len(jobs)} checkpoints scored, {len(done)} kept)")


def add_calibrated_3h(arms: list[str], folder: Path, root: str, jobs: int) -> None:
    runs = read_rows(HERE / "runs.csv")
    have = {row["job"] for row in runs if row["decision"].startswith("calibrated_3h")}
    todo = sorted({row["job"] for row in runs if row["arm"] in arms} - have)
    with ProcessPoolExecutor(jobs) as pool:
        found = list(pool.map(calibrated_3h_rows, todo, [str(folder / job / "0/checkpoints/last.ckpt") for job in todo],
                              [root] * len(todo), [str(folder / "streams")] * len(todo)))
    clip = {row["job"]: row for row in runs if row["decision"] == "clip"}
    for rows in found:  # the per-checkpoint columns, as on the job's other rows
        for row in rows:
            base = clip[row["job"]]
            row.update({key: base[key] for key in ("clip_test_acc", "epochs", "train_seconds", "realtime_factor")})
    write_rows(HERE / "runs.csv", runs + [row for rows in found for row in rows])
    print(f"wrote {HERE / 'runs.csv'} (3 h calibrations of {len(todo)} checkpoints added)")


def read_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as out:
        fields = list(dict.fromkeys(key for row in rows for key in row))  # rows from before a column: blank
        writer = csv.DictWriter(out, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
