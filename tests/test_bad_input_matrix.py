"""Every kind of awkward or broken input: converted and predicted, or one named sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf.data.io import read_audio
from audioclf.errors import UserError
from audioclf.tasks import predict
from tests.conftest import compose_config, write_wav
from tests.test_export import registry_classifier, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000


def tone(rate: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.4 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono, 0.5 * mono], axis=1) if channels == 2 else mono


def valid_wav_bytes(tmp: Path) -> bytes:
    return write_wav(tmp / "_valid.wav", tone(RATE), RATE).read_bytes()


def make(kind: str, tmp: Path) -> Path:
    path = tmp / f"{kind}.wav"
    if kind == "stereo":
        write_wav(path, tone(RATE, channels=2), RATE)
    elif kind == "44k1":
        write_wav(path, tone(44100), 44100)
    elif kind == "8bit":
        write_wav(path, tone(RATE), RATE, subtype="PCM_U8")
    elif kind == "float":
        write_wav(path, tone(RATE).astype(np.float32), RATE, subtype="FLOAT")
    elif kind == "float_over_full_scale":
        write_wav(path, 3 * tone(RATE).astype(np.float32), RATE, subtype="FLOAT")
    elif kind == "empty_file":
        path.write_bytes(b"")
    elif kind == "zero_length_data":
        write_wav(path, np.zeros(0, np.float32), RATE)
    elif kind == "nan_samples":
        samples = tone(RATE).astype(np.float32)
        samples[100:200] = np.nan
        write_wav(path, samples, RATE, subtype="FLOAT")
    elif kind == "truncated_header":
        path.write_bytes(valid_wav_bytes(tmp)[:20])
    elif kind == "truncated_data":
        path.write_bytes(valid_wav_bytes(tmp)[:3000])
    elif kind == "not_audio":
        path.write_text("name,label\nthis is a csv file, renamed\n")
    elif kind == "empty_dir":
        path = tmp / "no_audio_here"
        path.mkdir()
        (path / "notes.txt").write_text("no audio")
    return path


# kind -> None if it must be converted and predicted, else the phrase its one-line error holds
MATRIX = {
    "stereo": None,
    "44k1": None,
    "8bit": None,
    "float": None,
    "float_over_full_scale": None,
    "truncated_data": None,  # libsndfile reads the frames that are there
    "empty_file": "cannot decode",
    "zero_length_data": "holds no samples",
    "nan_samples": "contains NaN or infinite samples",
    "truncated_header": "cannot decode",
    "not_audio": "cannot decode",
    "empty_dir": "holds no .wav/.flac/.ogg files",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    save_checkpoint(registry_classifier("tf_cnn"), path)
    return path


@pytest.mark.parametrize("kind", list(MATRIX))
@pytest.mark.parametrize("stream", [False, True])
def test_bad_input_matrix(kind, stream, checkpoint, tmp_path):
    path = make(kind, tmp_path)
    cfg = compose_config(
        tmp_path,
        [f"ckpt_path={checkpoint}", f"inputs={path}", f"stream={stream}"],
        config_name="predict",
    )
    expected = MATRIX[kind]
    if expected is None:
        ((found, result),) = predict.run(cfg)
        assert found == path
        if not stream:
            assert np.isclose(sum(p for _, p in result), 1.0, atol=1e-4)
        samples, rate = read_audio(path)
        assert samples.ndim == 1 and np.isfinite(samples).all() and len(samples) > 0
        return
    with pytest.raises(UserError) as error:
        predict.run(cfg)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("kind", ["not_audio"])
def test_cli_reports_bad_input_in_one_line(kind, checkpoint, tmp_path):
    path = make(kind, tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "audioclf",
            "predict",
            f"ckpt_path={checkpoint}",
            f"inputs={path}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("error:")
    ]
    assert MATRIX[kind] in result.stderr and "Traceback" not in result.stderr


def test_the_matrix_files_are_what_they_claim(tmp_path):
    assert sf.info(str(make("stereo", tmp_path))).channels == 2
    assert sf.info(str(make("44k1", tmp_path))).samplerate == 44100
    assert sf.info(str(make("8bit", tmp_path))).subtype == "PCM_U8"
    assert sf.info(str(make("float", tmp_path))).subtype == "FLOAT"
    assert sf.info(str(make("zero_length_data", tmp_path))).frames == 0
