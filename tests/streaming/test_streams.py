"""Labelled streams: speech bounds, where the words land, seeds, length, the CSV, the task and its errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf.data.sources import ClipRef, Source
from audioclf.errors import UserError
from audioclf.streaming.scoring import parse_labels
from audioclf.streaming.streams import StreamRecipe, build_streams, speech_bounds, write_streams
from audioclf.tasks import streams as task
from tests.conftest import ROOT, compose_config, make_speech_commands

RATE = 16000
FRAME = RATE // 100


def burst(start: int, end: int, length: int = RATE, freq: float = 1000.0) -> np.ndarray:
    """Zeros with a tone in [start, end); the phase keeps every tone sample non-zero."""
    samples = np.zeros(length, np.float32)
    t = np.arange(end - start) / RATE
    samples[start:end] = 0.3 * np.sin(2 * np.pi * freq * t + 0.3)
    return samples


class MemorySource(Source):
    """Clips held in memory: (samples, label name) per clip, all in one split."""

    name = "memory"

    def __init__(self, words: list[tuple[np.ndarray, str]], noise: list[np.ndarray] = ()):
        self.class_names = ["yes", "no", "_silence_", "_unknown_"]
        self.samples = [samples for samples, _ in words]
        self.refs = [ClipRef(str(i), self.class_names.index(label)) for i, (_, label) in enumerate(words)]
        self.noise = list(noise)

    def clips(self, split: str) -> list[ClipRef]:
        return self.refs if split == "test" else []

    def read(self, clip: ClipRef) -> tuple[np.ndarray, int]:
        return self.samples[int(clip.path)], RATE

    def noise_recordings(self, sample_rate: int) -> list[np.ndarray]:
        return self.noise


# each word's speech, in 10 ms frames: (first frame, frame after the last)
SPEECH = [(10, 40), (3, 90), (0, 25), (50, 100), (22, 61), (7, 8)]
LABELS = ["yes", "no", "_unknown_", "yes", "no", "_unknown_"]


def words() -> list[tuple[np.ndarray, str]]:
    clips = [(burst(a * FRAME, b * FRAME), label) for (a, b), label in zip(SPEECH, LABELS, strict=True)]
    return clips + [(np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32), "_silence_")]


def white_noise(seconds: float = 5.0, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * RATE)).astype(np.float32)


def test_speech_bounds_finds_a_burst_to_the_frame():
    assert speech_bounds(burst(25 * FRAME, 61 * FRAME), RATE) == (25 * FRAME, 61 * FRAME)
    start, end = speech_bounds(burst(25 * FRAME + 37, 61 * FRAME - 50), RATE)
    assert start == 25 * FRAME and end == 61 * FRAME
    assert speech_bounds(np.zeros(RATE, np.float32), RATE) == (0, RATE)


def runs_of_sound(samples: np.ndarray) -> list[tuple[int, int]]:
    loud = np.flatnonzero(samples != 0)
    breaks = np.flatnonzero(np.diff(loud) > 1)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def test_events_are_where_the_speech_was_put_to_the_sample():
    recipe = StreamRecipe(minutes=0.5, gap_s=(0.2, 1.0))
    streams = build_streams(MemorySource(words()), "test", RATE, 2, recipe, seed=3, background=[np.zeros(RATE * 4)])
    for stream in streams:
        placed = runs_of_sound(stream.samples)  # a silent background: the sound is the words' speech
        labelled = [(round(start * RATE), round(end * RATE)) for start, end, _ in stream.events]
        assert labelled == placed
        assert [start * RATE for start, _, _ in stream.events] == pytest.approx([a for a, _ in placed], abs=1e-6)
        assert [end * RATE for _, end, _ in stream.events] == pytest.approx([b for _, b in placed], abs=1e-6)


def test_each_word_is_used_passes_times_and_silence_never():
    source = MemorySource(words(), [white_noise()])
    for passes in (1, 2):
        streams = build_streams(source, "test", RATE, 3, StreamRecipe(minutes=0.2, passes=passes), seed=0)
        labels = Counter(label for stream in streams for _, _, label in stream.events)
        assert labels == Counter({label: passes * count for label, count in Counter(LABELS).items()})


def test_the_speech_is_at_the_drawn_snr_over_the_background():
    recipe = StreamRecipe(minutes=0.5, snr_db=(10.0, 10.0), background_dbfs=(-30.0, -30.0))
    stream = build_streams(MemorySource(words(), [white_noise()]), "test", RATE, 1, recipe, seed=0)[0]
    background = 10 ** (-30 / 20)
    for start, end, _ in stream.events:
        span = stream.samples[round(start * RATE):round(end * RATE)]
        # speech and noise are uncorrelated: their powers add
        expected = background * np.sqrt(1 + 10 ** (10 / 10))
        assert np.sqrt(np.mean(span.astype(np.float64) ** 2)) == pytest.approx(expected, rel=0.15)


def test_a_seed_gives_the_same_streams_and_another_seed_others():
    source = MemorySource(words(), [white_noise(), white_noise(3.0, seed=2)])
    recipe = StreamRecipe(minutes=0.3)
    first, again, other = (build_streams(source, "test", RATE, 2, recipe, seed=s) for s in (7, 7, 8))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.samples, b.samples) and a.events == b.events
    assert not np.array_equal(first[0].samples[:len(other[0].samples)], other[0].samples[:len(first[0].samples)])


def test_gaps_are_stretched_to_the_minutes_and_never_cut_words():
    source = MemorySource(words(), [white_noise()])
    stream = build_streams(source, "test", RATE, 1, StreamRecipe(minutes=0.75), seed=0)[0]
    assert len(stream.samples) == round(0.75 * 60 * RATE)
    assert stream.events[-1][1] < 0.75 * 60 - 1.0  # the last gap is stretched too
    short = build_streams(source, "test", RATE, 1, StreamRecipe(minutes=0.01, gap_s=(1.0, 1.0)), seed=0)[0]
    assert len(short.samples) == 6 * RATE + 7 * RATE  # six 1 s words and seven 1 s gaps


def test_a_source_without_background_is_one_line_error():
    with pytest.raises(UserError, match="no background recordings"):
        build_streams(MemorySource(words()), "test", RATE, 1, StreamRecipe(), seed=0)
    with pytest.raises(UserError, match="no word clips"):
        build_streams(MemorySource(words()), "val", RATE, 1, StreamRecipe(), seed=0, background=[white_noise()])


def test_written_streams_read_back_as_scoring_labels(tmp_path):
    streams = build_streams(MemorySource(words(), [white_noise()]), "test", RATE, 2, StreamRecipe(minutes=0.2), seed=0)
    labels = write_streams(streams, tmp_path / "out", RATE)
    assert labels.read_text().splitlines()[0] == "file,start_s,end_s,label"
    events = parse_labels(labels, ["yes", "no"], ignore=("_unknown_",))
    expected = [((tmp_path / "out" / f"{s.name}.wav").resolve(), start, end, label)
                for s in streams for start, end, label in s.events if label != "_unknown_"]
    assert [(e.file, e.label) for e in events] == [(file, label) for file, _, _, label in expected]
    for event, (_, start, end, _) in zip(events, expected, strict=True):
        assert round(event.start * RATE) == round(start * RATE) and round(event.end * RATE) == round(end * RATE)
    for stream in streams:
        samples, rate = sf.read(tmp_path / "out" / f"{stream.name}.wav", dtype="float32")
        assert rate == RATE and len(samples) == len(stream.samples)
        assert sf.info(str(tmp_path / "out" / f"{stream.name}.wav")).subtype == "PCM_16"


@pytest.fixture
def sc_root(tmp_path: Path) -> Path:
    return make_speech_commands(tmp_path / "sc", per_word=3)


def streams_config(tmp_path: Path, root: Path, *overrides: str):
    return compose_config(tmp_path, [f"data.root={root}", "count=2", "minutes=0.25", *overrides],
                          config_name="streams")


def test_the_task_writes_streams_of_the_split(tmp_path, sc_root, capsys):
    labels = task.run(streams_config(tmp_path, sc_root))
    assert labels == tmp_path / "run" / "streams" / "labels.csv"
    assert sorted(p.name for p in labels.parent.glob("*.wav")) == ["test_00.wav", "test_01.wav"]
    rows = labels.read_text().splitlines()[1:]
    keywords = sorted(row.split(",")[3] for row in rows if not row.endswith("_unknown_"))
    assert keywords == sorted(["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"])
    assert "10 keywords and 1 other words" in capsys.readouterr().out


def test_the_task_takes_a_background_folder_and_out(tmp_path, sc_root):
    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(noise / "hum.flac", white_noise(2.0), 8000)
    labels = task.run(streams_config(tmp_path, sc_root, f"background={noise}", f"out={tmp_path / 'mine'}"))
    assert labels == tmp_path / "mine" / "labels.csv"


@pytest.mark.parametrize(("override", "message"), [
    ("split=dev", r"split=dev is unknown: use train, val or test"),
    ("count=0", r"count=0 must be a whole number >= 1"),
    ("passes=0", r"passes=0 must be a whole number >= 1"),
    ("minutes=0", r"minutes=0 must be a positive number"),
    ("gap_s=[4.0,1.0]", r"gap_s=\[4.0, 1.0\] is not a range \[low, high\] with low <= high"),
    ("snr_db=[5.0]", r"snr_db=\[5.0\] is not a range"),
    ("background_dbfs=loud", r"background_dbfs='loud' has the wrong type: expected a list"),
    ("gap_s=[-1.0,1.0]", r"gap_s=\[-1.0, 1.0\] starts below 0"),
    ("background=/no/such/folder", r"background=/no/such/folder is not a directory"),
])
def test_bad_settings_are_one_line_errors(tmp_path, sc_root, override, message):
    with pytest.raises(UserError, match=message):
        task.run(streams_config(tmp_path, sc_root, override))


def test_an_empty_background_folder_is_a_one_line_error(tmp_path, sc_root):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(UserError, match=r"background=.*empty holds no .wav/.flac/.ogg file"):
        task.run(streams_config(tmp_path, sc_root, f"background={tmp_path / 'empty'}"))


def test_a_split_without_words_or_data_without_noise_is_a_one_line_error(tmp_path, sc_root):
    (sc_root / "testing_list.txt").write_text("")
    with pytest.raises(UserError, match=r"split=test of data=speech_commands has no word clips"):
        task.run(streams_config(tmp_path, sc_root))
    for noise in (sc_root / "_background_noise_").iterdir():
        noise.unlink()
    with pytest.raises(UserError, match=r"no _background_noise_ recordings.*background=<folder"):
        task.run(streams_config(tmp_path, sc_root, "split=val", "data.silence_percentage=0"))


def test_python_m_audioclf_streams_reports_a_bad_split_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "audioclf", "streams", "split=dev", f"data.root={tmp_path}",
         f"hydra.run.dir={tmp_path / 'run'}", f"paths.log_dir={tmp_path / 'logs'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == ["error: split=dev is unknown: use train, val or test"]
