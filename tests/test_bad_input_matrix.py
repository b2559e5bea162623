"""Every kind of awkward or broken input: converted and predicted, or one named sentence."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR, check_group_choices, check_run_folder, check_values
from audioclf.data.io import read_audio
from audioclf.errors import UserError
from audioclf.lit.checkpoints import load_classifier
from audioclf.models import build_backbone
from audioclf.tasks import predict, train
from audioclf.tasks.run_identity import resolve_ckpt_path
from tests.conftest import ROOT, SMALL_SYNTHETIC, compose_config, write_wav
from tests.tasks.test_export import registry_classifier, save_checkpoint

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


# The last raw tracebacks: each is one line naming the key or file and the fix.


def one_line_error(result: subprocess.CompletedProcess, phrase: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and phrase in errors[0], lines


def audioclf(tmp: Path, task: str, *args: str) -> subprocess.CompletedProcess:
    paths = [f"hydra.run.dir={tmp / 'run'}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]
    return subprocess.run([sys.executable, "-m", "audioclf", task, *args, *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def not_a_checkpoint(kind: str, tmp: Path) -> Path:
    path = tmp / f"{kind}.ckpt"
    if kind == "text":
        path.write_text("name,label\nthis is a csv file, renamed\n")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "zip_not_torch":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "hello")
    elif kind == "torch_not_lightning":
        torch.save({"weights": torch.zeros(2)}, path)
    return path


@pytest.mark.parametrize("kind", ["text", "random_bytes", "zip_not_torch", "torch_not_lightning"])
def test_a_file_that_is_not_a_checkpoint_is_named_when_loaded_and_when_resumed(kind, checkpoint, tmp_path):
    path = not_a_checkpoint(kind, tmp_path)
    with pytest.raises(UserError) as loading:
        load_classifier(path)
    with pytest.raises(UserError) as resuming:
        resolve_ckpt_path(compose_config(tmp_path, [f"ckpt_path={path}"]))
    for error in (loading, resuming):
        message = str(error.value)
        assert f"ckpt_path={path} is not an audioclf checkpoint" in message and "\n" not in message
    assert resolve_ckpt_path(compose_config(tmp_path, [f"ckpt_path={checkpoint}"])) == str(checkpoint)


@pytest.mark.parametrize("task", ["train", "eval", "predict", "export"])
def test_every_entry_point_names_a_file_that_is_not_a_checkpoint(task, tmp_path):
    path = not_a_checkpoint("random_bytes", tmp_path)
    extra = {"train": ["data=synthetic"], "predict": [f"inputs={make('float', tmp_path)}"]}.get(task, [])
    one_line_error(audioclf(tmp_path, task, f"ckpt_path={path}", *extra),
                   f"ckpt_path={path} is not an audioclf checkpoint")


# The dataset root does not exist: a value check that waited for the data would report that instead.
NO_DATA = ["data=speech_commands", "data.download=false", "data.root=/no/such/dataset"]


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr=-1 is out of range: give a number > 0"),
    ("optim.lr=0", "optim.lr=0 is out of range: give a number > 0"),
    ("data.batch_size=0", "data.batch_size=0 is out of range: give a whole number >= 1"),
    ("data.eval_batch_size=-8", "data.eval_batch_size=-8 is out of range: give a whole number >= 1"),
    ("data.clip_seconds=0", "data.clip_seconds=0 is out of range: give a number > 0"),
    ("data.sample_rate=0", "data.sample_rate=0 is out of range: give a whole number >= 1"),
    ("features.hop_ms=0", "features.hop_ms=0 is out of range: give a number > 0"),
    ("features.win_ms=-30", "features.win_ms=-30 is out of range: give a number > 0"),
    ("features.n_fft=100.5", "features.n_fft=100.5 is out of range: give a whole number >= 1"),
    ("model.resize=0", "model.resize=0 is out of range: give a whole number >= 1"),
    ("model.dropout_conv=1", "model.dropout_conv=1 is out of range: give a number in [0, 1)"),
    ("loss.label_smoothing=-0.1", "loss.label_smoothing=-0.1 is out of range: give a number in [0, 1)"),
    ("seed=-3", "seed=-3 is out of range: give a whole number in [0, 4294967295]"),
    ("trainer.max_epochs=-5", "trainer.max_epochs=-5 must be at least 1 (or -1 for no limit)"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be at least 1"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs=2.5 must be a whole number of epochs"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 (no limit) leaves the learning-rate schedule no length"),
])
def test_values_that_cannot_work_are_named_before_the_data_is_read(override, message, tmp_path):
    with pytest.raises(UserError) as error:
        train.run(compose_config(tmp_path, [*NO_DATA, override]))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, message", [
    (["model=phase2d", "model.channels=[16,0,64,128]"],
     "model.channels=[16,0,64,128] is out of range: give a list of numbers, each a whole number >= 1"),
    (["model=gru", "model.hidden=0"], "model.hidden=0 is out of range"),
    (["features=logmel", "features.n_mels=0"], "features.n_mels=0 is out of range"),
    (["augment=strong", "augment.speed=[0,1.1]"], "augment.speed=[0,1.1] is out of range"),
    (["augment.noise_prob=1.5"], "augment.noise_prob=1.5 is out of range: give a number in [0, 1]"),
    (["seed=abc"], "seed='abc' has the wrong type: expected a number, e.g. seed=42"),
    (["test=maybe"], "test='maybe' has the wrong type: expected true or false, e.g. test=true"),
    (["loss=0.1"], "loss=0.1 has the wrong type: loss is a group of keys (label_smoothing)"),
])
def test_sizes_and_top_level_types_are_checked_at_the_config_edge(overrides, message, tmp_path):
    with pytest.raises(UserError) as error:
        train.run(compose_config(tmp_path, [*NO_DATA, *overrides]))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_every_shipped_config_is_within_the_declared_ranges(tmp_path):
    """The schema admits every option and recipe the package ships, so it rejects only user values."""
    for group in ("model", "features", "augment", "optim", "scheduler", "callbacks", "data", "experiment"):
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            check_values(compose_config(tmp_path, [f"{group}={path.stem}"]))


def test_no_epoch_limit_is_allowed_without_a_schedule(tmp_path):
    check_values(compose_config(tmp_path, ["trainer.max_epochs=-1", "scheduler=none"]))


def test_a_gpu_trainer_without_a_gpu_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"^trainer=gpu needs a GPU, .*: use trainer=cpu or trainer.accelerator=auto$"):
        train.run(compose_config(tmp_path, [*NO_DATA, "trainer=gpu"]))
    with pytest.raises(UserError, match=r"^trainer.accelerator=cuda needs a GPU"):
        train.run(compose_config(tmp_path, [*NO_DATA, "trainer.accelerator=cuda"]))
    check_values(compose_config(tmp_path, ["trainer=gpu", "trainer.accelerator=auto"]))


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
def test_cli_trainer_gpu_without_a_gpu(tmp_path):
    one_line_error(audioclf(tmp_path, "train", "data=synthetic", "trainer=gpu"),
                   "trainer=gpu needs a GPU, and PyTorch sees none on this machine")


@pytest.mark.parametrize("args, message", [
    (["features.n_mels=40"], "features.n_mels is not a key of features=stft, whose keys are name, sample_rate, "
                             "win_ms, hop_ms, n_fft, center, normalize: pick features=logmel or "),
    (["features=stft", "features.foo=1"], "features.foo is not a key of features=stft, whose keys are "),
    (["model=kwt", "features.foo=1"], "features.foo is not a key of features=mfcc"),  # the model's frontend
    (["trainer.limit_train_batches=2"], "trainer.limit_train_batches is not a key of trainer=default, whose keys "),
    (["optim.momentum=0.9"], "optim.momentum is not a key of optim=adamw, whose keys are _target_, _partial_, lr, "
                             "weight_decay: pick optim=bcresnet or sgd, or add the key with +optim.momentum=<value>"),
    (["callbacks.early_stopping.patience=3"], "callbacks.early_stopping is not a key of callbacks=default"),
])
def test_a_key_the_chosen_config_lacks_is_named_before_hydra(args, message):
    with pytest.raises(UserError) as error:
        check_group_choices(args)
    assert str(error.value).startswith(message)
    assert str(error.value).endswith("=<value>") or args[-1].startswith("features.")


@pytest.mark.parametrize("args", [
    ["features=logmel", "features.n_mels=64"],
    ["+trainer.limit_train_batches=2", "trainer.max_epochs=3"],
    ["callbacks=early_stopping", "callbacks.early_stopping.patience=3"],
    ["model.dropout=0.2", "model=gru_seq2seq"],  # the choice may come after the key
    ["experiment=fsdd_unseen_speaker", "data.split='speaker=theo'", "hydra.job.chdir=false"],
])
def test_keys_of_the_chosen_configs_pass(args):
    check_group_choices(args)


def test_an_unquoted_value_holding_an_equals_sign_names_the_quoting_fix():
    with pytest.raises(UserError, match=r"""^data.split=speaker=theo is not a valid override \(mismatched input """
                                        r"""'=' expecting <EOF>\): quote the value for Hydra and the shell, """
                                        r""""data.split='speaker=theo'"$"""):
        check_group_choices(["data=fsdd", "data.split=speaker=theo"])
    check_group_choices(["data=fsdd", "data.split='speaker=theo'", "augment.speed=[0.9,1.1]", "-m", "--cfg", "job"])


def test_cli_unquoted_equals_sign(tmp_path):
    one_line_error(audioclf(tmp_path, "eval", "ckpt_path=runs/a=1.ckpt"),
                   "ckpt_path=runs/a=1.ckpt is not a valid override")


def test_cli_features_key_the_frontend_lacks(tmp_path):
    one_line_error(audioclf(tmp_path, "train", "features.n_mels=40"),
                   "features.n_mels is not a key of features=stft")


def test_cli_trainer_key_the_config_lacks(tmp_path):
    one_line_error(audioclf(tmp_path, "train", "trainer.limit_train_batches=2"),
                   "trainer.limit_train_batches is not a key of trainer=default")


def test_the_library_raises_value_errors_that_start_with_the_parameter():
    with pytest.raises(ValueError, match=r"^n_fft=64 is shorter than the 30 ms window"):
        build_frontend({"name": "logmel", "win_ms": 30, "n_fft": 64}, 16000)
    with pytest.raises(ValueError, match=r"^n_mels=40 is not a parameter of the stft frontend: it takes "
                                         r"sample_rate, normalize, win_ms, hop_ms, n_fft, center, power$"):
        build_frontend({"name": "stft", "n_mels": 40}, 16000)
    with pytest.raises(ValueError, match=r"^pool=maximum is unknown"):
        build_backbone("gru", 10, (1, 40, 101), pool="maximum")
    with pytest.raises(ValueError, match=r"^name=resnet9000 is not a known backbone"):
        build_backbone("resnet9000", 10, (1, 40, 101))
    for folder in ("models", "audio"):
        for path in (ROOT / "audioclf" / folder).glob("*.py"):
            text = path.read_text()
            assert "UserError" not in text and "hydra" not in text.lower(), path


@pytest.mark.parametrize("overrides, message", [
    (["features.n_fft=64"], "features.n_fft=64 is shorter than the 15.9375 ms window"),
    (["+features.n_mels=40"], "features.n_mels=40 is not a parameter of the stft frontend: it takes sample_rate"),
    (["model=gru", "model.pool=maximum"], "model.pool=maximum is unknown: use mean, max or last"),
    (["+model.depth=3"], "model.depth=3 is not a parameter of backbone tf_cnn"),
    (["augment=strong", "augment.speed=[1.2,0.9]"], "augment.speed=[1.2, 0.9] must be [low, high]"),
    (["augment=strong", "augment.noise_dir=/no/such/noise"], "augment.noise_dir=/no/such/noise is not a directory"),
    (["augment.vtlp=[0.9,1.1]"], "augment.vtlp=[0.9, 1.1] warps mel bands, and the stft frontend has none"),
    (["features=logmel", "augment.vtlp=[1.1,0.9]"], "augment.vtlp=[1.1, 0.9] must be [low, high] warp factors"),
    (["augment.speed=[0.9]"], "augment.speed=[0.9] must be [low, high], two numbers, e.g. speed=[0.9,1.1]"),
    (["features=logmel", "augment.vtlp=[0.9]"], "augment.vtlp=[0.9] must be [low, high], two numbers"),
])
def test_the_config_edge_names_the_group_of_a_library_value_error(overrides, message, tmp_path):
    with pytest.raises(UserError) as error:
        train.run(compose_config(tmp_path, [*SMALL_SYNTHETIC, "debug=fast", *overrides]))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_cli_library_value_error_is_one_line(tmp_path):
    one_line_error(audioclf(tmp_path, "train", *SMALL_SYNTHETIC, "features.n_fft=64"),
                   "error: features.n_fft=64 is shorter than the 15.9375 ms window")


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """3 good clips, 6 that cannot be decoded, one 3 ms clip."""
    folder = tmp_path / "mixed"
    for index in range(3):
        write_wav(folder / f"good{index}.wav", tone(RATE), RATE)
    for index in range(6):
        (folder / f"bad{index}.wav").write_text("not audio")
    write_wav(folder / "short.wav", tone(RATE)[:48], RATE)
    return folder


def test_predict_skips_unreadable_files_in_a_folder_and_writes_the_csv(mixed_folder, checkpoint, tmp_path, capsys):
    output = tmp_path / "out" / "preds.csv"
    cfg = compose_config(tmp_path, [f"ckpt_path={checkpoint}", f"inputs={mixed_folder}", f"output={output}", "top_k=2"],
                         config_name="predict")
    results = predict.run(cfg)
    assert [path.name for path, _ in results] == ["good0.wav", "good1.wav", "good2.wav"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == predict.SHOWN_SKIPPED + 1 and all(e.startswith("skipped: ") for e in errors[:-1])
    assert errors[-1] == "7 files skipped, 3 classified"
    rows = list(csv.reader(output.open()))
    assert rows[0] == ["file", "label", "probability"] and len(rows) == 1 + 3 * 2
    assert rows[1][0] == str(mixed_folder / "good0.wav") and 0 < float(rows[1][2]) <= 1
    assert [p.name for p in output.parent.iterdir()] == ["preds.csv"]  # no temporary left beside it


def test_predict_names_a_clip_too_short_to_classify(mixed_folder, checkpoint, tmp_path):
    path = mixed_folder / "short.wav"
    cfg = compose_config(tmp_path, [f"ckpt_path={checkpoint}", f"inputs={path}"], config_name="predict")
    with pytest.raises(UserError, match=f"^{path} is 3 ms long; clips shorter than 10 ms cannot be classified"):
        predict.run(cfg)


@pytest.mark.parametrize("stream", [False, True])
def test_predict_over_a_folder_of_bad_files_is_one_error_and_writes_nothing(stream, checkpoint, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for kind in ("not_audio", "empty_file"):
        make(kind, folder)
    output = tmp_path / "preds.csv"
    overrides = [f"ckpt_path={checkpoint}", f"inputs={folder}", f"stream={stream}"]
    cfg = compose_config(tmp_path, [*overrides, *([] if stream else [f"output={output}"])], config_name="predict")
    with pytest.raises(UserError, match=f"^inputs={folder}: none of its 2 audio files could be classified; "
                                        "the first: cannot decode"):
        predict.run(cfg)
    assert not output.exists()


def test_cli_predict_over_a_folder(mixed_folder, checkpoint, tmp_path):
    output = tmp_path / "preds.csv"
    result = audioclf(tmp_path, "predict", f"ckpt_path={checkpoint}", f"inputs={mixed_folder}", f"output={output}")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "7 files skipped, 3 classified" in result.stderr and len(output.read_text().splitlines()) == 4


# Issue 31's classes of failure, each through the CLI: one line naming the thing and the fix.


@pytest.mark.parametrize("args, phrase", [
    (["features.hop_ms=0"], "features.hop_ms=0 is out of range: give a number > 0"),
    (["model=gru", "model.hidden=0"], "model.hidden=0 is out of range: give a whole number >= 1"),
    (["data.clip_seconds=-1"], "data.clip_seconds=-1 is out of range: give a number > 0"),
    (["seed=abc"], "seed='abc' has the wrong type: expected a number"),
    (["test=maybe"], "test='maybe' has the wrong type: expected true or false"),
])
def test_cli_degenerate_or_mistyped_settings(args, phrase, tmp_path):
    one_line_error(audioclf(tmp_path, "train", *SMALL_SYNTHETIC, *args), phrase)


def test_cli_predict_settings_are_checked(checkpoint, tmp_path):
    one_line_error(audioclf(tmp_path, "predict", f"ckpt_path={checkpoint}", f"inputs={make('float', tmp_path)}",
                            "top_k=0"), "top_k=0 is out of range: give a whole number >= 1")


@pytest.mark.parametrize("task", ["train", "eval"])
def test_cli_a_run_folder_that_cannot_be_created(task, checkpoint, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    args = ["data=synthetic"] if task == "train" else [f"ckpt_path={checkpoint}"]
    result = subprocess.run([sys.executable, "-m", "audioclf", task, *args, f"paths.log_dir={blocker}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    one_line_error(result, f"the run folder {blocker}/runs/{task}/")
    assert f"cannot be created: {blocker} is a file, not a folder: give paths.log_dir=" in result.stderr


def test_cli_a_nan_loss_stops_the_run_at_its_step_and_keeps_the_checkpoint_before(tmp_path):
    # one step per epoch; lr 1e30: the first step is finite and throws the weights to ~1e30, the next overflows
    result = audioclf(tmp_path, "train", *SMALL_SYNTHETIC, "data.batch_size=64", "optim.lr=1e30",
                      "trainer.max_epochs=4")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    one_line_error(result, "train/loss is nan at step 1 (epoch 1, lr ")
    assert "lower optim.lr or set trainer.gradient_clip_val=1.0" in result.stderr
    assert f"last checkpoint: {last}" in result.stderr
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


DISK_FULL_AFTER_TWO_SAVES = """
import errno, sys, torch
from audioclf import cli
real_save, saves = torch.save, []
def save(obj, stream, *args, **kwargs):
    saves.append(stream)
    if len(saves) <= 2:  # epoch 0: epoch_000.ckpt and last.ckpt
        return real_save(obj, stream, *args, **kwargs)
    stream.write(b"half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")
