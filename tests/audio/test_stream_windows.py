"""StreamWindows: keyword clips cut at the window's edge become _unknown_, others move anywhere, and junctions
of two words become _unknown_."""

from __future__ import annotations

import pytest
import torch

from audioclf.audio.augment import StreamWindows, speech_bounds

RATE, LENGTH = 16000, 16000
KEYWORD, UNKNOWN, SILENCE = 0, 1, 2


def words(batch: int, start: int = 6000, end: int = 10000) -> torch.Tensor:
    """Clips silent but for a loud burst over [start, end) samples."""
    waves = torch.zeros(batch, LENGTH)
    waves[:, start:end] = 0.5 * torch.sin(torch.arange(end - start) * 0.3)
    return waves


def speech_inside(waves: torch.Tensor) -> torch.Tensor:
    return (waves.abs() > 0).sum(-1)


def test_speech_bounds_finds_the_burst_to_the_frame():
    start, end = speech_bounds(words(3, 6080, 9920), frame=160)  # frames 38 to 61
    assert start.tolist() == [6080] * 3 and end.tolist() == [9920] * 3
    start, _ = speech_bounds(words(1, 6000, 9920), frame=160)  # half of frame 37 is speech: 3 dB down
    assert start.tolist() == [5920]


def test_cut_keywords_keep_at_most_the_visible_share_and_become_unknown():
    torch.manual_seed(0)
    windows = StreamWindows(RATE, [KEYWORD], UNKNOWN, cut_prob=1.0, cut_visible=0.4)
    waves, labels = windows(words(64), torch.full((64,), KEYWORD))
    assert labels.tolist() == [UNKNOWN] * 64
    assert (speech_inside(waves) <= 0.4 * 4000 + 1).all()
    touches_an_edge = (waves[:, 0].abs() > 0) | (waves[:, -1].abs() > 0) | (speech_inside(waves) == 0)
    assert touches_an_edge.all()


def test_anywhere_keeps_the_word_whole_and_moves_it():
    torch.manual_seed(0)
    windows = StreamWindows(RATE, [KEYWORD], UNKNOWN, anywhere=True)
    waves, labels = windows(words(64), torch.full((64,), KEYWORD))
    assert labels.tolist() == [KEYWORD] * 64
    assert (speech_inside(waves) == speech_inside(words(1))).all()
    starts, _ = speech_bounds(waves, frame=160)
    assert starts.min() < 2000 and starts.max() > 10000


def test_other_labels_are_left_alone():
    windows = StreamWindows(RATE, [KEYWORD], UNKNOWN, cut_prob=1.0, anywhere=True)
    labels = torch.tensor([UNKNOWN, SILENCE] * 4)
    waves, out = windows(words(8), labels)
    assert torch.equal(waves, words(8)) and torch.equal(out, labels)


def test_junctions_show_the_end_of_one_word_and_the_start_of_another_as_unknown():
    torch.manual_seed(0)
    windows = StreamWindows(RATE, [KEYWORD], UNKNOWN, junction_prob=1.0, cut_visible=0.4)
    labels = torch.tensor([KEYWORD, UNKNOWN] * 32)
    waves, out = windows(words(64), labels)
    assert out.tolist() == [UNKNOWN] * 64
    speaking = waves.abs() > 0
    assert speaking[:, :2000].any(-1).float().mean() > 0.9  # a word leaving at the left edge...
    assert speaking[:, -2000:].any(-1).float().mean() > 0.9  # ...and one entering at the right
    assert not speaking[:, 2000:-2000].any()  # nothing whole in between
    assert (speech_inside(waves) <= 2 * 0.4 * 4000 + 2).all()


def test_junctions_leave_silence_alone_and_keep_the_rest_at_zero_share():
    windows = StreamWindows(RATE, [KEYWORD], UNKNOWN, junction_prob=1.0)
    labels = torch.tensor([SILENCE] * 8)
    waves, out = windows(words(8), labels)
    assert torch.equal(waves, words(8)) and torch.equal(out, labels)
    assert not StreamWindows(RATE, [KEYWORD], UNKNOWN, junction_prob=0.0).active


def test_cutting_needs_an_unknown_class():
    with pytest.raises(ValueError, match="stream_cut_prob=0.5 relabels"):
        StreamWindows(RATE, [KEYWORD], None, cut_prob=0.5)
    with pytest.raises(ValueError, match="stream_junction_prob=0.2 relabels"):
        StreamWindows(RATE, [KEYWORD], None, junction_prob=0.2)


def test_the_config_turns_it_on(tmp_path, speech_commands_root):
    from audioclf.tasks import build
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path, ["data=speech_commands", f"data.root={speech_commands_root}",
                                    "augment.stream_cut_prob=0.5", "augment.stream_anywhere=true",
                                    "augment.stream_junction_prob=0.2"])
    datamodule = build.build_datamodule(cfg)
    build.build_augment(cfg, datamodule)
    assert datamodule.windows is not None and datamodule.windows.cut_prob == 0.5
    assert datamodule.windows.junction_prob == 0.2
    cfg = compose_config(tmp_path, ["data=speech_commands", f"data.root={speech_commands_root}"])
    datamodule = build.build_datamodule(cfg)
    build.build_augment(cfg, datamodule)
    assert datamodule.windows is None
