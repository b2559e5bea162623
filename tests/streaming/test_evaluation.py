"""FRR at a budget of false alarms per hour, on hand-made score traces and on a tiny trained checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audioclf.data.sources.synthetic import SyntheticSource
from audioclf.errors import UserError
from audioclf.streaming.detection import TIME_TOLERANCE_S, detect, refractory_mask
from audioclf.streaming.evaluation import (
    PostProcessing,
    ScoredStream,
    calibrate,
    curve,
    default_thresholds,
    operating_point,
    read_stream_labels,
    write_stream_report,
)
from audioclf.streaming.scoring import Event, score_files
from audioclf.tasks import evaluate
from tests.conftest import compose_config, write_wav
from tests.tasks import test_evaluate_predict

trained = test_evaluate_predict.trained  # the tiny synthetic checkpoint those tests train

RATE, HOP, WINDOW = 16000, 1600, 16000  # 0.1 s hop, 1 s windows
NAMES = ["_silence_", "_unknown_", "yes", "no"]
PLAIN = PostProcessing(smooth=1)


def trace(bumps: list[tuple[int, str, float, int]], seconds: float, path: str = "/stream.wav") -> ScoredStream:
    """Windows over `seconds` of audio, quiet (all zeros) but for the bumps: (first window, keyword,
    probability, windows); the rest of a bump's window goes to _unknown_."""
    count = round((seconds * RATE - WINDOW) / HOP) + 1
    probabilities = np.zeros((count, len(NAMES)), dtype=np.float32)
    for first, keyword, height, length in bumps:
        probabilities[first : first + length, NAMES.index("_unknown_")] = 1 - height
        probabilities[first : first + length, NAMES.index(keyword)] = height
    return ScoredStream(Path(path), np.arange(count) * HOP, probabilities, RATE, WINDOW, seconds, [])


def word(stream: ScoredStream, first: int, keyword: str, length: int = 3) -> Event:
    """The event a bump of `length` windows from `first` stands for: 0.2 s either side of the run's centre."""
    centre = first * HOP / RATE + (length - 1) * HOP / RATE / 2 + WINDOW / RATE / 2
    return Event(stream.path, round(centre - 0.2, 3), round(centre + 0.2, 3), keyword)


WORDS = [(100, "yes", 0.95), (500, "yes", 0.9), (900, "yes", 0.8), (1300, "yes", 0.71), (1700, "no", 0.85),
         (2100, "no", 0.6)]
FALSE_BUMPS = [(3000, "yes", 0.75), (3400, "no", 0.65), (3800, "no", 0.5)]


def hour_of_words() -> ScoredStream:
    """One hour: six words of known heights and three false bumps, far from any word."""
    stream = trace([(first, keyword, height, 3) for first, keyword, height in WORDS + FALSE_BUMPS], 3600.0)
    stream.events = [word(stream, first, keyword) for first, keyword, _ in WORDS]
    return stream


def test_the_curve_counts_misses_and_false_alarms_per_hour_exactly():
    swept = curve([hour_of_words()], NAMES, np.array([0.96, 0.55, 0.7, 0.76]), PLAIN)
    assert swept.thresholds.tolist() == [0.55, 0.7, 0.76, 0.96] and swept.hours == 1.0 and swept.events == 6
    assert swept.frr.tolist() == pytest.approx([0, 1 / 6, 2 / 6, 1])
    assert swept.false_alarms.tolist() == [2, 1, 0, 0] and swept.fa_per_hour.tolist() == [2, 1, 0, 0]
    assert swept.keyword_frr["yes"].tolist() == pytest.approx([0, 0, 1 / 4, 1])
    assert swept.keyword_frr["no"].tolist() == pytest.approx([0, 1 / 2, 1 / 2, 1])
    assert swept.keyword_fa_per_hour["yes"].tolist() == [1, 1, 0, 0]  # a false alarm counts for its keyword
    assert swept.keyword_fa_per_hour["no"].tolist() == [1, 0, 0, 0]
    assert swept.keyword_events == {"yes": 4, "no": 2}
    # each hit is reported when its first window ends, 0.2 s after its word; nothing hit: no delay
    assert swept.mean_delay[:3] == pytest.approx([0.2] * 3) and np.isnan(swept.mean_delay[3])


