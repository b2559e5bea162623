"""Each user-caused error stops with one sentence that names the thing and the fix."""

import logging
import subprocess
import sys

import numpy as np
import pytest

from audioclf.data.clips import load_or_build
from audioclf.data.io import BadAudioFile, read_audio
from audioclf.data.sources import build_source
from audioclf.errors import UserError
from audioclf.tasks import train
from tests.conftest import ROOT, SMALL_SYNTHETIC, compose_config, write_wav


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.py", "data=synthetic", "trainer.max_epochs=abc"], "trainer.max_epochs='abc' has the wrong type"),
        (["train.py", "model=no_such_model"], "model=no_such_model is not a config in audioclf/conf/model/"),
        (["eval.py", "ckpt_path=/no/such.ckpt"], "ckpt_path=/no/such.ckpt does not exist"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_dataset_root_without_download(tmp_path):
    cfg = compose_config(tmp_path, ["data=speech_commands", "data.download=false"])
    with pytest.raises(UserError, match="set data.root=<your copy> or data.download=true"):
        train.run(cfg)


def test_unreachable_download_names_the_url(tmp_path):
    cfg = compose_config(tmp_path, ["data=fsdd", f"data.url={(tmp_path / 'gone.tar.gz').as_uri()}"])
    with pytest.raises(UserError, match="gone.tar.gz"):
        train.run(cfg)


def test_unknown_backbone_name(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "model.name=resnet9000", "debug=fast"])
    with pytest.raises(UserError, match="model.name=resnet9000 is not a known backbone"):
        train.run(cfg)


def test_wrong_type_override_of_a_list(tmp_path):
    cfg = compose_config(tmp_path, [*SMALL_SYNTHETIC, "augment=strong", "augment.gain_db=loud"])
    with pytest.raises(UserError, match="augment.gain_db='loud' has the wrong type: expected a list"):
        train.run(cfg)


@pytest.fixture
def folder_with_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for i in range(5):
            write_wav(tmp_path / "audio" / name / f"{i}.wav", rng.normal(0, 0.1, 4000).astype(np.float32), 8000)
    (tmp_path / "audio" / "a" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    write_wav(tmp_path / "audio" / "b" / "empty.wav", np.zeros(0, np.float32), 8000)
    return tmp_path / "audio"


@pytest.mark.parametrize("name, reason", [("a/corrupt.wav", "cannot decode"), ("b/empty.wav", "holds no samples")])
def test_bad_wav_is_named(folder_with_bad_files, name, reason):
    with pytest.raises(BadAudioFile, match=reason) as error:
        read_audio(folder_with_bad_files / name)
    assert str(folder_with_bad_files / name) in str(error.value)
    assert "replace or delete the file" in str(error.value)


def test_bad_files_stop_the_bank_unless_skipped(folder_with_bad_files, caplog):
    source = build_source("folder", root=str(folder_with_bad_files), val_ratio=0.0, test_ratio=0.0)
    with pytest.raises(BadAudioFile, match="or set data.skip_bad_files=true"):
        load_or_build(source, "train", 8000, 8000, cache_dir=None)
    with caplog.at_level(logging.WARNING):
        bank = load_or_build(source, "train", 8000, 8000, cache_dir=None, skip_bad_files=True)
    assert len(bank) == 10
    assert "skipped 2 unreadable audio files" in caplog.text
