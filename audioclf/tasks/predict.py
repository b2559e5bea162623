"""Predict labels for audio files with a trained checkpoint.

audioclf-predict ckpt_path=<file.ckpt> inputs=<wav file or folder>
audioclf-predict ckpt_path=<file.ckpt> inputs=long.wav stream=true  (detections in time)
audioclf-predict ckpt_path=<file.ckpt> inputs=long.wav stream=true labels=events.csv  (and their score)
audioclf-predict ckpt_path=<file.ckpt> inputs=<folder> output=preds.csv  (also a CSV: file,label,probability)

In a folder, a file that cannot be read is skipped and named on stderr; a single file that
cannot be read, or a folder of nothing else, is a one-line error.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig

from audioclf.config import check_override_types, check_values
from audioclf.data.io import AUDIO_SUFFIXES, BadAudioFile, fit_length, read_audio, resample
from audioclf.errors import UserError
from audioclf.lit.checkpoints import device_for, load_classifier
from audioclf.lit.module import AudioClassifier
from audioclf.lit.precision import resolve_precision
from audioclf.report.files import replaced
from audioclf.streaming.detection import IGNORED, Detection, stream_file, stream_thresholds
from audioclf.streaming.scoring import (
    Event,
    check_labelled_files,
    format_score,
    parse_labels,
    score_files,
    write_score,
)

MIN_CLIP_MS = 10  # shorter clips hold too little sound to classify
SHOWN_SKIPPED = 5  # skipped files named one per line; the rest only counted
LONG_INPUT = 1.5  # inputs this many clip lengths long, or more, are noted as cut


def find_inputs(inputs: str | Path) -> list[Path]:
    path = Path(inputs).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise UserError(f"inputs={path} holds no {'/'.join(AUDIO_SUFFIXES)} files: point it at audio")
        return files
    raise UserError(f"inputs={path} does not exist: give an audio file or a folder of them")


def load_clip(path: Path, model: AudioClassifier) -> np.ndarray:
    samples, rate = read_audio(path, min_ms=MIN_CLIP_MS)
    return fit_length(resample(samples, rate, model.hparams.sample_rate), model.hparams.num_samples)


@torch.no_grad()
def predict_files(model: AudioClassifier, files: list[Path], batch_size: int = 64,
                  device: torch.device | None = None,
                  skipped: list[BadAudioFile] | None = None) -> list[tuple[Path, list[tuple[str, float]]]]:
    """For each file, (label, probability) pairs sorted by probability. Given a `skipped` list, a file
    that cannot be read goes into it instead of stopping the run."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    results = []
    for start in range(0, len(files), batch_size):
        chunk, clips = [], []
        for path in files[start : start + batch_size]:
            try:
                clips.append(load_clip(path, model))
                chunk.append(path)
            except BadAudioFile as error:
                if skipped is None:
                    raise
                skipped.append(error)
        if not chunk:
            continue
        waves = torch.from_numpy(np.stack(clips)).to(device)
        probabilities = model(waves).float().softmax(dim=-1).cpu()
        for path, probs in zip(chunk, probabilities, strict=True):
            order = probs.argsort(descending=True).tolist()
            results.append((path, [(model.class_names[i], float(probs[i])) for i in order]))
    return results


def run(cfg: DictConfig) -> list[tuple[Path, list[tuple[str, float]]]]:
    check_override_types(cfg)
    check_values(cfg)
    output = check_output(cfg)
    check_stream_options(cfg)
    model = load_classifier(cfg.ckpt_path)
    if cfg.get("stream"):
        return run_stream(cfg, model)
    skipped = [] if Path(cfg.inputs).expanduser().is_dir() else None
    files = find_inputs(cfg.inputs)
    note_long_inputs(files, model)
    results = predict_files(model, files, cfg.get("batch_size", 64), device_for(), skipped)
    check_some_classified(cfg, results, skipped)
    top_k = int(cfg.get("top_k", 1))
    for path, ranked in results:
        shown = "  ".join(f"{label} {prob:.3f}" for label, prob in ranked[:top_k])
        print(f"{path}\t{shown}")
    report_skipped(skipped or [], len(results))
    if output is not None:
        write_csv(output, results, top_k)
        print(f"wrote {output} ({len(results)} files)")
    return results


