"""Sliding-window detection over a long recording made of fixture clips and silence."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.streaming.detection import (
    DEFAULT_THRESHOLD,
    IGNORED,
    Detection,
    detect,
    smooth_probabilities,
    stream_file,
    stream_thresholds,
    window_starts,
)
from audioclf.streaming.scoring import (
    Event,
    check_labelled_files,
    format_score,
    match_file,
    parse_labels,
    score_files,
)
from audioclf.tasks import predict, train
from tests.conftest import compose_config, write_wav

RATE = 16000
TONES = {"low": 400.0, "mid": 1200.0, "high": 3000.0}


def tone_clip(rng: np.random.Generator, freq: float, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.minimum(1, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades
    pitch = freq * rng.uniform(0.97, 1.03)
    return (rng.uniform(0.2, 0.4) * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def make_tone_folder(root, per_class: int = 32):
    """1 s clips over faint noise, each with a tone at a random onset, and a `_silence_` class of
    faint noise down to digital zero, so the gaps of a long recording have a class of their own
    (without one, which tone silence looks like is up to the training run's numerics)."""
    rng = np.random.default_rng(0)
    for i in range(per_class):
        level = 0.0 if i % 4 == 0 else rng.uniform(0.0005, 0.004)
        write_wav(root / "_silence_" / f"{i:03d}.wav", rng.normal(0, level, RATE).astype(np.float32), RATE)
    for name, freq in TONES.items():
        for i in range(per_class):
            clip = rng.normal(0, 0.002, RATE).astype(np.float32)
            tone = tone_clip(rng, freq)
            onset = rng.integers(0, RATE - len(tone))
            clip[onset : onset + len(tone)] += tone
            write_wav(root / name / f"{i:03d}.wav", clip, RATE)
    return root


def test_window_starts_cover_the_tail_and_smoothing_keeps_mass():
    assert window_starts(25, 10, 5).tolist() == [0, 5, 10, 15]
    assert window_starts(27, 10, 5).tolist() == [0, 5, 10, 15, 17]
    assert window_starts(4, 10, 5).tolist() == [0]
    probs = np.eye(3)[[0, 0, 1, 1, 1, 2]].astype(np.float32)
    smoothed = smooth_probabilities(probs, 3)
    assert np.allclose(smoothed.sum(axis=1), 1) and np.allclose(smoothed[3], [0, 1, 0])


def test_detect_reports_one_event_per_run_at_its_centre():
    names = ["_silence_", "yes", "no"]
    rows = [0, 0, 1, 1, 1, 0, 0, 2, 2, 0]
    probs = np.eye(3)[rows].astype(np.float32) * 0.9 + 0.1 / 3
    starts = np.arange(len(rows)) * 1600  # 0.1 s hop
    found = detect(starts, probs, names, RATE, RATE, threshold=0.6, smooth=1)
    assert [(d.label, d.time) for d in found] == [("yes", 0.8), ("no", 1.25)]
    assert detect(starts, probs, names, RATE, RATE, threshold=0.99, smooth=1) == []


@pytest.fixture(scope="module")
def tone_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tones")
    root = make_tone_folder(tmp / "tones")
    cfg = compose_config(
        tmp,
        [
            "data=folder",
            f"data.root={root}",
            "data.batch_size=16",
            "trainer.max_epochs=8",
            "optim.lr=0.005",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "~callbacks.lr_monitor",
            "test=false",
            "trainer.enable_model_summary=false",
        ],
    )
    train.run(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt"


def long_recording(path, words=("low", "high", "mid"), gaps=(0.8, 1.3, 1.1, 0.9)):
    """Silence and tones: the WAV and each word's (label, start, end) in seconds."""
    rng = np.random.default_rng(5)
    pieces, events, now = [], [], 0.0
    for gap, word in zip(gaps, [*words, None], strict=True):
        pieces.append(np.zeros(int(gap * RATE), np.float32))
        now += gap
        if word is not None:
            clip = tone_clip(rng, TONES[word])
            pieces.append(clip)
            events.append((word, now, now + len(clip) / RATE))
            now += len(clip) / RATE
    return write_wav(path, np.concatenate(pieces), RATE), events


def test_stream_finds_each_word_of_a_long_recording_at_its_time(tone_model, tmp_path, capsys):
    words = ["low", "high", "mid"]
    long_wav, events = long_recording(tmp_path / "long.wav", words)
    expected = [(word, (start + end) / 2) for word, start, end in events]
    cfg = compose_config(
        tmp_path,
        [
            f"ckpt_path={tone_model}",
            f"inputs={long_wav}",
            "stream=true",
            "stream_hop=0.05",
            "threshold=0.6",
            "smooth=3",
        ],
        config_name="predict",
    )
    ((path, detections),) = predict.run(cfg)
    assert [d.label for d in detections] == words, detections
    for found, (_, centre) in zip(detections, expected, strict=True):
        assert abs(found.time - centre) <= 0.15, (found, centre)
        assert found.probability >= 0.6
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3:] == [
        f"{path}\t{d.time:.2f}s\t{d.label}\t{d.probability:.3f}" for d in detections
    ]


def test_predict_passes_stream_mode_and_both_modes_find_the_same_words(tone_model, tmp_path):
    long_wav, _ = long_recording(tmp_path / "long.wav", ["low", "high", "mid"])
    base = [f"ckpt_path={tone_model}", f"inputs={long_wav}", "stream=true", "stream_hop=0.05", "threshold=0.6"]
    found = {mode: predict.run(compose_config(tmp_path, [*base, f"stream_mode={mode}"], config_name="predict"))[0][1]
             for mode in ("stateful", "windowed")}
    assert [(d.label, round(d.time, 3)) for d in found["stateful"]] == [
        (d.label, round(d.time, 3)) for d in found["windowed"]]
    with pytest.raises(UserError, match="stream_mode=bogus is unknown"):
        predict.run(compose_config(tmp_path, [*base, "stream_mode=bogus"], config_name="predict"))


def test_predict_scores_at_its_precision_and_bf16_finds_the_same_words(tone_model, tmp_path, monkeypatch):
    long_wav, _ = long_recording(tmp_path / "long.wav", ["low", "high", "mid"])
    base = [f"ckpt_path={tone_model}", f"inputs={long_wav}", "stream=true", "stream_hop=0.05", "threshold=0.6"]
    computed_in = set()

    def load_watched(*args, **kwargs):
        model = load_classifier(*args, **kwargs)
        model.backbone.register_forward_hook(lambda module, inputs, output: computed_in.add(output.dtype))
        return model

    monkeypatch.setattr(predict, "load_classifier", load_watched)
    found = {}
    for precision, dtype in (("32-true", torch.float32), ("bf16-mixed", torch.bfloat16)):
        computed_in.clear()
        found[precision] = predict.run(compose_config(tmp_path, [*base, f"precision={precision}"],
                                                      config_name="predict"))[0][1]
        assert computed_in == {dtype}
    assert [d.label for d in found["bf16-mixed"]] == [d.label for d in found["32-true"]] == ["low", "high", "mid"]
    with pytest.raises(UserError, match="precision=fp8 is unknown: use auto, 32-true, bf16-mixed"):
        predict.run(compose_config(tmp_path, [*base, "precision=fp8"], config_name="predict"))


def test_detect_applies_each_keywords_own_threshold():
    names = ["_unknown_", "yes", "no"]
    probs = np.array([[0.5, 0.35, 0.15]] * 3 + [[0.1, 0.2, 0.7]] * 2 + [[0.9, 0.05, 0.05]], dtype=np.float32)
    starts = np.arange(len(probs)) * 1600
    # "yes" is never the top class but clears its own 0.3; "no" lacks a threshold: DEFAULT_THRESHOLD 0.6
    found = detect(starts, probs, names, RATE, RATE, threshold={"yes": 0.3}, smooth=1)
    assert [(d.label, d.time) for d in found] == [("yes", 0.6), ("no", 0.85)]
    assert [d.label for d in detect(starts, probs, names, RATE, RATE, threshold={"yes": 0.4}, smooth=1)] == ["no"]
    # an ignored class never fires, whatever its threshold
    assert detect(starts, probs, names, RATE, RATE, threshold={"_unknown_": 0.1, "no": 0.9}, smooth=1) == []


def test_detection_is_reported_when_its_first_window_and_the_smoothing_look_ahead_end():
    names = ["_silence_", "yes"]
    rows = [0, 0, 1, 1, 1, 1, 0, 0]
    probs = np.eye(2)[rows].astype(np.float32)
    starts = np.arange(len(rows)) * 1600  # 0.1 s hop, 1 s windows
    (alone,) = detect(starts, probs, names, RATE, RATE, threshold=0.6, smooth=1)
    assert alone.reported_at == 1.2  # window 2 ends at 0.2 + 1 s
    # smooth=3 averages windows i-1..i+1: window 3 is the first at 1.0 >= 0.6 (window 2 has 2/3 >= 0.6 too),
    # and its average needs window 3 as well: (0.3 + 1) s
    (smoothed,) = detect(starts, probs, names, RATE, RATE, threshold=0.6, smooth=3)
    assert smoothed.reported_at == 1.3 and smoothed.time == 0.85


def test_threshold_null_takes_the_checkpoints_per_keyword_thresholds():
    without = SimpleNamespace()
    saved = SimpleNamespace(detection_thresholds={"yes": 0.42})
    assert stream_thresholds(without, None) == DEFAULT_THRESHOLD == 0.6
    assert stream_thresholds(SimpleNamespace(detection_thresholds=None), None) == 0.6
    assert stream_thresholds(saved, None) == {"yes": 0.42}
    assert stream_thresholds(saved, 0.8) == 0.8  # a number wins for every keyword
    for bad in (1.5, -0.1, "high"):
        with pytest.raises(UserError, match=f"threshold={bad} must be a probability"):
            stream_thresholds(saved, bad)


CLASSES = ["_silence_", "_unknown_", "yes", "no"]


def write_labels(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_labels_csv_reads_paths_relative_to_its_folder_and_drops_non_keywords(tmp_path):
    absolute = tmp_path / "elsewhere" / "b.wav"
    labels = write_labels(
        tmp_path / "labels" / "events.csv",
        f" label , file,start_s,end_s,speaker\nyes,a.wav, 1.5 ,2.25,x\nno,sub/a.wav,0,0,y\n"
        f"_unknown_,a.wav,3,4,z\nyes,{absolute},10,11.5,w\n",
    )
    events = parse_labels(labels, CLASSES, IGNORED)
    folder = (tmp_path / "labels").resolve()
    assert [(e.file, e.start, e.end, e.label, e.line) for e in events] == [
        (folder / "a.wav", 1.5, 2.25, "yes", 2),
        (folder / "sub" / "a.wav", 0.0, 0.0, "no", 3),
        (absolute.resolve(), 10.0, 11.5, "yes", 5),
    ]
    assert parse_labels(write_labels(tmp_path / "header.csv", "file,start_s,end_s,label\n"), CLASSES) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty: its first line must be the header file,start_s,end_s,label"),
        ("file,start_s,label\na.wav,1,yes\n", "has no column end_s (header: file,start_s,label)"),
        ("file,start_s,end_s,label\na.wav,1,2,yes\na.wav,1.5s,2,no\n", "line 3: start_s='1.5s' is not a time"),
        ("file,start_s,end_s,label\na.wav,1,nan,yes\n", "line 2: end_s='nan' is not a time"),
        ("file,start_s,end_s,label\na.wav,-1,2,yes\n", "line 2: start_s='-1' is not a time in seconds"),
        ("file,start_s,end_s,label\na.wav,1,2\n", "line 2: label '' is not a class"),
        ("file,start_s,end_s,label\na.wav,2.5,2,yes\n", "line 2: end_s=2 is before start_s=2.5: swap or fix"),
        ("file,start_s,end_s,label\na.wav,1,2,maybe\n",
         "line 2: label 'maybe' is not a class of the checkpoint: use one of _silence_, _unknown_, yes, no"),
        ("file,start_s,end_s,label\n,1,2,yes\n", "line 2 has no file"),
    ],
)
def test_bad_labels_csv_is_a_one_line_error_naming_file_and_line(tmp_path, text, message):
    labels = write_labels(tmp_path / "events.csv", text)
    with pytest.raises(UserError) as error:
        parse_labels(labels, CLASSES, IGNORED)
    assert str(error.value).startswith(f"labels={labels}") and "\n" not in str(error.value)
    assert message in str(error.value), error.value