torch.save = save
sys.argv = ["audioclf-train", *sys.argv[1:]]
cli.train()
"""


def test_cli_disk_full_while_saving_leaves_the_last_checkpoint_whole(tmp_path):
    paths = [f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = subprocess.run([sys.executable, "-c", DISK_FULL_AFTER_TWO_SAVES, *SMALL_SYNTHETIC,
                             "trainer.max_epochs=3", *paths], cwd=ROOT, capture_output=True, text=True, timeout=180)
    folder = tmp_path / "run" / "checkpoints"
    one_line_error(result, f"cannot write the checkpoint {folder}/")
    assert "(No space left on device)" in result.stderr
    assert "free space on that disk or give paths.log_dir=" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]  # no temporary file left
    assert torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == 0


@pytest.fixture
def other_words(tmp_path) -> Path:
    """A folder dataset sharing two classes with the checkpoint's w0..w7, in another order, and one of its own."""
    for name in ("w1", "zz", "w0"):
        for index in range(10):
            write_wav(tmp_path / "words" / name / f"{index}.wav", tone(RATE), RATE)
    return tmp_path / "words"


def test_cli_eval_on_data_with_other_classes_names_both_lists(other_words, checkpoint, tmp_path):
    args = [f"ckpt_path={checkpoint}", "data=folder", f"data.root={other_words}", "false_alarms=false"]
    one_line_error(audioclf(tmp_path, "eval", *args),
                   "data=folder has classes ['w0', 'w1', 'zz'], the checkpoint ['w0', 'w1', 'w2', 'w3', 'w4', 'w5', "
                   "'w6', 'w7']: evaluate on data with the same classes in the same order, or add map_classes=true "
                   "to score the 2 classes both have, matched by name")
    mapped = audioclf(tmp_path, "eval", *args, "map_classes=true")
    assert mapped.returncode == 0, mapped.stderr[-2000:]
    assert "map_classes=true: scoring the 2 classes the data and the checkpoint share" in mapped.stdout
    report = (tmp_path / "run" / "test_report.csv").read_text()
    assert ",zz," not in report and "w7" in report