def note_long_inputs(files: list[Path], model: AudioClassifier) -> None:
    """A clip-mode input much longer than the checkpoint's clips is cut to its middle: one line says so."""
    clip = model.hparams.num_samples / model.hparams.sample_rate
    long = [path for path in files if seconds_of(path) > LONG_INPUT * clip]
    if long:
        print(f"note: {len(long)} of {len(files)} inputs are longer than the checkpoint's {clip:g} s clips (the first: "
              f"{long[0]}): the middle {clip:g} s of each is classified; stream=true scans a long recording",
              file=sys.stderr)


def seconds_of(path: Path) -> float:
    try:
        return sf.info(str(path)).duration
    except RuntimeError:  # unreadable (soundfile.LibsndfileError): predict_files names it
        return 0.0


def check_output(cfg: DictConfig) -> Path | None:
    """The CSV to write (output=<file.csv>), checked before any prediction is made."""
    if not cfg.get("output"):
        return None
    path = Path(str(cfg.output)).expanduser()
    if cfg.get("stream"):
        raise UserError(f"output={path} writes clip predictions, not stream=true detections: drop one of the two")
    if path.is_dir():
        raise UserError(f"output={path} is a folder: give a file name, e.g. output={path / 'preds.csv'}")
    return path


def check_some_classified(cfg: DictConfig, results: list, skipped: list[BadAudioFile] | None) -> None:
    if not results and skipped:
        files = f"{len(skipped)} audio files" if len(skipped) > 1 else "audio file"
        raise UserError(f"inputs={Path(cfg.inputs).expanduser()}: none of its {files} could be classified; "
                        f"the first: {skipped[0]}")


def report_skipped(skipped: list[BadAudioFile], classified: int) -> None:
    """On stderr: the first few skipped files, one line each, then the count."""
    for error in skipped[:SHOWN_SKIPPED]:
        print(f"skipped: {error}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} file{'s' if len(skipped) > 1 else ''} skipped, {classified} classified",
              file=sys.stderr)


def write_csv(path: Path, results: list[tuple[Path, list[tuple[str, float]]]], top_k: int) -> None:
    """file,label,probability: top_k rows per file, written beside `path` and renamed over it at the end."""
    with replaced(path) as temporary, temporary.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "label", "probability"])
        for file, ranked in results:
            writer.writerows([str(file), label, f"{prob:.6f}"] for label, prob in ranked[:top_k])


def check_stream_options(cfg: DictConfig) -> None:
    """labels=, collar= and score_output= score stream=true detections; checked before any work."""
    for key in ("labels", "score_output"):
        if cfg.get(key) and not cfg.get("stream"):
            raise UserError(f"{key}={cfg.get(key)} scores stream=true detections: add stream=true or drop {key}=")
    if cfg.get("score_output") and not cfg.get("labels"):
        raise UserError(f"score_output={cfg.score_output} writes the score against labels: add labels=<csv>")
    if cfg.get("score_output") and Path(str(cfg.score_output)).expanduser().is_dir():
        raise UserError(f"score_output={cfg.score_output} is a folder: give a file name, e.g. "
                        f"score_output={Path(str(cfg.score_output)) / 'score.csv'}")
    collar = cfg.get("collar", 0.5)
    if cfg.get("labels") and (not isinstance(collar, int | float) or collar < 0):
        raise UserError(f"collar={collar} must be a number of seconds >= 0, e.g. collar=0.5")