def test_labels_naming_none_of_the_inputs_is_an_error_and_some_a_warning(tmp_path, capsys):
    labels = write_labels(tmp_path / "events.csv", "file,start_s,end_s,label\na.wav,1,2,yes\nb.wav,1,2,no\n")
    events = parse_labels(labels, CLASSES)
    with pytest.raises(UserError, match=r"names no file among the inputs \(line 2 reads as .*a\.wav\)"):
        check_labelled_files(labels, events, [tmp_path / "c.wav"])
    kept = check_labelled_files(labels, events, [tmp_path / "a.wav", tmp_path / "c.wav"])
    assert [e.label for e in kept] == ["yes"]
    assert "1 labelled file is not among the inputs" in capsys.readouterr().err


def event(start, end, label="yes", file=Path("/a.wav")):
    return Event(file, start, end, label)


def found(time, label="yes", reported_at=None):
    return Detection(time, label, 0.9, reported_at)


def test_scoring_counts_hits_misses_false_alarms_and_delay_by_hand():
    a, b = Path("/a.wav"), Path("/b.wav")
    events = [event(1.0, 1.5), event(3.0, 3.4), event(5.0, 5.6, "no"), event(8.0, 8.5, "no"), event(2.0, 2.5, file=b)]
    results = [
        # yes: hit (delay 1.9 - 1.5 = 0.4), a second detection of the same word (false alarm), a hit on the
        # second event (delay 3.6 - 3.4 = 0.2); no: the wrong word inside a "yes" event (false alarm), a hit
        # reported before the word ends (5.5 - 5.6 = -0.1); the "no" at 8 s is missed
        (a, [found(1.3, reported_at=1.9), found(1.4, reported_at=2.0), found(3.2, reported_at=3.6),
             found(1.2, "no", reported_at=1.8), found(5.3, "no", reported_at=5.5)]),
        (b, []),  # its event is missed
        (Path("/c.wav"), [found(0.5, "no")]),  # no labels: a keyword-free recording
    ]
    score = score_files(results, events, {a: 3600.0, b: 1800.0, Path("/c.wav"): 1800.0}, collar=0.5)
    assert score.hours == 2.0 and score.files == 3
    yes, no, total = score.keywords["yes"], score.keywords["no"], score.total
    assert list(score.keywords) == ["no", "yes"]
    assert (yes.events, yes.hits, yes.misses, yes.false_alarms) == (3, 2, 1, 1)
    assert (no.events, no.hits, no.misses, no.false_alarms) == (2, 1, 1, 2)
    assert yes.precision == pytest.approx(2 / 3) and yes.recall == pytest.approx(2 / 3)
    assert no.precision == pytest.approx(1 / 3) and no.recall == pytest.approx(1 / 2)
    assert yes.mean_delay == pytest.approx(0.3) and no.mean_delay == pytest.approx(-0.1)
    assert (total.events, total.hits, total.misses, total.false_alarms) == (5, 3, 2, 3)
    assert total.precision == pytest.approx(0.5) and total.recall == pytest.approx(0.6)
    assert total.mean_delay == pytest.approx((0.4 + 0.2 - 0.1) / 3)
    assert score.false_alarms_per_hour(total) == 1.5 and score.false_alarms_per_hour(no) == 1.0
    table = format_score(score, 0.5).splitlines()
    assert table[0].startswith("score: 3 files, 120.00 min of audio, collar 0.5 s")
    assert table[-1].split() == ["all", "5", "3", "2", "3", "0.500", "0.600", "0.167", "1.5"]


