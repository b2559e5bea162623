"""Keyword spotting judged on continuous audio: the false-reject rate at a budget of false alarms per hour.

Each labelled stream (a long recording and its keyword events) is scored once by the model
(`ScoredStream`: the window probabilities of audioclf/streaming/detection.py); every threshold and
post-processing setting then reuses them. `curve` sweeps one threshold for every keyword and gives, per
threshold, what `detect` + audioclf/streaming/scoring.py would: FRR (missed events / events), false alarms
per hour of audio (a false alarm counts for the keyword it named) and the mean delay of the hits.
`operating_point` picks the threshold with the lowest FRR within a budget of false alarms per hour;
`calibrate` picks the post-processing and threshold that do best at a target on calibration streams.

An FA/h measured on little audio is coarse: in 15 minutes one false alarm is already 4 FA/h, so a budget
of 1 FA/h can only be met by a threshold with no false alarm at all; such a point is flagged unresolvable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from audioclf.data.io import read_audio, resample  # noqa: E402
from audioclf.errors import UserError  # noqa: E402
from audioclf.lit.module import AudioClassifier  # noqa: E402
from audioclf.report.tables import blank_nan, markdown_table, write_csv  # noqa: E402
from audioclf.streaming.detection import (  # noqa: E402
    IGNORED,
    SCORING_BATCH,
    count_before,
    look_ahead,
    refractory_mask,
    run_bounds,
    smooth_probabilities,
    window_probabilities,
)
from audioclf.streaming.scoring import TOLERANCE_S, Event, parse_labels  # noqa: E402
from audioclf.streaming.streams import Stream  # noqa: E402

BUDGETS = (1.0, 2.0, 8.0)  # false alarms per hour the report reads the curve at
BUDGET_TOLERANCE = 1e-9  # relative: a count / hours that equals the budget meets it


@dataclass
class ScoredStream:
    """One long recording scored by the model: its windows' class probabilities and its keyword events."""

    path: Path
    starts: np.ndarray  # window starts, in samples at `rate`
    probabilities: np.ndarray  # (windows, classes) float32; quiet windows all zeros
    rate: int
    window: int  # samples
    seconds: float  # length of the recording
    events: list[Event] = field(default_factory=list)  # keyword events only


@dataclass(frozen=True)
class PostProcessing:
    smooth: int = 3  # windows in the centred moving average
    refractory_s: float = 0.0  # after a detection of k, no other detection of k for this long
    min_windows: int = 1  # a shorter run of active windows is not a detection

    def describe(self) -> str:
        return f"smooth {self.smooth}, refractory {self.refractory_s:g} s, min {self.min_windows} window(s)"


@dataclass
class StreamCurve:
    """One point per threshold (ascending); per-keyword arrays are keyed by keyword in class order."""

    thresholds: np.ndarray
    frr: np.ndarray  # NaN where there is no event
    false_alarms: np.ndarray
    fa_per_hour: np.ndarray
    mean_delay: np.ndarray  # seconds, reported time - event end; NaN where nothing is hit
    keyword_frr: dict[str, np.ndarray]
    keyword_fa_per_hour: dict[str, np.ndarray]
    keyword_events: dict[str, int]
    events: int
    hours: float
    streams: int
    post: PostProcessing
    collar: float


@dataclass(frozen=True)
class OperatingPoint:
    budget: float  # false alarms per hour asked for
    threshold: float
    frr: float
    fa_per_hour: float  # achieved
    mean_delay: float  # NaN where nothing is hit
    met: bool  # some threshold keeps within the budget; if not, this is the highest threshold
    resolvable: bool  # one false alarm in this much audio is within the budget


# ---- scoring streams with a model -----------------------------------------------------------


