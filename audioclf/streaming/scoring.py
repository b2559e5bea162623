"""Streaming detections scored against time labels: hits, misses, false alarms, delay.

audioclf-predict ckpt_path=<file.ckpt> inputs=<long.wav or folder> stream=true labels=events.csv [collar=0.5]

The labels CSV has a header naming at least file,start_s,end_s,label (other columns are ignored),
one row per spoken keyword. `file` is a path relative to the CSV's folder, or absolute. Every
input is scored: an input without rows holds no keyword, so each detection in it is a false
alarm. A row whose label is in `ignore` (`_unknown_`, ...) marks a non-keyword: not an event.

A detection of keyword k is a hit when its time (the centre of the windows that heard it) lies
within an unmatched event of k widened by `collar` seconds on each side. Detections are matched
in time order, each to the earliest such event, so an event is matched at most once; a second
detection of the same word is a false alarm. Unmatched events are misses. The delay of a hit is
the detection's `reported_at` (when a live stream would have it: see audioclf/streaming/detection.py)
minus the event's end: how long after the word ends the detector says so (negative: before).
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from audioclf.errors import UserError
from audioclf.report.files import replaced
from audioclf.streaming.detection import Detection

COLUMNS = ("file", "start_s", "end_s", "label")
TOLERANCE_S = 1e-6  # times are compared to the microsecond: a detection on the collar's edge is a hit
SHOWN_CLASSES = 12  # an unknown-label error names this many classes of the checkpoint


@dataclass(frozen=True)
class Event:
    file: Path  # resolved
    start: float  # seconds
    end: float
    label: str
    line: int = 0  # in the labels CSV, for messages


@dataclass
class KeywordScore:
    hits: int = 0
    misses: int = 0
    false_alarms: int = 0
    delays: list[float] = field(default_factory=list)  # seconds, one per hit

    @property
    def events(self) -> int:
        return self.hits + self.misses

    @property
    def precision(self) -> float | None:
        detections = self.hits + self.false_alarms
        return self.hits / detections if detections else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.events if self.events else None

    @property
    def mean_delay(self) -> float | None:
        return sum(self.delays) / len(self.delays) if self.delays else None

    def add(self, other: KeywordScore) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.false_alarms += other.false_alarms
        self.delays += other.delays


@dataclass
class StreamScore:
    keywords: dict[str, KeywordScore]  # keywords with an event or a detection, sorted
    total: KeywordScore
    hours: float  # of audio scanned
    files: int

    def false_alarms_per_hour(self, score: KeywordScore) -> float | None:
        return score.false_alarms / self.hours if self.hours > 0 else None


def parse_labels(path: str | Path, class_names: list[str], ignore: tuple[str, ...] = ()) -> list[Event]:
    """Keyword events of a labels CSV; each bad row is a one-line UserError naming the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"labels={path} does not exist: give a CSV with columns {','.join(COLUMNS)}")
    with path.open(newline="") as stream:
        reader = csv.DictReader(stream)
        header = [name.strip() for name in reader.fieldnames or []]
        check_header(path, header)
        reader.fieldnames = header
        rows = [(reader.line_num, row) for row in reader]
    events = [parse_row(path, line, row, class_names, ignore) for line, row in rows]
    return [event for event in events if event.label not in ignore]


def check_header(path: Path, header: list[str]) -> None:
    if not header:
        raise UserError(f"labels={path} is empty: its first line must be the header {','.join(COLUMNS)}")
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise UserError(f"labels={path} has no column {', '.join(missing)} (header: {','.join(header)}): "
                        f"its first line must name {','.join(COLUMNS)}")


def parse_row(
    path: Path, line: int, row: dict[str, str | None], class_names: list[str], ignore: tuple[str, ...] = ()
) -> Event:
    where = f"labels={path} line {line}"
    file = (row["file"] or "").strip()
    if not file:
        raise UserError(f"{where} has no file: give the audio file's path, relative to the CSV's folder")
    start, end = (row_seconds(where, row, name) for name in ("start_s", "end_s"))
    if end < start:
        raise UserError(f"{where}: end_s={end:g} is before start_s={start:g}: swap or fix the times")
    label = (row["label"] or "").strip()
    if label not in class_names and label not in ignore:
        shown = ", ".join(class_names[:SHOWN_CLASSES]) + (", ..." if len(class_names) > SHOWN_CLASSES else "")
        raise UserError(f"{where}: label '{label}' is not a class of the checkpoint: use one of {shown}")
    resolved = Path(file).expanduser()
    resolved = resolved if resolved.is_absolute() else path.parent / resolved
    return Event(resolved.resolve(), start, end, label, line)