def test_collar_edges_are_hits_and_a_hair_beyond_is_a_false_alarm():
    words = [event(1.0, 1.5)]
    for time, hit in [(0.5, True), (2.0, True), (0.499, False), (2.001, False), (1.25, True)]:
        hits, false_alarms, misses = match_file([found(time)], words, collar=0.5)
        assert (len(hits), len(false_alarms), len(misses)) == ((1, 0, 0) if hit else (0, 1, 1)), time
    hits, false_alarms, _ = match_file([found(1.6)], words, collar=0.0)
    assert not hits and len(false_alarms) == 1
    assert len(match_file([found(1.5)], words, collar=0.0)[0]) == 1


def test_overlapping_widened_events_are_matched_greedily_in_time_order():
    words = [event(1.0, 1.4), event(1.8, 2.2)]  # within a 0.5 s collar of each other
    hits, false_alarms, misses = match_file([found(2.0), found(1.6)], words, collar=0.5)
    assert [(d.time, e.start) for d, e in hits] == [(1.6, 1.0), (2.0, 1.8)] and not false_alarms and not misses
    hits, false_alarms, misses = match_file([found(1.7)], words, collar=0.5)
    assert [e.start for _, e in hits] == [1.0] and [e.start for e in misses] == [1.8]


def test_stream_with_labels_prints_and_writes_the_score(tone_model, tmp_path, capsys):
    long_wav, events = long_recording(tmp_path / "audio" / "long.wav")
    (low, high, mid) = events
    rows = [low, high, ("low", *mid[1:])]  # the "mid" tone mislabelled: a false alarm and a miss
    labels = write_labels(tmp_path / "audio" / "events.csv",
                          "file,start_s,end_s,label\n" + "".join(f"long.wav,{s},{e},{w}\n" for w, s, e in rows))
    score_csv = tmp_path / "out" / "score.csv"
    overrides = [f"ckpt_path={tone_model}", f"inputs={long_wav}", "stream=true", "stream_hop=0.05",
                 "threshold=0.6", f"labels={labels}", f"score_output={score_csv}"]
    predict.run(compose_config(tmp_path, overrides, config_name="predict"))
    out = capsys.readouterr().out
    assert "score: 1 file," in out and f"wrote {score_csv}" in out
    with score_csv.open() as stream:
        table = {row["keyword"]: row for row in csv.DictReader(stream)}
    counts = {name: tuple(int(row[key]) for key in ("events", "hits", "misses", "false_alarms"))
              for name, row in table.items()}
    assert counts == {"high": (1, 1, 0, 0), "low": (2, 1, 1, 0), "mid": (0, 0, 0, 1), "all": (3, 2, 1, 1)}
    hours = float(table["all"]["hours"])
    assert hours == pytest.approx(sf.info(str(long_wav)).duration / 3600)
    assert float(table["all"]["false_alarms_per_hour"]) == pytest.approx(1 / hours, rel=1e-3)
    assert table["all"]["precision"] == table["all"]["recall"] == "0.667"
    assert -0.5 < float(table["all"]["mean_delay_s"]) < 1.2  # a 1 s window ends at most ~1 s after its word

    bad = write_labels(tmp_path / "audio" / "bad.csv", "file,start_s,end_s,label\nlong.wav,1,2,yes\n")
    score_csv.unlink()
    with pytest.raises(UserError, match=f"labels={bad} line 2: label 'yes' is not a class"):
        predict.run(compose_config(tmp_path, [*overrides[:-2], f"labels={bad}", f"score_output={score_csv}"],
                                   config_name="predict"))
    assert not score_csv.exists() and capsys.readouterr().out == ""  # stopped before any detection