def test_cli_eval_rejects_a_clip_format_the_checkpoint_does_not_have(checkpoint, tmp_path):
    one_line_error(audioclf(tmp_path, "eval", f"ckpt_path={checkpoint}", "data=synthetic", "data.clip_seconds=2"),
                   "data.clip_seconds=2 differs from the checkpoint's 1 s: ")


def test_cli_eval_on_data_with_no_class_in_common(checkpoint, tmp_path):
    one_line_error(audioclf(tmp_path, "eval", f"ckpt_path={checkpoint}", "data=synthetic", "map_classes=true"),
                   "data=synthetic has classes ['ai', ")


def test_predict_says_when_an_input_is_cut_to_the_checkpoints_clip_length(checkpoint, tmp_path, capsys):
    folder = tmp_path / "inputs"
    long, short = write_wav(folder / "long.wav", tone(RATE, seconds=3.0), RATE), make("float", folder)
    predict.run(compose_config(tmp_path, [f"ckpt_path={checkpoint}", f"inputs={folder}"], config_name="predict"))
    assert capsys.readouterr().err.strip().splitlines() == [
        f"note: 1 of 2 inputs are longer than the checkpoint's 1 s clips (the first: {long}): the middle 1 s of "
        "each is classified; stream=true scans a long recording"]
    predict.run(compose_config(tmp_path, [f"ckpt_path={checkpoint}", f"inputs={short}"], config_name="predict"))
    assert capsys.readouterr().err == ""


def test_a_run_folder_in_a_folder_without_write_permission(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # as a non-root user would see it
    with pytest.raises(UserError, match=f"^the run folder {tmp_path}/a/run cannot be created: {tmp_path} is not "
                                        "writable: give paths.log_dir="):
        check_run_folder("train", [f"hydra.run.dir={tmp_path / 'a' / 'run'}", "data=synthetic"])
    check_run_folder("train", [f"hydra.run.dir={tmp_path / 'a' / 'run'}", "--cfg", "job"])  # creates no folder
