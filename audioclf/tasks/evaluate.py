"""Evaluate a checkpoint on a dataset split: metrics, report files, confusion PNG, keyword detection.

Besides the classification report, every keyword gets one-vs-rest detection metrics
(DET curve, ROC AUC, false-reject rate at 1 % and 0.5 % false accepts: report/detection.py),
and `false_alarms=<file or folder>` (default: the dataset's `_background_noise_` recordings)
streams over audio with no keyword in it, as `predict stream=true` would, and counts the
detections at the checkpoint's per-keyword thresholds as false alarms per hour.

`stream_labels=<csv>` (file,start_s,end_s,label; its files are long recordings) judges keyword
spotting as the field does: the false-reject rate at 1, 2 and 8 false alarms per hour of
continuous audio, over a sweep of one threshold for every keyword (audioclf/streaming/evaluation.py).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from audioclf.config import check_override_types, check_values, to_dict
from audioclf.console import lightning_setup_lines_hidden
from audioclf.data.clips import map_by_name
from audioclf.data.datamodule import AudioDataModule
from audioclf.data.io import AUDIO_SUFFIXES, read_audio, resample
from audioclf.data.sources import Source
from audioclf.errors import UserError
from audioclf.lit.checkpoints import device_for, load_classifier
from audioclf.lit.module import AudioClassifier
from audioclf.lit.precision import CpuBf16Lstm
from audioclf.report.classification import write_report
from audioclf.report.detection import (
    det_figure,
    false_alarms_per_hour,
    keyword_curves,
    keyword_indices,
    write_detection_report,
)
from audioclf.streaming.detection import DEFAULT_THRESHOLD, IGNORED, detect, window_probabilities
from audioclf.streaming.evaluation import (
    BUDGETS,
    OperatingPoint,
    PostProcessing,
    ScoredStream,
    StreamCurve,
    budget_name,
    curve,
    operating_point,
    read_stream_labels,
    score_stream,
    stream_det_figure,
    write_stream_report,
)
from audioclf.streaming.scoring import Event
from audioclf.tasks.build import trainer_node


class ProbabilityCollector(L.Callback):
    """Softmax probabilities and labels of every test batch (test_step returns the logits)."""

    def __init__(self):
        self.probabilities: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.probabilities.append(outputs.detach().float().softmax(dim=-1).cpu().numpy())
        self.labels.append(batch[1].cpu().numpy())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.probabilities), np.concatenate(self.labels)


@dataclass
class FalseAlarms:
    thresholds: dict[str, float]  # keyword -> the threshold it was counted at
    counts: dict[str, int]
    seconds: float  # audio scanned
    files: int

    def per_hour(self, keyword: str) -> float:
        return false_alarms_per_hour(self.counts[keyword], self.seconds)


def run(cfg: DictConfig) -> dict[str, float]:
    check_override_types(cfg)
    check_values(cfg)
    model = load_classifier(cfg.ckpt_path)
    L.seed_everything(cfg.seed, verbose=False)
    data = to_dict(cfg.get("data")) or dict(model.hparams.get("data") or {})
    if not data:
        raise UserError("the checkpoint does not say which data it was trained on: add data=<dataset>")
    # The model fixes the clip format; the data config only says where the clips are.
    data["sample_rate"] = model.hparams.sample_rate
    data["clip_seconds"] = model.hparams.num_samples / model.hparams.sample_rate
    split = cfg.get("split", "test")
    if split not in ("train", "val", "test"):
        raise UserError(f"split={split} is unknown: use train, val or test")
    check_clip_format(model)
    datamodule = AudioDataModule(data, data_dir=cfg.paths.data_dir, cache_dir=cfg.paths.cache_dir, seed=cfg.seed)
    mapped = check_classes(datamodule, model.class_names, bool(cfg.get("map_classes", False)))
    check_stream_settings(cfg)
    alarm_files = false_alarm_files(cfg.get("false_alarms"), datamodule.source)  # bad paths fail before testing
    labelled_streams = stream_labels(cfg.get("stream_labels"), model.class_names)
    datamodule.setup(split)
    if mapped:
        datamodule.banks[split] = map_by_name(datamodule.banks[split], datamodule.class_names, model.class_names)
    loader = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader,
              "test": datamodule.test_dataloader}[split]()
    collector = ProbabilityCollector()
    # the training precision (trainer.precision=auto: bf16-mixed on native-bf16 hardware), so a val split
    # scores as it did in training and the saved thresholds reproduce
    precision = trainer_node(cfg, announce=False)["precision"]  # named in the report's heading
    with lightning_setup_lines_hidden():
        trainer = L.Trainer(accelerator=cfg.trainer.get("accelerator", "auto"), devices=1, logger=False,
                            precision=precision, enable_checkpointing=False, enable_model_summary=False,
                            enable_progress_bar=sys.stderr.isatty(),  # no bar redraws in a log file
                            callbacks=[collector, CpuBf16Lstm()])
    model.test_confusion.reset()
    results = trainer.test(model, dataloaders=loader, verbose=False)[0]
    probabilities, labels = collector.result()
    # windows scored at the precision predict stream=true and train's stream calibration score them at
    alarms = scan_false_alarms(model, alarm_files, cfg, precision) if alarm_files else None
    stream = stream_operating_points(model, labelled_streams, cfg, precision) if labelled_streams else None

    # Everything is computed: only now are the report files written.
    output_dir = Path(cfg.paths.output_dir)
    report = write_report(model.test_confusion.compute().cpu().numpy(), model.class_names, output_dir, split)
    rows, detection_text = write_detection_report(probabilities, labels, model.class_names, output_dir, split)
    if alarms is not None:
        write_false_alarms_csv(alarms, output_dir / f"{split}_false_alarms.csv")
    stream_text = write_stream_report(*stream, output_dir, split) if stream else None
    write_tensorboard(output_dir / "tensorboard", split, probabilities, labels, model.class_names, stream)
    metrics = {key.replace("test/", f"{split}/"): float(value) for key, value in results.items()}
    metrics |= detection_metrics(rows, split) | false_alarm_metrics(alarms) | stream_metrics(stream, split)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\n{split} report for {cfg.ckpt_path} on {datamodule.source.name} ({precision}):\n{report}")
    print(f"\n{split} keyword detection (one-vs-rest; _silence_ and _unknown_ are negatives):\n{detection_text}")
    if alarms is not None:
        print(f"\n{false_alarms_text(alarms)}")
    if stream_text is not None:
        print(f"\n{stream_text}")
    files = f"{split}_report.md, {split}_report.csv, {split}_confusion.png, {split}_detection.md, " \
            f"{split}_detection.csv, {split}_det.png" + (f", {split}_false_alarms.csv" if alarms else "")
    if stream_text is not None:
        files += f", {split}_stream.md, {split}_stream.csv, {split}_stream_curve.csv, {split}_stream_det.png"
    print(f"Report files: {output_dir}/{files}; TensorBoard: {output_dir}/tensorboard")
    return metrics


def check_clip_format(model: AudioClassifier) -> None:
    """The model fixes the clip format; a data.sample_rate or data.clip_seconds given on the command
    line that differs from it would be silently replaced, so it is an error."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    given = dict(arg.partition("=")[::2] for arg in overrides if "=" in arg)
    rate, seconds = int(model.hparams.sample_rate), model.hparams.num_samples / model.hparams.sample_rate
    for key, expected, unit in (("data.sample_rate", rate, "Hz"), ("data.clip_seconds", seconds, "s")):
        if key in given and float(given[key]) != float(expected):
            raise UserError(f"{key}={given[key]} differs from the checkpoint's {expected:g} {unit}: the model takes "
                            f"only its own clip format (clips are resampled and cut to it): drop {key}=")