def row_seconds(where: str, row: dict[str, str | None], name: str) -> float:
    text = (row[name] or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{where}: {name}='{text}' is not a time in seconds (a number >= 0)")
    return value


def match_file(
    detections: Iterable[Detection], events: Iterable[Event], collar: float
) -> tuple[list[tuple[Detection, Event]], list[Detection], list[Event]]:
    """(hits as (detection, event) pairs, false alarms, misses) of one recording; the rule is in the docstring."""
    events = sorted(events, key=lambda event: (event.start, event.end))
    matched = [False] * len(events)
    hits, false_alarms = [], []
    for found in sorted(detections, key=lambda detection: detection.time):
        index = next((i for i, event in enumerate(events) if not matched[i] and covers(event, found, collar)), None)
        if index is None:
            false_alarms.append(found)
        else:
            matched[index] = True
            hits.append((found, events[index]))
    return hits, false_alarms, [event for event, used in zip(events, matched, strict=True) if not used]


def covers(event: Event, found: Detection, collar: float) -> bool:
    return (
        event.label == found.label
        and event.start - collar - TOLERANCE_S <= found.time <= event.end + collar + TOLERANCE_S
    )


def delay(found: Detection, event: Event) -> float:
    reported = found.reported_at if found.reported_at is not None else found.time
    return reported - event.end


def score_files(
    results: Iterable[tuple[Path, list[Detection]]], events: list[Event], seconds: dict[Path, float], collar: float
) -> StreamScore:
    """Score each recording's detections against its events; `seconds` gives each recording's length."""
    by_file: dict[Path, list[Event]] = {}
    for event in events:
        by_file.setdefault(event.file, []).append(event)
    keywords: dict[str, KeywordScore] = {}
    files = 0
    for path, detections in results:
        files += 1
        hits, false_alarms, misses = match_file(detections, by_file.get(Path(path).resolve(), []), collar)
        for found, event in hits:
            keyword = keywords.setdefault(found.label, KeywordScore())
            keyword.hits += 1
            keyword.delays.append(delay(found, event))
        for found in false_alarms:
            keywords.setdefault(found.label, KeywordScore()).false_alarms += 1
        for event in misses:
            keywords.setdefault(event.label, KeywordScore()).misses += 1
    total = KeywordScore()
    for keyword in keywords.values():
        total.add(keyword)
    hours = sum(seconds.values()) / 3600
    return StreamScore(dict(sorted(keywords.items())), total, hours, files)


def check_labelled_files(labels: Path, events: list[Event], inputs: list[Path]) -> list[Event]:
    """The events of files among the inputs. None among them is a UserError (a path mistake, most likely);
    some not among them are left out, and a warning line says so."""
    known = {path.resolve() for path in inputs}
    kept = [event for event in events if event.file in known]
    absent = sorted({event.file for event in events} - known)
    if events and not kept:
        first = events[0]
        raise UserError(f"labels={labels} names no file among the inputs (line {first.line} reads as {first.file}): "
                        "file paths are relative to the CSV's folder, or absolute")
    if absent:
        print(f"warning: labels={labels}: {len(absent)} labelled file{'s are' if len(absent) > 1 else ' is'} not "
              f"among the inputs and left out of the score, the first: {absent[0]}", file=sys.stderr)
    return kept


def format_number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def score_rows(score: StreamScore) -> list[list[str]]:
    """keyword, events, hits, misses, false alarms, precision, recall, mean delay (s), false alarms per hour."""
    rows = []
    for name, keyword in [*score.keywords.items(), ("all", score.total)]:
        rows.append([name, str(keyword.events), str(keyword.hits), str(keyword.misses), str(keyword.false_alarms),
                     format_number(keyword.precision, 3), format_number(keyword.recall, 3),
                     format_number(keyword.mean_delay, 3),
                     format_number(score.false_alarms_per_hour(keyword), 1)])
    return rows


SCORE_HEADER = ["keyword", "events", "hits", "misses", "false_alarms", "precision", "recall", "mean_delay_s",
                "false_alarms_per_hour"]


def format_score(score: StreamScore, collar: float) -> str:
    rows = [SCORE_HEADER, *score_rows(score)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SCORE_HEADER))]
    lines = [f"score: {score.files} file{'s' if score.files != 1 else ''}, {score.hours * 60:.2f} min of audio, "
             f"collar {collar:g} s; delay = reported time - event end"]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def write_score(path: Path, score: StreamScore) -> None:
    """The score table as CSV (plus hours scanned), written beside `path` and renamed over it at the end."""
    with replaced(path) as temporary, temporary.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*SCORE_HEADER, "hours"])
        writer.writerows([*row, f"{score.hours:.9g}"] for row in score_rows(score))