def test_the_operating_point_is_the_lowest_frr_within_the_budget_at_the_highest_threshold():
    swept = curve([hour_of_words()], NAMES, np.array([0.55, 0.66, 0.68, 0.7, 0.76, 0.96]), PLAIN)
    one = operating_point(swept, 1.0)
    assert (one.threshold, one.frr, one.fa_per_hour) == (0.7, pytest.approx(1 / 6), 1.0)  # 0.66-0.7 tie
    assert one.met and one.resolvable and one.mean_delay == pytest.approx(0.2)
    assert operating_point(swept, 2.0).threshold == 0.55 and operating_point(swept, 2.0).frr == 0
    half = operating_point(swept, 0.5)
    assert (half.threshold, half.frr, half.fa_per_hour, half.resolvable) == (0.76, pytest.approx(2 / 6), 0, False)


def test_a_budget_no_threshold_meets_and_one_too_fine_for_the_audio_are_flagged():
    quarter = trace([(100, "yes", 0.9, 3)], 900.0)  # 15 minutes, one false alarm at any threshold up to 0.9
    swept = curve([quarter], NAMES, np.array([0.5, 0.8]), PLAIN)
    assert swept.hours == 0.25 and swept.fa_per_hour.tolist() == [4.0, 4.0] and np.isnan(swept.frr).all()
    point = operating_point(swept, 1.0)
    assert not point.met and point.threshold == 0.8 and not point.resolvable  # 1 alarm in 15 min is 4 FA/h
    four = operating_point(swept, 4.0)
    assert four.met and four.resolvable and four.threshold == 0.8


def doubled_words() -> ScoredStream:
    """One hour, four words each heard as two runs 0.4 s apart (a dip between): a word and a false alarm."""
    bumps = []
    for first in (100, 600, 1100, 1600):
        bumps += [(first, "yes", 0.9, 3), (first + 3, "yes", 0.0, 1), (first + 4, "yes", 0.9, 3)]
    stream = trace(bumps, 3600.0)
    stream.events = [word(stream, first, "yes", 7) for first in (100, 600, 1100, 1600)]
    return stream


def test_calibrate_picks_the_refractory_period_that_removes_double_detections():
    streams = [doubled_words()]
    without = operating_point(curve(streams, NAMES, None, PLAIN), 1.0)
    assert without.frr == 1.0  # every threshold that hears a word also hears its echo: 4 FA/h
    grid = [PLAIN, PostProcessing(smooth=1, refractory_s=1.0)]
    post, point = calibrate(streams, NAMES, 1.0, grid)
    assert post == grid[1] and point.frr == 0 and point.fa_per_hour == 0 and point.met
    post, point = calibrate(streams, NAMES, 1.0)  # the default grid: refractory is the first setting that does
    assert post == PostProcessing(smooth=1, refractory_s=1.0, min_windows=1) and point.frr == 0


def test_default_thresholds_are_dense_near_one():
    thresholds = default_thresholds()
    assert len(thresholds) == 100 and np.all(np.diff(thresholds) > 0)
    assert thresholds[0] == pytest.approx(0.01) and thresholds[-1] == pytest.approx(1 - 1e-5)
    assert np.sum(thresholds > 0.99) >= 30


def random_streams(rng: np.random.Generator, count: int = 3, windows: int = 300, words: int = 20):
    """Noisy probabilities with keyword bumps of random heights and events (some within a collar of each other)."""
    streams = []
    for index in range(count):
        stream = trace([], (windows - 1) * HOP / RATE + 1, f"/random{index}.wav")
        stream.probabilities[:] = rng.dirichlet(np.full(len(NAMES), 0.3), size=windows)
        stream.probabilities[rng.random(windows) < 0.1] = 0
        for _ in range(words):
            first, keyword, length = rng.integers(0, windows - 12), NAMES[rng.integers(2, 4)], rng.integers(1, 10)
            stream.probabilities[first : first + length] = 0.02
            stream.probabilities[first : first + length, NAMES.index(keyword)] = rng.uniform(0.3, 0.94)
            centre = first * HOP / RATE + WINDOW / RATE / 2
            stream.events.append(Event(stream.path, round(centre - rng.uniform(0, 0.6), 2),
                                       round(centre + length * 0.1 + rng.uniform(0, 1), 2), keyword))
        streams.append(stream)
    return streams


