"""Reading audio files: soundfile for decoding, torchaudio for resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from audioclf.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class BadAudioFile(UserError):
    """An audio file that cannot be decoded into usable samples."""


def read_audio(path: str | Path, start: float = 0.0, duration: float | None = None, min_ms: float = 0.0):
    """Return (mono float32 samples, sample rate) of an audio file.

    `start` and `duration` (seconds) read only part of the file; a file shorter than `min_ms`
    is a BadAudioFile.
    """
    path = Path(path)
    try:
        info = sf.info(str(path))
        first = int(round(start * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        samples, rate = sf.read(
            str(path), start=first, frames=frames, dtype="float32", always_2d=True
        )
    except FileNotFoundError:
        raise BadAudioFile(f"audio file {path} does not exist: check the path") from None
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadAudioFile(
            f"cannot decode {path} ({reason}): replace or delete the file"
        ) from None
    if samples.shape[0] == 0:
        raise BadAudioFile(
            f"{path} holds no samples: replace or delete the file"
        )
    milliseconds = 1000 * samples.shape[0] / rate
    if milliseconds < min_ms:
        raise BadAudioFile(f"{path} is {milliseconds:.3g} ms long; clips shorter than {min_ms:g} ms cannot be "
                           "classified: replace or delete the file")
    mono = samples.mean(axis=1)
    if not np.isfinite(mono).all():
        raise BadAudioFile(
            f"{path} contains NaN or infinite samples: replace or delete the file"
        )
    return mono, rate


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return samples
    waveform = torch.from_numpy(np.ascontiguousarray(samples))
    return AF.resample(waveform, rate, target_rate).numpy()


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or crop the centre to exactly `length` samples."""
    if len(samples) >= length:
        offset = (len(samples) - length) // 2
        return samples[offset : offset + length]
    return np.pad(samples, (0, length - len(samples)))


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def list_audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def read_noise_folder(folder: str | Path, sample_rate: int) -> list[np.ndarray]:
    """Every audio file in `folder` (the augment.noise_dir option), mono at `sample_rate`."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"noise_dir={folder} is not a directory: fix the path or set it to null")
    return [resample(*read_audio(path), sample_rate) for path in list_audio_files(folder)]