def read_stream_labels(path: str | Path, class_names: list[str],
                       ignore: tuple[str, ...] = IGNORED) -> list[tuple[Path, list[Event]]]:
    """Each file of a labels CSV (file,start_s,end_s,label) with its keyword events, in the CSV's order. A
    stream without keywords is listed by a row with an ignored label (e.g. `_silence_`)."""
    names = [*class_names, *(name for name in ignore if name not in class_names)]
    rows = parse_labels(path, names)  # every row, ignored labels too: they name streams
    streams: dict[Path, list[Event]] = {}
    for event in rows:
        if event.file not in streams and not event.file.is_file():
            raise UserError(f"labels={path} line {event.line}: {event.file} does not exist: file paths are "
                            "relative to the CSV's folder, or absolute")
        streams.setdefault(event.file, [])
        if event.label not in ignore:
            streams[event.file].append(event)
    return list(streams.items())


def score_stream(model: AudioClassifier, path: Path, events: list[Event], hop_seconds: float = 0.1,
                 min_dbfs: float = -50.0, stream_mode: str = "stateful", device: torch.device | None = None,
                 precision: str = "32-true") -> ScoredStream:
    """The recording's window probabilities, computed once, as `predict stream=true` computes them."""
    samples, file_rate = read_audio(path, min_ms=10)
    samples = resample(samples, file_rate, int(model.hparams.sample_rate))
    return score_samples(model, path, samples, events, hop_seconds, min_dbfs, stream_mode, device,
                         precision=precision)


def score_samples(model: AudioClassifier, path: Path, samples: np.ndarray, events: list[Event],
                  hop_seconds: float = 0.1, min_dbfs: float = -50.0, stream_mode: str = "stateful",
                  device: torch.device | None = None, batch_size: int = SCORING_BATCH,
                  precision: str = "32-true") -> ScoredStream:
    """`score_stream` for a recording already in memory at the model's sample rate."""
    rate, window = int(model.hparams.sample_rate), int(model.hparams.num_samples)
    hop = max(1, int(round(hop_seconds * rate)))
    starts, probabilities = window_probabilities(model, samples, hop, min_dbfs, batch_size, device=device,
                                                 stream_mode=stream_mode, precision=precision)
    return ScoredStream(path, starts, probabilities, rate, window, len(samples) / rate, list(events))


def score_built_streams(model: AudioClassifier, streams: Sequence[Stream], hop_seconds: float = 0.1,
                        min_dbfs: float = -50.0, stream_mode: str = "stateful", ignore: tuple[str, ...] = IGNORED,
                        device: torch.device | None = None, precision: str = "32-true") -> list[ScoredStream]:
    """`score_samples` for streams built in memory (audioclf/streaming/streams.py), keyword events only."""
    scored = []
    for stream in streams:
        path = Path(stream.name)
        events = [Event(path, start, end, label) for start, end, label in stream.events if label not in ignore]
        scored.append(score_samples(model, path, stream.samples, events, hop_seconds, min_dbfs, stream_mode, device,
                                    precision=precision))
    return scored


# ---- the threshold sweep --------------------------------------------------------------------


@dataclass
class Windows:
    """Every stream's windows end to end, smoothed once: all a threshold sweep reads."""

    level: np.ndarray  # the best keyword's smoothed probability; -inf where nothing may fire (silence)
    keyword: np.ndarray  # that keyword's index in the keyword list
    weight: np.ndarray  # the best keyword's smoothed probability (weights a run's centre)
    weighted_centre: np.ndarray  # weight * window centre, seconds
    reported_at: np.ndarray  # seconds: when a run starting at this window is reported
    stream: np.ndarray  # stream index
    breaks: np.ndarray  # True where a stream begins


@dataclass
class Targets:
    """The events of every stream, sorted by (stream, keyword, start, end): the order match_file uses, and
    their clusters: events of one group whose widened spans overlap, chained (most events are alone in one)."""

    group: np.ndarray  # stream * keywords + keyword
    low: np.ndarray  # start - collar (- tolerance)
    high: np.ndarray  # end + collar (+ tolerance)
    end: np.ndarray
    keyword: np.ndarray
    cluster_first: np.ndarray  # per cluster: its first event, its number of events, its group and widened span
    cluster_size: np.ndarray
    cluster_group: np.ndarray
    cluster_low: np.ndarray
    cluster_high: np.ndarray