@pytest.mark.parametrize("post", [PLAIN, PostProcessing(3, 0.5, 2), PostProcessing(5, 1.0, 1)])
@pytest.mark.parametrize("collar", [0.0, 0.5])
def test_the_curve_is_detect_scored_by_score_files_at_every_threshold(post, collar):
    streams = random_streams(np.random.default_rng(3))
    thresholds = np.linspace(0.05, 0.95, 7)
    swept = curve(streams, NAMES, thresholds, post, collar)
    events = [event for stream in streams for event in stream.events]
    for t, threshold in enumerate(thresholds):
        results = [(s.path, detect(s.starts, s.probabilities, NAMES, RATE, WINDOW, float(threshold), post.smooth,
                                   refractory_s=post.refractory_s, min_windows=post.min_windows)) for s in streams]
        score = score_files(results, events, {s.path: s.seconds for s in streams}, collar)
        assert score.total.misses == round(swept.frr[t] * swept.events)
        assert score.total.false_alarms == swept.false_alarms[t]
        assert score.false_alarms_per_hour(score.total) == pytest.approx(swept.fa_per_hour[t])
        expected_delay = np.nan if score.total.mean_delay is None else score.total.mean_delay
        assert swept.mean_delay[t] == pytest.approx(expected_delay, nan_ok=True)
        for keyword, counts in score.keywords.items():
            assert swept.keyword_fa_per_hour[keyword][t] == pytest.approx(counts.false_alarms / score.hours)


def test_the_refractory_mask_is_the_one_by_one_rule():
    def one_by_one(groups, times, refractory_s):
        keep, last = np.ones(len(times), dtype=bool), {}
        for i in np.lexsort((times, groups)):
            if groups[i] in last and times[i] < last[groups[i]] + refractory_s - TIME_TOLERANCE_S:
                keep[i] = False
            else:
                last[groups[i]] = times[i]
        return keep

    rng = np.random.default_rng(0)
    for _ in range(200):
        count = rng.integers(0, 40)
        groups, times = rng.integers(0, 3, count), np.round(rng.uniform(0, 8, count), 1)
        refractory_s = rng.choice([0.0, 0.3, 1.0, 2.5])
        assert np.array_equal(refractory_mask(groups, times, refractory_s), one_by_one(groups, times, refractory_s))