def run_stream(cfg: DictConfig, model: AudioClassifier) -> list[tuple[Path, list[Detection]]]:
    """stream=true: sliding-window detections in each (long) input, one line per detection; with
    labels=<csv>, then their score against the labelled events (audioclf/streaming/scoring.py)."""
    results, seconds = [], {}
    inputs = find_inputs(cfg.inputs)
    ignore = tuple(cfg.get("ignore") or IGNORED)
    events = stream_events(cfg, model, inputs, ignore)  # a bad labels CSV stops the run before any work
    settings = stream_settings(cfg, model)
    threshold = stream_thresholds(model, settings["threshold"])
    report_thresholds(threshold, getattr(model, "stream_calibration", None) if cfg.get("threshold") is None else None)
    skipped = [] if Path(cfg.inputs).expanduser().is_dir() else None
    device = device_for()
    precision = scoring_precision(cfg, device)
    for path in inputs:
        try:
            detections = stream_file(
                model, path, hop_seconds=float(cfg.get("stream_hop", 0.1)), threshold=settings["threshold"],
                smooth=settings["smooth"], min_dbfs=float(cfg.get("min_dbfs", -50.0)), ignore=ignore,
                device=device, stream_mode=str(cfg.get("stream_mode", "stateful")),
                refractory_s=settings["refractory_s"], min_windows=settings["min_windows"], precision=precision,
            )
        except BadAudioFile as error:
            if skipped is None:
                raise
            skipped.append(error)
            continue
        for found in detections:
            print(f"{path}\t{found.time:.2f}s\t{found.label}\t{found.probability:.3f}")
        if not detections:
            shown = "the per-keyword thresholds" if isinstance(threshold, dict) else f"threshold={threshold:g}"
            print(f"{path}\tno detections above {shown}")
        results.append((path, detections))
        seconds[path] = sf.info(str(path)).duration
    check_some_classified(cfg, results, skipped)
    report_skipped(skipped or [], len(results))
    if events is not None:
        report_score(cfg, results, events, seconds)
    return results


def scoring_precision(cfg: DictConfig, device: torch.device) -> str:
    """precision=auto: as training resolves it on this device (bf16-mixed with native bf16), which is
    also how train's stream calibration scored the windows its thresholds come from."""
    setting = cfg.get("precision", "auto")
    try:
        return str(resolve_precision(setting, device.type)[0])
    except ValueError as error:
        raise UserError(str(error)) from None


def stream_events(cfg: DictConfig, model: AudioClassifier, inputs: list[Path],
                  ignore: tuple[str, ...]) -> list[Event] | None:
    """The labelled keyword events of the inputs (labels=<csv>), or None without labels."""
    if not cfg.get("labels"):
        return None
    events = parse_labels(cfg.labels, list(model.class_names), ignore)
    return check_labelled_files(Path(str(cfg.labels)).expanduser(), events, inputs)


STREAM_DEFAULTS = {"smooth": 3, "refractory_s": 0.0, "min_windows": 1}


def stream_settings(cfg: DictConfig, model: AudioClassifier) -> dict:
    """threshold, smooth, refractory_s and min_windows: each as given, else the checkpoint's stream
    calibration (chosen for a false-alarm budget per hour), else the per-clip default."""
    calibrated = getattr(model, "stream_calibration", None) or {}
    settings = {"threshold": cfg.get("threshold")}
    if settings["threshold"] is None:
        settings["threshold"] = calibrated.get("threshold")
    for key, default in STREAM_DEFAULTS.items():
        value = cfg.get(key)
        settings[key] = type(default)(value if value is not None else calibrated.get(key, default))
    if settings["smooth"] < 1 or settings["min_windows"] < 1 or settings["refractory_s"] < 0:
        raise UserError(f"smooth={settings['smooth']}, min_windows={settings['min_windows']} and refractory_s="
                        f"{settings['refractory_s']} must be >= 1, >= 1 and >= 0, e.g. smooth=3 min_windows=1 "
                        "refractory_s=0")
    return settings


def report_thresholds(threshold: float | dict[str, float], calibration: dict | None = None) -> None:
    """On stderr, the checkpoint's thresholds when they are the ones used."""
    if calibration:
        print(f"threshold {calibration['threshold']:.4f}, smooth {calibration['smooth']}, refractory "
              f"{calibration['refractory_s']:g} s, min windows {calibration['min_windows']}: the checkpoint's "
              f"stream calibration for {calibration['target_fa_per_hour']:g} false alarms per hour on "
              f"{calibration['hours'] * 60:.0f} min of {calibration['split']} streams (threshold=<p> overrides)",
              file=sys.stderr)
    elif isinstance(threshold, dict):
        shown = ", ".join(f"{name} {value:.3f}" for name, value in sorted(threshold.items()))
        print(f"thresholds from the checkpoint (threshold=<p> sets one for all): {shown}", file=sys.stderr)


def report_score(cfg: DictConfig, results: list[tuple[Path, list[Detection]]], events: list[Event],
                 seconds: dict[Path, float]) -> None:
    collar = float(cfg.get("collar", 0.5))
    score = score_files(results, events, seconds, collar)
    print(format_score(score, collar))
    if cfg.get("score_output"):
        path = Path(str(cfg.score_output)).expanduser()
        write_score(path, score)
        print(f"wrote {path}")