def keyword_list(class_names: list[str], ignore: tuple[str, ...]) -> list[str]:
    return [name for name in class_names if name not in ignore]


def prepare_windows(streams: Sequence[ScoredStream], class_names: list[str], smooth: int,
                    ignore: tuple[str, ...]) -> Windows:
    if not streams:
        raise ValueError("a stream curve needs at least one stream")
    columns = [i for i, name in enumerate(class_names) if name not in ignore]
    parts = [stream_windows(stream, index, columns, smooth) for index, stream in enumerate(streams)]
    return Windows(*(np.concatenate([getattr(part, column.name) for part in parts]) for column in fields(Windows)))


def stream_windows(stream: ScoredStream, index: int, columns: list[int], smooth: int) -> Windows:
    smoothed = smooth_probabilities(stream.probabilities, smooth)[:, columns]
    best = smoothed.argmax(axis=1)
    weight = smoothed[np.arange(len(best)), best]
    centres = (stream.starts + stream.window / 2) / stream.rate
    ahead = np.minimum(np.arange(len(best)) + look_ahead(smooth), len(best) - 1)
    reported = round_ms((stream.starts[ahead] + stream.window) / stream.rate)
    breaks = np.zeros(len(best), dtype=bool)
    breaks[:1] = True
    # compared in float64, as detect() compares smoothed probabilities with its float64 thresholds
    level = np.where(weight > 0, weight.astype(np.float64), -np.inf)
    return Windows(level, best, weight, weight * centres, reported, np.full(len(best), index), breaks)


def prepare_targets(streams: Sequence[ScoredStream], keywords: list[str], collar: float) -> Targets:
    index = {name: k for k, name in enumerate(keywords)}
    rows = sorted((s * len(keywords) + index[event.label], event.start, event.end, index[event.label])
                  for s, stream in enumerate(streams) for event in stream.events if event.label in index)
    table = np.array(rows, dtype=float).reshape(-1, 4)
    group, start, end, keyword = table[:, 0].astype(int), table[:, 1], table[:, 2], table[:, 3].astype(int)
    low, high = start - collar - TOLERANCE_S, end + collar + TOLERANCE_S
    first = cluster_starts(group, low, high)
    size = np.diff(np.append(first, len(group)))
    span_high = np.maximum.reduceat(high, first) if len(first) else np.zeros(0)
    return Targets(group, low, high, end, keyword, first, size, group[first], low[first], span_high)