def check_classes(datamodule: AudioDataModule, checkpoint: list[str], map_classes: bool) -> bool:
    """True when the data's clips must be relabelled to the checkpoint's classes (map_classes=true and the
    lists differ); a difference without map_classes, or no class in common, is a one-line error."""
    names = datamodule.class_names
    if names == list(checkpoint):
        return False
    shared = [name for name in names if name in checkpoint]
    if map_classes and shared:
        print(f"map_classes=true: scoring the {len(shared)} classes the data and the checkpoint share, by name "
              f"({len(names) - len(shared)} of the data's classes left out)")
        return True
    data = f"data={datamodule.source.name} has classes {names}, the checkpoint {list(checkpoint)}"
    if not shared:
        raise UserError(f"{data}: no class in common; evaluate on the data the checkpoint was trained on")
    raise UserError(f"{data}: evaluate on data with the same classes in the same order, or add map_classes=true "
                    f"to score the {len(shared)} classes both have, matched by name")


def detection_metrics(rows: list[dict], split: str) -> dict[str, float]:
    """<split>/frr_at_far1/<keyword> per keyword, and the macro means <split>/frr_at_far1, <split>/auc."""
    metrics = {}
    for row in rows:
        if row["keyword"] == "macro avg":
            metrics[f"{split}/frr_at_far1"], metrics[f"{split}/auc"] = row["frr_at_far1"], row["auc"]
        else:
            metrics[f"{split}/frr_at_far1/{row['keyword']}"] = row["frr_at_far1"]
    return {key: value for key, value in metrics.items() if value == value}  # NaN (no positives) left out