def test_stream_uses_the_checkpoints_thresholds_unless_threshold_is_given(tone_model, tmp_path, capsys):
    checkpoint = torch.load(tone_model, map_location="cpu", weights_only=False)
    checkpoint["detection_thresholds"] = {"mid": 1.5}  # no probability reaches it: "mid" is never detected
    saved = tmp_path / "thresholds.ckpt"
    torch.save(checkpoint, saved)
    long_wav, _ = long_recording(tmp_path / "long.wav")
    overrides = [f"ckpt_path={saved}", f"inputs={long_wav}", "stream=true", "stream_hop=0.05"]
    ((_, detections),) = predict.run(compose_config(tmp_path, overrides, config_name="predict"))
    assert [d.label for d in detections] == ["low", "high"]
    assert "thresholds from the checkpoint (threshold=<p> sets one for all): mid 1.500" in capsys.readouterr().err
    ((_, detections),) = predict.run(compose_config(tmp_path, [*overrides, "threshold=0.6"], config_name="predict"))
    assert [d.label for d in detections] == ["low", "high", "mid"]


def test_labels_without_stream_and_a_bad_collar_are_one_line_errors(tmp_path):
    base = ["ckpt_path=x.ckpt", "inputs=x.wav"]
    with pytest.raises(UserError, match=r"labels=e.csv scores stream=true detections: add stream=true"):
        predict.run(compose_config(tmp_path, [*base, "labels=e.csv"], config_name="predict"))
    with pytest.raises(UserError, match=r"score_output=s.csv writes the score against labels: add labels="):
        predict.run(compose_config(tmp_path, [*base, "stream=true", "score_output=s.csv"], config_name="predict"))
    with pytest.raises(UserError, match=r"collar=-1 must be a number of seconds >= 0"):
        predict.run(compose_config(tmp_path, [*base, "stream=true", "labels=e.csv", "collar=-1"],
                                   config_name="predict"))