def test_the_report_gives_frr_at_each_budget_and_flags_coarse_audio(tmp_path):
    quarter = trace([(first, keyword, height, 3) for first, keyword, height in WORDS[:4]], 900.0)
    quarter.events = [word(quarter, first, keyword) for first, keyword, _ in WORDS[:3]]  # the fourth: a false alarm
    swept = curve([quarter], NAMES, None, PLAIN)
    points = {budget: operating_point(swept, budget) for budget in (1.0, 2.0, 8.0)}
    eight = points[8.0]  # every threshold up to 0.8 hears the three words; above 0.71 the fourth bump is gone
    assert eight.frr == 0 and eight.fa_per_hour == 0 and 0.71 < eight.threshold <= 0.8 and eight.resolvable
    assert points[1.0].frr == 0 and points[1.0].fa_per_hour == 0 and not points[1.0].resolvable
    text = write_stream_report(swept, points, tmp_path, "cal")
    assert text == (tmp_path / "cal_stream.md").read_text()
    assert "0.250 h of audio (15.0 min), 3 keyword events" in text
    assert "An FA/h from 15.0 min of audio is coarse" in text
    assert "coarse: one false alarm in 15.0 min of audio is already 4.0 FA/h" in text
    with (tmp_path / "cal_stream.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["budget_fa_per_hour"], row["keyword"]) for row in rows[:3]] == [("1.0", "all"), ("1.0", "yes"),
                                                                                   ("1.0", "no")]
    assert rows[0]["resolvable"] == "False" and float(rows[0]["threshold"]) == points[1.0].threshold
    with (tmp_path / "cal_stream_curve.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == len(swept.thresholds)
    assert (tmp_path / "cal_stream_det.png").stat().st_size > 0


# ---- eval stream_labels=... on a trained checkpoint -------------------------------------------------


def labelled_recordings(folder: Path) -> Path:
    """Two recordings of synthetic test clips between silences, and one of noise without a keyword,
    with their labels CSV (the noise listed by a _silence_ row)."""
    source = SyntheticSource()
    clips = source.clips("test")
    rows = ["file,start_s,end_s,label"]
    for index in range(2):
        pieces, now = [], 0.0
        for clip in clips[index * 4 : index * 4 + 4]:
            samples, rate = source.read(clip)
            pieces += [np.zeros(rate, np.float32), samples]
            rows.append(f"words_{index}.wav,{now + 1:.3f},{now + 1 + len(samples) / rate:.3f},"
                        f"{source.class_names[clip.label]}")
            now += 1 + len(samples) / rate
        write_wav(folder / f"words_{index}.wav", np.concatenate(pieces), rate)
    test_evaluate_predict.noise_files(folder, count=1, seconds=10.0)
    rows.append("noise_0.wav,0,0,_silence_")
    (folder / "streams.csv").write_text("\n".join(rows) + "\n")
    return folder / "streams.csv"


def test_eval_with_stream_labels_writes_the_stream_report_and_metrics(trained, tmp_path, capsys):
    tmp, ckpt = trained
    labels = labelled_recordings(tmp_path / "streams")
    streams = read_stream_labels(labels, SyntheticSource().class_names)
    assert [path.name for path, _ in streams] == ["words_0.wav", "words_1.wav", "noise_0.wav"]
    assert [len(events) for _, events in streams] == [4, 4, 0]
    cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"stream_labels={labels}", "false_alarms=false",
                                    "stream_hop=0.25", "stream_mode=windowed"], config_name="eval")
    cfg.paths.cache_dir = str(tmp / "cache")
    metrics = evaluate.run(cfg)
    run = tmp_path / "run"
    seconds = 2 * 4 * 2.0 + 10.0  # two recordings of four 1 s silences and clips, 10 s of noise
    assert metrics["test/stream_hours"] == pytest.approx(seconds / 3600)
    for budget in ("1fah", "2fah", "8fah"):
        assert 0 <= metrics[f"test/stream_frr_at_{budget}"] <= 1
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test/stream_frr_at_1fah"] == metrics["test/stream_frr_at_1fah"]
    text = (run / "test_stream.md").read_text()
    assert "3 streams" in text and "8 keyword events" in text and "is coarse" in text
    for name in ("test_stream.csv", "test_stream_curve.csv", "test_stream_det.png", "test_report.md"):
        assert (run / name).stat().st_size > 0, name
    out = capsys.readouterr().out
    assert "Keyword spotting on continuous audio" in out and "test_stream.md" in out


def test_a_bad_stream_labels_csv_fails_before_testing(trained, tmp_path):
    _, ckpt = trained
    (tmp_path / "a.csv").write_text("file,start_s,end_s,label\nmissing.wav,1,2,ai\n")
    (tmp_path / "b.csv").write_text("file,start_s,end_s,label\nmissing.wav,1,2,maybe\n")
    (tmp_path / "c.csv").write_text("file,start_s,end_s,label\n")
    for name, message in [("a", r"stream_labels=.*a\.csv line 2: .*missing\.wav does not exist"),
                          ("b", r"stream_labels=.*b\.csv line 2: label 'maybe' is not a class"),
                          ("c", r"stream_labels=.*c\.csv lists no recording")]:
        cfg = compose_config(tmp_path, [f"ckpt_path={ckpt}", f"stream_labels={tmp_path / name}.csv"],
                             config_name="eval")
        with pytest.raises(UserError, match=message):
            evaluate.run(cfg)
    assert not (tmp_path / "run").exists()