def cluster_starts(group: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Indices of the events that begin a cluster: a new group, or a start beyond every widened span before."""
    starts, reach, last_group = [], -np.inf, None
    for j, (g, lo, hi) in enumerate(zip(group.tolist(), low.tolist(), high.tolist(), strict=True)):
        if g != last_group or lo > reach:
            starts.append(j)
            reach, last_group = hi, g
        else:
            reach = max(reach, hi)
    return np.array(starts, dtype=int)


@dataclass
class Found:
    """The detections at one threshold, in window order."""

    group: np.ndarray  # stream * keywords + keyword
    keyword: np.ndarray
    time: np.ndarray
    reported_at: np.ndarray


def detections_at(windows: Windows, threshold: float, post: PostProcessing, keywords: int) -> Found:
    """What detect() reports at this one threshold for every keyword, for all streams at once."""
    chosen = np.where(windows.level >= threshold, windows.keyword, -1)
    first, end = run_bounds(chosen, windows.breaks)
    if len(first) == 0:
        return Found(np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0), np.zeros(0))
    kept = (chosen[first] >= 0) & (end - first >= post.min_windows)
    times = np.add.reduceat(windows.weighted_centre, first)[kept] / np.add.reduceat(windows.weight, first)[kept]
    first = first[kept]
    keyword = chosen[first]
    group = windows.stream[first] * keywords + keyword
    times = round_ms(times)
    survive = refractory_mask(group, times, post.refractory_s)
    return Found(group[survive], keyword[survive], times[survive], windows.reported_at[first][survive])


def round_ms(seconds: np.ndarray) -> np.ndarray:
    """round(t, 3) of each time, as detect() rounds; Python's own round only where numpy's could differ
    (within a hair of half a millisecond)."""
    scaled = np.asarray(seconds, dtype=np.float64) * 1000
    rounded = np.rint(scaled) / 1000
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    rounded[near_half] = [round(t, 3) for t in np.asarray(seconds)[near_half].tolist()]
    return rounded


def match(found: Found, targets: Targets) -> tuple[np.ndarray, np.ndarray]:
    """(hit detections, their events) by scoring.match_file's rule: in time order, each detection takes the
    earliest unmatched event of its keyword whose widened span holds it."""
    if len(targets.cluster_first) == 0 or len(found.time) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    cluster = covering_cluster(found, targets)
    clipped = np.maximum(cluster, 0)
    event = np.where(cluster >= 0, targets.cluster_first[clipped], -1)
    tangled = np.flatnonzero((cluster >= 0) & (targets.cluster_size[clipped] > 1))
    if len(tangled):
        event[tangled] = greedy_events(found, targets, tangled, cluster[tangled])
    candidates = np.flatnonzero(event >= 0)
    order = candidates[np.lexsort((found.time[candidates], event[candidates]))]
    first = np.ones(len(order), dtype=bool)  # the earliest detection of each event hits it, the rest are alarms
    first[1:] = event[order][1:] != event[order][:-1]
    return order[first], event[order][first]


def covering_cluster(found: Found, targets: Targets) -> np.ndarray:
    """Per detection, the cluster of its group whose widened span holds it; -1 for none."""
    last = count_before(targets.cluster_group, targets.cluster_low, found.group, found.time, inclusive=True) - 1
    clipped = np.maximum(last, 0)
    holds = (last >= 0) & (targets.cluster_group[clipped] == found.group)
    holds &= found.time <= targets.cluster_high[clipped]
    return np.where(holds, last, -1)


def greedy_events(found: Found, targets: Targets, detections: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """match_file's loop, for the few detections in a cluster of events within a collar of each other."""
    order = np.argsort(found.time[detections], kind="stable")
    taken, hits = set(), []
    for d, c in zip(detections[order].tolist(), clusters[order].tolist(), strict=True):
        span = range(targets.cluster_first[c], targets.cluster_first[c] + targets.cluster_size[c])
        time = found.time[d]
        hit = next((j for j in span if j not in taken and targets.low[j] <= time <= targets.high[j]), -1)
        taken.add(hit)
        hits.append(hit)
    result = np.empty(len(detections), dtype=int)
    result[order] = hits
    return result


def default_thresholds() -> np.ndarray:
    """100 thresholds: every 0.02 from 0.01 to 0.89, then dense towards 1 (1 - 10^-1 ... 1 - 10^-5),
    where a confident model's smoothed probabilities sit."""
    return np.unique(np.concatenate([np.linspace(0.01, 0.89, 45), 1 - np.logspace(-1, -5, 55)]))


def curve(streams: Sequence[ScoredStream], class_names: list[str], thresholds: np.ndarray | None = None,
          post: PostProcessing = PostProcessing(), collar: float = 0.5,
          ignore: tuple[str, ...] = IGNORED) -> StreamCurve:
    """FRR, false alarms per hour and mean delay at each threshold (one for every keyword); thresholds
    are sorted, None: default_thresholds()."""
    windows = prepare_windows(streams, class_names, max(1, post.smooth), ignore)
    return sweep(windows, streams, class_names, thresholds, post, collar, ignore)


def sweep(windows: Windows, streams: Sequence[ScoredStream], class_names: list[str],
          thresholds: np.ndarray | None, post: PostProcessing, collar: float, ignore: tuple[str, ...]) -> StreamCurve:
    keywords = keyword_list(class_names, ignore)
    thresholds = np.unique(np.asarray(default_thresholds() if thresholds is None else thresholds, dtype=float))
    targets = prepare_targets(streams, keywords, collar)
    events = np.bincount(targets.keyword, minlength=len(keywords))
    misses = np.zeros((len(keywords), len(thresholds)), dtype=int)
    alarms = np.zeros_like(misses)
    mean_delay = np.full(len(thresholds), np.nan)
    for t, threshold in enumerate(thresholds):
        found = detections_at(windows, threshold, post, len(keywords))
        hit, event = match(found, targets)
        hits = np.bincount(targets.keyword[event], minlength=len(keywords))
        misses[:, t] = events - hits
        alarms[:, t] = np.bincount(found.keyword, minlength=len(keywords)) - hits
        if len(hit):
            mean_delay[t] = float(np.mean(found.reported_at[hit] - targets.end[event]))
    hours = sum(stream.seconds for stream in streams) / 3600
    with np.errstate(divide="ignore", invalid="ignore"):
        keyword_frr = misses / events[:, None]
        per_hour = alarms / hours if hours > 0 else np.full(alarms.shape, np.nan)
        frr = misses.sum(axis=0) / events.sum()
    return StreamCurve(
        thresholds=thresholds, frr=frr, false_alarms=alarms.sum(axis=0), fa_per_hour=per_hour.sum(axis=0),
        mean_delay=mean_delay, keyword_frr=dict(zip(keywords, keyword_frr, strict=True)),
        keyword_fa_per_hour=dict(zip(keywords, per_hour, strict=True)),
        keyword_events={name: int(count) for name, count in zip(keywords, events, strict=True)},
        events=int(events.sum()), hours=hours, streams=len(streams), post=post, collar=collar,
    )


# ---- operating points and calibration ------------------------------------------------------


def resolvable(hours: float, budget: float) -> bool:
    """Whether this much audio can tell the budget apart from zero: one false alarm must be within it."""
    return bool(hours > 0 and 1 / hours <= budget * (1 + BUDGET_TOLERANCE))


def operating_point(curve: StreamCurve, fa_per_hour: float) -> OperatingPoint:
    """Among thresholds within `fa_per_hour`, the one with the lowest FRR (ties: the higher threshold);
    where none is within it, the highest threshold, with `met` False."""
    within = np.flatnonzero(curve.fa_per_hour <= fa_per_hour * (1 + BUDGET_TOLERANCE))
    if len(within):
        frr = np.where(np.isnan(curve.frr[within]), np.inf, curve.frr[within])
        chosen = within[np.lexsort((-curve.thresholds[within], frr))[0]]
    else:
        chosen = int(np.argmax(curve.thresholds))
    return OperatingPoint(
        budget=float(fa_per_hour), threshold=float(curve.thresholds[chosen]), frr=float(curve.frr[chosen]),
        fa_per_hour=float(curve.fa_per_hour[chosen]), mean_delay=float(curve.mean_delay[chosen]),
        met=bool(len(within)), resolvable=resolvable(curve.hours, fa_per_hour),
    )


def default_grid() -> list[PostProcessing]:
    return [PostProcessing(smooth, refractory_s, min_windows)
            for smooth in (1, 3, 5) for refractory_s in (0.0, 1.0) for min_windows in (1, 2)]


def calibrate(streams: Sequence[ScoredStream], class_names: list[str], target_fa_per_hour: float,
              grid: list[PostProcessing] | None = None, thresholds: np.ndarray | None = None,
              collar: float = 0.5, ignore: tuple[str, ...] = IGNORED) -> tuple[PostProcessing, OperatingPoint]:
    """The post-processing (from `grid`) and threshold with the lowest FRR at the target on these streams.
    Ties go to the lower FA/h, then to the earlier setting in the grid; a point that misses the budget
    never beats one that meets it."""
    grid = grid or default_grid()
    windows_by_smooth = {}
    best = None
    for index, post in enumerate(grid):
        smooth = max(1, post.smooth)
        if smooth not in windows_by_smooth:
            windows_by_smooth[smooth] = prepare_windows(streams, class_names, smooth, ignore)
        point = operating_point(sweep(windows_by_smooth[smooth], streams, class_names, thresholds, post, collar,
                                      ignore), target_fa_per_hour)
        rank = (not point.met, math.inf if math.isnan(point.frr) else point.frr, point.fa_per_hour, index)
        if best is None or rank < best[0]:
            best = (rank, post, point)
    return best[1], best[2]


# ---- the report ----------------------------------------------------------------------------


def budget_name(budget: float) -> str:
    return f"{budget:g}fah"


def number(value: float, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def note(point: OperatingPoint, hours: float) -> str:
    notes = []
    if not point.resolvable:
        notes.append(f"coarse: one false alarm in {hours * 60:.1f} min of audio is already "
                     f"{1 / hours if hours > 0 else math.inf:.1f} FA/h")
    if not point.met:
        notes.append("no threshold meets the budget: the highest one shown")
    return "; ".join(notes)


def keyword_at(curve: StreamCurve, point: OperatingPoint, keyword: str) -> tuple[float, float]:
    """(FRR, FA/h) of one keyword at the point's threshold."""
    t = int(np.searchsorted(curve.thresholds, point.threshold))
    return float(curve.keyword_frr[keyword][t]), float(curve.keyword_fa_per_hour[keyword][t])


def stream_markdown(curve: StreamCurve, points: dict[float, OperatingPoint]) -> str:
    budgets = sorted(points)
    lines = [
        "## Keyword spotting on continuous audio",
        "",
        f"{curve.streams} stream{'s' if curve.streams != 1 else ''}, {curve.hours:.3f} h of audio "
        f"({curve.hours * 60:.1f} min), {curve.events} keyword events; collar {curve.collar:g} s; "
        f"post-processing: {curve.post.describe()}. One threshold for every keyword; a false alarm counts "
        "for the keyword it named; delay = reported time - end of the word.",
        "",
    ]
    if any(not points[b].resolvable for b in budgets):
        lines += [f"An FA/h from {curve.hours * 60:.1f} min of audio is coarse: budgets below "
                  f"{1 / curve.hours if curve.hours > 0 else math.inf:.1f} FA/h can only be met with no false "
                  "alarm at all.", ""]
    rows = [[f"{b:g}", number(points[b].frr, 3), f"{points[b].threshold:.6g}", number(points[b].fa_per_hour, 2),
             number(points[b].mean_delay, 3), note(points[b], curve.hours)] for b in budgets]
    lines.append(markdown_table(["FA/h budget", "FRR", "threshold", "FA/h", "mean delay (s)", "note"], rows,
                                "rrrrrl"))
    header = ["keyword", "events"]
    for b in budgets:
        header += [f"FRR @{b:g} FA/h", f"FA/h @{b:g}"]
    keyword_rows = []
    for keyword, events in curve.keyword_events.items():
        row = [keyword, str(events)]
        for b in budgets:
            frr, per_hour = keyword_at(curve, points[b], keyword)
            row += [number(frr, 3), number(per_hour, 2)]
        keyword_rows.append(row)
    lines += ["Per keyword, at each budget's threshold:", "", markdown_table(header, keyword_rows)]
    return "\n".join(lines)


POINT_COLUMNS = ("budget_fa_per_hour", "keyword", "threshold", "frr", "fa_per_hour", "events", "mean_delay_s",
                 "met", "resolvable", "hours")


def point_rows(curve: StreamCurve, points: dict[float, OperatingPoint]) -> Iterable[dict]:
    for budget in sorted(points):
        point = points[budget]
        common = {"budget_fa_per_hour": budget, "threshold": point.threshold, "met": point.met,
                  "resolvable": point.resolvable, "hours": curve.hours}
        yield blank_nan({**common, "keyword": "all", "frr": point.frr, "fa_per_hour": point.fa_per_hour,
                         "events": curve.events, "mean_delay_s": point.mean_delay})
        for keyword, events in curve.keyword_events.items():
            frr, per_hour = keyword_at(curve, point, keyword)
            yield blank_nan({**common, "keyword": keyword, "frr": frr, "fa_per_hour": per_hour, "events": events})


def curve_rows(curve: StreamCurve) -> tuple[list[str], list[dict]]:
    header = ["threshold", "frr", "false_alarms", "fa_per_hour", "mean_delay_s"]
    header += [f"{name}/{keyword}" for keyword in curve.keyword_events for name in ("frr", "fa_per_hour")]
    rows = []
    for t, threshold in enumerate(curve.thresholds):
        row = {"threshold": threshold, "frr": curve.frr[t], "false_alarms": int(curve.false_alarms[t]),
               "fa_per_hour": curve.fa_per_hour[t], "mean_delay_s": curve.mean_delay[t]}
        for keyword in curve.keyword_events:
            row[f"frr/{keyword}"] = curve.keyword_frr[keyword][t]
            row[f"fa_per_hour/{keyword}"] = curve.keyword_fa_per_hour[keyword][t]
        rows.append(blank_nan({key: value if key == "false_alarms" else float(value) for key, value in row.items()}))
    return header, rows


def stream_det_figure(curve: StreamCurve, points: dict[float, OperatingPoint] | None = None,
                      title: str = "FRR against false alarms per hour"):
    """FRR against FA/h, overall and per keyword; the x axis is logarithmic above one false alarm in the
    audio and linear below it, so thresholds with no false alarm stay on the plot (at 0)."""
    figure, axes = plt.subplots(figsize=(7.5, 5))
    resolution = 1 / curve.hours if curve.hours > 0 else 1.0
    axes.plot(curve.fa_per_hour, curve.frr, color="black", linewidth=2, label="all keywords")
    for keyword, frr in curve.keyword_frr.items():
        if curve.keyword_events[keyword]:
            axes.plot(curve.keyword_fa_per_hour[keyword], frr, linewidth=1, alpha=0.7, label=keyword)
    for budget in sorted(points or {}):
        axes.axvline(budget, color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("symlog", linthresh=min(1.0, resolution))
    axes.set_xlim(left=0)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("false alarms per hour")
    axes.set_ylabel("false-reject rate (FRR)")
    axes.set_title(f"{title} ({curve.hours * 60:.1f} min of audio)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    figure.tight_layout()
    return figure


def write_stream_report(curve: StreamCurve, points: dict[float, OperatingPoint], folder: Path,
                        prefix: str = "test") -> str:
    """<prefix>_stream.md (the markdown returned), <prefix>_stream.csv (the operating points, overall and per
    keyword), <prefix>_stream_curve.csv (every threshold) and <prefix>_stream_det.png, in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = stream_markdown(curve, points)
    (folder / f"{prefix}_stream.md").write_text(text)
    write_csv(folder / f"{prefix}_stream.csv", POINT_COLUMNS, point_rows(curve, points))
    write_csv(folder / f"{prefix}_stream_curve.csv", *curve_rows(curve))
    figure = stream_det_figure(curve, points, f"{prefix}: FRR against false alarms per hour")
    figure.savefig(folder / f"{prefix}_stream_det.png", dpi=100)
    plt.close(figure)
    return text