def single_window_runs(rows: dict[int, int], length: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(starts, probabilities) at a 0.1 s hop: window i is class rows[i] with probability 1, else silence."""
    probs = np.eye(len(CLASSES), dtype=np.float32)[[rows.get(i, 0) for i in range(length)]]
    return np.arange(length) * 1600, probs


def test_min_windows_keeps_a_run_of_exactly_that_many_and_drops_a_shorter_one():
    yes, no = CLASSES.index("yes"), CLASSES.index("no")
    starts, probs = single_window_runs({2: yes, 3: yes, 10: no, 11: no, 12: no})
    found = {n: [d.label for d in detect(starts, probs, CLASSES, RATE, RATE, 0.6, 1, min_windows=n)]
             for n in (1, 2, 3, 4)}
    assert found == {1: ["yes", "no"], 2: ["yes", "no"], 3: ["no"], 4: []}


def test_refractory_keeps_a_detection_exactly_at_its_end_and_drops_one_just_inside():
    yes, no = CLASSES.index("yes"), CLASSES.index("no")
    starts, probs = single_window_runs({0: yes, 10: yes})  # detections at 0.5 s and 1.5 s
    times = {r: [d.time for d in detect(starts, probs, CLASSES, RATE, RATE, 0.6, 1, refractory_s=r)]
             for r in (0.0, 1.0, 1.001)}
    assert times == {0.0: [0.5, 1.5], 1.0: [0.5, 1.5], 1.001: [0.5]}
    # the period runs from the last detection kept, and only for its keyword
    starts, probs = single_window_runs({0: yes, 3: no, 5: yes, 10: yes, 12: yes})
    found = detect(starts, probs, CLASSES, RATE, RATE, 0.6, 1, refractory_s=1.0)
    assert [(d.label, d.time) for d in found] == [("yes", 0.5), ("no", 0.8), ("yes", 1.5)]


def test_stream_file_passes_the_post_processing_on(tone_model, tmp_path):
    long_wav, _ = long_recording(tmp_path / "long.wav")
    model = load_classifier(tone_model)
    assert [d.label for d in stream_file(model, long_wav, 0.05, 0.6)] == ["low", "high", "mid"]
    assert stream_file(model, long_wav, 0.05, 0.6, min_windows=1000) == []