def write_tensorboard(folder: Path, split: str, probabilities: np.ndarray, labels: np.ndarray,
                      class_names: list[str], stream: StreamPoints | None = None) -> None:
    """A PR curve per keyword (one-vs-rest) and the DET figure; with streams, FRR at each FA/h budget and
    the FRR against FA/h figure."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for k in keyword_indices(class_names):
            writer.add_pr_curve(f"{split}_pr/{class_names[k]}", labels == k, probabilities[:, k])
        writer.add_figure(f"{split}/det_curves", det_figure(keyword_curves(probabilities, labels, class_names),
                                                            f"{split} DET curves"))
        for name, value in stream_metrics(stream, split).items():
            writer.add_scalar(name, value, 0)
        if stream is not None:
            writer.add_figure(f"{split}/stream_det", stream_det_figure(*stream, f"{split}: FRR against FA/h"))


# ---- false alarms per hour ----------------------------------------------------------------


def check_stream_settings(cfg: DictConfig) -> None:
    if float(cfg.get("stream_hop", 0.1)) <= 0:
        raise UserError(f"stream_hop={cfg.stream_hop} must be a positive number of seconds, e.g. stream_hop=0.1")
    if int(cfg.get("smooth", 3)) < 1:
        raise UserError(f"smooth={cfg.smooth} must be at least 1 window, e.g. smooth=3")
    if float(cfg.get("refractory_s", 0.0)) < 0:
        raise UserError(f"refractory_s={cfg.refractory_s} must be a number of seconds >= 0, e.g. refractory_s=1.0")
    if int(cfg.get("min_windows", 1)) < 1:
        raise UserError(f"min_windows={cfg.min_windows} must be at least 1 window, e.g. min_windows=2")
    if float(cfg.get("collar", 0.5)) < 0:
        raise UserError(f"collar={cfg.collar} must be a number of seconds >= 0, e.g. collar=0.5")
    if str(cfg.get("stream_mode", "stateful")) not in ("stateful", "windowed"):
        raise UserError(f"stream_mode={cfg.stream_mode} is unknown: use stateful or windowed")
    threshold = cfg.get("threshold")
    is_number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if threshold is not None and not (is_number and 0 <= threshold <= 1):
        raise UserError(f"threshold={threshold} must be a probability between 0 and 1, e.g. threshold=0.6 "
                        "(or threshold=null: the checkpoint's per-keyword thresholds)")


def false_alarm_files(setting: str | bool | None, source: Source) -> list[Path]:
    """The recordings to scan: a file, a folder's audio files, or by default (null) the dataset's
    background-noise recordings; false, or a dataset without them, scans nothing."""
    if setting is False:
        return []
    if setting is None:
        files = source.noise_files() if hasattr(source, "noise_files") else []
        if not files:
            print(f"data={source.name} ships no background-noise recordings: false alarms per hour skipped "
                  "(false_alarms=<file or folder of audio with no keyword> to measure them)")
        return files
    if setting is True:
        raise UserError("false_alarms=true: give a file or folder of audio with no keyword in it, "
                        "null for the dataset's background noise, or false to skip")
    path = Path(str(setting)).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise UserError(f"false_alarms={path} holds no {'/'.join(AUDIO_SUFFIXES)} files: point it at "
                            "recordings with no keyword in them, or false_alarms=false to skip")
        return files
    raise UserError(f"false_alarms={path} does not exist: give an audio file or a folder of them "
                    "(recordings with no keyword), or false_alarms=false to skip")


def keyword_thresholds(model: AudioClassifier, threshold: float | None) -> tuple[dict[str, float], list[str]]:
    """keyword -> threshold: `threshold` for all when given, else the checkpoint's validation
    thresholds; the keywords that fell back to DEFAULT_THRESHOLD are returned too."""
    keywords = [model.class_names[k] for k in keyword_indices(model.class_names)]
    if threshold is not None:
        return dict.fromkeys(keywords, float(threshold)), []
    saved = getattr(model, "detection_thresholds", None) or {}
    missing = [keyword for keyword in keywords if keyword not in saved]
    return {keyword: float(saved.get(keyword, DEFAULT_THRESHOLD)) for keyword in keywords}, missing


def scan_false_alarms(model: AudioClassifier, files: list[Path], cfg: DictConfig,
                      precision: str = "32-true") -> FalseAlarms:
    """Every detection `predict stream=true` would report in these keyword-free recordings is a false alarm."""
    thresholds, missing = keyword_thresholds(model, cfg.get("threshold"))
    if missing:
        print(f"note: the checkpoint has no validation threshold for {', '.join(missing)}: their false alarms "
              f"are counted at threshold={DEFAULT_THRESHOLD}")
    rate, window = int(model.hparams.sample_rate), int(model.hparams.num_samples)
    hop = max(1, int(round(float(cfg.get("stream_hop", 0.1)) * rate)))
    counts, seconds = dict.fromkeys(thresholds, 0), 0.0
    for path in files:
        samples, file_rate = read_audio(path, min_ms=10)
        seconds += len(samples) / file_rate
        starts, probabilities = window_probabilities(model, resample(samples, file_rate, rate), hop,
                                                     float(cfg.get("min_dbfs", -50.0)), device=device_for(),
                                                     precision=precision)
        for found in detect(starts, probabilities, list(model.class_names), rate, window, thresholds,
                            int(cfg.get("smooth", 3)), refractory_s=float(cfg.get("refractory_s", 0.0)),
                            min_windows=int(cfg.get("min_windows", 1))):
            counts[found.label] += 1
    return FalseAlarms(thresholds, counts, seconds, len(files))


def false_alarm_metrics(alarms: FalseAlarms | None) -> dict[str, float]:
    if alarms is None:
        return {}
    metrics = {f"false_alarms_per_hour/{keyword}": alarms.per_hour(keyword) for keyword in alarms.counts}
    metrics["false_alarms/hours"] = alarms.seconds / 3600
    return metrics


def write_false_alarms_csv(alarms: FalseAlarms, path: Path) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["keyword", "threshold", "false_alarms", "hours", "false_alarms_per_hour"])
        for keyword, count in alarms.counts.items():
            writer.writerow([keyword, alarms.thresholds[keyword], count, alarms.seconds / 3600,
                             alarms.per_hour(keyword)])


def false_alarms_text(alarms: FalseAlarms) -> str:
    hours = alarms.seconds / 3600
    lines = [f"false alarms in {alarms.files} keyword-free recording{'s' if alarms.files > 1 else ''}, "
             f"{hours:.4f} h ({alarms.seconds:.1f} s) scanned:",
             f"{'keyword':>12}{'threshold':>11}{'alarms':>8}{'per hour':>10}"]
    for keyword, count in alarms.counts.items():
        lines.append(f"{keyword:>12}{alarms.thresholds[keyword]:>11.4f}{count:>8}{alarms.per_hour(keyword):>10.1f}")
    return "\n".join(lines)


# ---- keyword spotting on labelled streams -------------------------------------------------------

StreamPoints = tuple[StreamCurve, dict[float, OperatingPoint]]


def stream_labels(setting: str | None, class_names: list[str]) -> list[tuple[Path, list[Event]]]:
    """The labelled streams of stream_labels=<csv>, read before testing so a bad CSV fails first; none unset."""
    if not setting:
        return []
    try:
        streams = read_stream_labels(Path(str(setting)).expanduser(), list(class_names), IGNORED)
    except UserError as error:  # scoring names the key `labels=`
        raise UserError(f"stream_{error}" if str(error).startswith("labels=") else str(error)) from None
    if not streams:
        raise UserError(f"stream_labels={setting} lists no recording: give one row per keyword "
                        "(file,start_s,end_s,label), and a _silence_ row for a recording without one")
    return streams


def stream_operating_points(model: AudioClassifier, labelled: list[tuple[Path, list[Event]]],
                            cfg: DictConfig, precision: str = "32-true") -> StreamPoints:
    """Each stream's window probabilities once (as predict stream=true computes them), the FRR against
    FA/h curve at this eval's post-processing, and its operating points at BUDGETS."""
    device = device_for()
    streams: list[ScoredStream] = [
        score_stream(model, path, events, hop_seconds=float(cfg.get("stream_hop", 0.1)),
                     min_dbfs=float(cfg.get("min_dbfs", -50.0)), stream_mode=str(cfg.get("stream_mode", "stateful")),
                     device=device, precision=precision)
        for path, events in labelled
    ]
    post = PostProcessing(smooth=int(cfg.get("smooth", 3)), refractory_s=float(cfg.get("refractory_s", 0.0)),
                          min_windows=int(cfg.get("min_windows", 1)))
    swept = curve(streams, list(model.class_names), post=post, collar=float(cfg.get("collar", 0.5)))
    return swept, {budget: operating_point(swept, budget) for budget in BUDGETS}


def stream_metrics(stream: StreamPoints | None, split: str) -> dict[str, float]:
    """<split>/stream_frr_at_<budget>fah for each budget (left out where there is no event), <split>/stream_hours."""
    if stream is None:
        return {}
    swept, points = stream
    metrics = {f"{split}/stream_frr_at_{budget_name(budget)}": point.frr for budget, point in points.items()}
    metrics[f"{split}/stream_hours"] = swept.hours
    return {key: float(value) for key, value in metrics.items() if value == value}
