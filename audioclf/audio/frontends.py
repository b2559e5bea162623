"""Frontends: waveform batch (B, samples) -> feature batch (B, C, F, T), on the device.

A `Frontend` chains a transform (STFT magnitude, log-mel, MFCC, ...), an input
normalization whose statistics are adapted on training data and saved with the
model, and SpecAugment masks that apply in training only.

Frames are given in milliseconds (`win_ms`, `hop_ms`), so 30/10 ms frames are
30/10 ms at 8 kHz and at 16 kHz alike; `n_fft` defaults to the next power of two
of the window.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
import torchaudio.transforms as T
from torch import nn

from audioclf.audio.augment import low_high


def frame_lengths(sample_rate: int, win_ms: float, hop_ms: float, n_fft: int | None = None) -> dict[str, int]:
    """Window and hop in samples at `sample_rate`, and the FFT size (next power of two of the window)."""
    win_length = int(round(win_ms * sample_rate / 1000))
    hop_length = int(round(hop_ms * sample_rate / 1000))
    if win_length < 2 or hop_length < 1:
        raise ValueError(f"win_ms={win_ms}/hop_ms={hop_ms} give less than 2/1 samples at {sample_rate} Hz: "
                         "use longer frames")
    n_fft = int(n_fft) if n_fft else 1 << (win_length - 1).bit_length()
    if n_fft < win_length:
        raise ValueError(f"n_fft={n_fft} is shorter than the {win_ms} ms window ({win_length} samples "
                         f"at {sample_rate} Hz): raise n_fft or set it to null")
    return {"n_fft": n_fft, "win_length": win_length, "hop_length": hop_length}


class Stft(nn.Module):
    """Linear STFT magnitude, (B, 1, n_fft // 2 + 1, frames)."""

    def __init__(self, sample_rate: int, win_ms: float = 16.0, hop_ms: float = 8.0, n_fft: int | None = None,
                 center: bool = False, power: float = 1.0):
        super().__init__()
        self.spectrogram = T.Spectrogram(
            **frame_lengths(sample_rate, win_ms, hop_ms, n_fft), center=center, power=power
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.spectrogram(waves).unsqueeze(1)


class LogMel(nn.Module):
    """Log mel power spectrogram, (B, 1, n_mels, frames)."""

    def __init__(self, sample_rate: int, win_ms: float = 30.0, hop_ms: float = 10.0, n_fft: int | None = None,
                 n_mels: int = 40, f_min: float = 20.0, f_max: float | None = None, center: bool = True,
                 log: bool = True):
        super().__init__()
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate, **frame_lengths(sample_rate, win_ms, hop_ms, n_fft),
            n_mels=n_mels, f_min=f_min, f_max=f_max, center=center,
        )
        self.log = log

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        mel = self.mel(waves).unsqueeze(1)
        return torch.log(mel + 1e-6) if self.log else mel


class Mfcc(nn.Module):
    """Mel-frequency cepstral coefficients, (B, 1, n_mfcc, frames)."""

    def __init__(self, sample_rate: int, n_mfcc: int = 40, win_ms: float = 30.0, hop_ms: float = 10.0,
                 n_fft: int | None = None, n_mels: int = 40, f_min: float = 0.0, f_max: float | None = None,
                 center: bool = True):
        super().__init__()
        self.mfcc = T.MFCC(
            sample_rate=sample_rate, n_mfcc=n_mfcc, log_mels=True,
            melkwargs={**frame_lengths(sample_rate, win_ms, hop_ms, n_fft), "n_mels": n_mels,
                       "f_min": f_min, "f_max": f_max, "center": center},
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.mfcc(waves).unsqueeze(1)


TRANSFORMS: dict[str, type[nn.Module]] = {"stft": Stft, "logmel": LogMel, "mfcc": Mfcc}


class InputNorm(nn.Module):
    """Standardize features with statistics adapted on training data.

    `global`: one mean/std over everything (Keras `Normalization.adapt` on a
    one-channel spectrogram); `per_band`: one per (channel, frequency) row;
    `none`: identity. Per clip, with no adapted statistics (over the clip's speech,
    see `per_clip`; silence and padding do not count): `utterance`: one
    mean/std over each clip's features (instance norm; removes the recording level
    from log features); `cmvn`: each clip's (channel, frequency) rows standardized
    over their frames (cepstral mean and variance normalization; also removes a
    fixed channel colouring such as a microphone's spectral tilt, but with it the
    word's own average spectrum); `utterance_tilt`: `utterance` after taking out
    the clip's spectral tilt, the straight line that best fits its average speech
    spectrum across the bands (a microphone's slope goes, the formant shape around
    it stays). For log spectral features (logmel, stft), whose band axis is frequency.
    """

    MODES = ("none", "global", "per_band", "utterance", "utterance_tilt", "cmvn")
    PER_CLIP = ("utterance", "utterance_tilt", "cmvn")
    ADAPTED = ("global", "per_band")  # the modes whose statistics come from training data

    def __init__(self, mode: str = "global"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"normalize={mode} is unknown: use one of {', '.join(self.MODES)}")
        self.mode = mode
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))
        self.register_buffer("adapted", torch.tensor(mode not in self.ADAPTED))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("mean", "std"):  # shapes are known only once adapted
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def adapt(self, features: torch.Tensor) -> None:
        """Set mean/std from a (B, C, F, T) batch of training features."""
        if self.mode not in self.ADAPTED:
            return
        if self.mode == "global":
            self.mean = features.mean().reshape(1)
            self.std = features.std().clamp_min(1e-5).reshape(1)
        else:  # one (channel, band) row each, broadcast over batch and time
            self.mean = features.mean(dim=(0, 3)).unsqueeze(-1)
            self.std = features.std(dim=(0, 3)).clamp_min(1e-5).unsqueeze(-1)
        self.adapted.fill_(True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return features
        if self.mode in self.PER_CLIP:
            return self.per_clip(features)
        return (features - self.mean) / self.std

    def per_clip(self, features: torch.Tensor) -> torch.Tensor:
        """Standardize by each clip's statistics over its speech: the frames in the upper half of its
        level range (for log features; the mean over bands is the level). Zero padding and leading or
        trailing silence do not count, so the statistics depend neither on the clip's length nor on
        how much silence its recording kept."""
        level = features.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1, T)
        floor, top = level.amin(dim=3, keepdim=True), level.amax(dim=3, keepdim=True)
        weight = ((level >= (floor + top) / 2) | (top <= floor)).to(features.dtype)
        weight = weight.expand_as(features)
        if self.mode == "utterance_tilt":
            features = features - self.speech_tilt(features, weight)
        dims = (3,) if self.mode == "cmvn" else (1, 2, 3)
        count = weight.sum(dim=dims, keepdim=True)
        mean = (features * weight).sum(dim=dims, keepdim=True) / count
        variance = ((features - mean) ** 2 * weight).sum(dim=dims, keepdim=True) / (count - 1).clamp_min(1)
        return (features - mean) / variance.sqrt().clamp_min(1e-5)

    @staticmethod
    def speech_tilt(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, C, F, 1): the least-squares line through each clip's mean speech spectrum over the
        bands, zero at the middle band (so the level stays for the standardization to remove)."""
        spectrum = (features * weight).sum(dim=3, keepdim=True) / weight.sum(dim=3, keepdim=True)
        bands = torch.linspace(-1.0, 1.0, features.shape[2], device=features.device, dtype=features.dtype)
        bands = bands.reshape(1, 1, -1, 1)
        slope = (spectrum * bands).sum(dim=2, keepdim=True) / (bands**2).sum()
        return slope * bands


class SpecAugment(nn.Module):
    """Zero `freq_masks` bands of width <= `freq_width`, `time_masks` spans of width <=
    `time_width`, and `rect_masks` rectangles of up to `rect_freq` bands x `rect_time` frames
    (SpecCutout, as NeMo's MatchboxNet recipe adds), drawn independently per example;
    identity in eval."""

    def __init__(self, freq_masks: int = 0, freq_width: int = 0, time_masks: int = 0,
                 time_width: int = 0, rect_masks: int = 0, rect_freq: int = 0, rect_time: int = 0):
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.rect_masks, self.rect_freq, self.rect_time = rect_masks, rect_freq, rect_time

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        batch, _, bins, frames = features.shape
        device = features.device
        masked = self.masks(batch, bins, self.freq_masks, self.freq_width, device)[:, :, None]
        masked = masked | self.masks(batch, frames, self.time_masks, self.time_width, device)[:, None, :]
        for _ in range(self.rect_masks):
            in_bands = self.masks(batch, bins, 1, self.rect_freq, device)
            in_frames = self.masks(batch, frames, 1, self.rect_time, device)
            masked = masked | (in_bands[:, :, None] & in_frames[:, None, :])
        return features * ~masked[:, None]

    @staticmethod
    def masks(batch: int, size: int, count: int, max_width: int, device) -> torch.Tensor:
        """(batch, size) boolean: the union of `count` random spans of width 0..max_width."""
        # not torchaudio's mask_along_axis_iid: it draws widths 0..mask_param-1, never masks the last bin or
        # frame, and has no rectangle (SpecCutout) mask; ours draws 0..max_width at any position
        masked = torch.zeros(batch, size, dtype=torch.bool, device=device)
        max_width = min(max_width, size)
        if count == 0 or max_width == 0:
            return masked
        positions = torch.arange(size, device=device)
        for _ in range(count):
            width = torch.randint(0, max_width + 1, (batch, 1), device=device)
            start = (torch.rand(batch, 1, device=device) * (size - width + 1)).floor()
            masked |= (positions >= start) & (positions < start + width)
        return masked


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)  # the HTK scale, torchaudio's MelSpectrogram default


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


class VocalTractWarp(nn.Module):
    """Vocal tract length perturbation (VTLP, Jaitly & Hinton 2013) on log-mel bands: each training
    clip's spectrum is warped f -> a f with a drawn uniformly in `alpha`, linearly above a boundary
    at 80 % of the top band so that `f_max` stays in place; identity in eval. A longer or shorter
    vocal tract moves the formants by such a factor; unlike a speed change, the warp keeps the
    clip's tempo. The bands are read at the warped frequencies by linear interpolation."""

    def __init__(self, mel: T.MelSpectrogram, alpha: tuple[float, float]):
        super().__init__()
        low, high = low_high("vtlp", alpha, "[0.9,1.1]")
        if not 0.5 <= low <= high <= 2.0:
            raise ValueError(f"vtlp={list(alpha)} must be [low, high] warp factors with 0.5 <= low <= high <= 2, "
                             "e.g. vtlp=[0.9,1.1]")
        self.alpha = (low, high)
        f_max = float(mel.f_max if mel.f_max is not None else mel.sample_rate / 2)
        low_mel, high_mel = hz_to_mel(torch.tensor([float(mel.f_min), f_max], dtype=torch.float64)).tolist()
        edges = torch.linspace(low_mel, high_mel, mel.n_mels + 2, dtype=torch.float64)
        self.register_buffer("centers_hz", mel_to_hz(edges[1:-1]).float(), persistent=False)
        self.first_mel, self.mel_step = float(edges[1]), float(edges[1] - edges[0])
        self.f_max = f_max

    def source_hz(self, alpha: torch.Tensor) -> torch.Tensor:
        """(B, bands): the input frequency each band reads, the inverse of the piecewise-linear warp."""
        f = self.centers_hz[None, :]
        a = alpha[:, None]
        knee = 0.8 * self.f_max * torch.clamp(a, max=1.0) / a  # the warp is a f below the knee
        above = knee + (f - a * knee) * (self.f_max - knee) / (self.f_max - a * knee)
        return torch.where(f <= a * knee, f / a, above)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        batch, _, bands, _ = features.shape
        alpha = torch.empty(batch, device=features.device).uniform_(*self.alpha)
        position = (hz_to_mel(self.source_hz(alpha)) - self.first_mel) / self.mel_step
        position = position.clamp(0, bands - 1)
        below = position.floor().long().clamp(max=bands - 2)
        frac = (position - below).to(features.dtype)[:, None, :, None]
        index = below[:, None, :, None].expand(-1, features.shape[1], -1, features.shape[3])
        lower, upper = features.gather(2, index), features.gather(2, index + 1)
        return lower + frac * (upper - lower)


class Frontend(nn.Module):
    """transform -> VTLP warp (training only, logmel) -> normalization -> SpecAugment (training only)."""

    def __init__(self, transform: nn.Module, norm: InputNorm, spec_augment: SpecAugment,
                 warp: nn.Module | None = None):
        super().__init__()
        self.transform, self.norm, self.spec_augment = transform, norm, spec_augment
        self.warp = warp if warp is not None else nn.Identity()

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.spec_augment(self.norm(self.warp(self.transform(waves))))

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        with torch.no_grad():
            return tuple(self.transform(torch.zeros(1, num_samples)).shape[1:])

    @torch.no_grad()
    def adapt(self, waves_int16: np.ndarray, max_clips: int = 2000, chunk: int = 256) -> None:
        """Adapt the normalization on up to `max_clips` evenly spaced training clips."""
        if self.norm.mode not in InputNorm.ADAPTED:
            return
        step = max(1, math.ceil(len(waves_int16) / max_clips))
        sample = torch.from_numpy(np.asarray(waves_int16[::step], dtype=np.float32) / 32768)
        device = self.norm.mean.device
        features = torch.cat([self.transform(sample[i : i + chunk].to(device)) for i in range(0, len(sample), chunk)])
        self.norm.adapt(features)


def build_frontend(features: dict[str, Any], sample_rate: int, spec_augment: dict[str, Any] | None = None,
                   vtlp: tuple[float, float] | None = None) -> Frontend:
    params = dict(features)
    name = params.pop("name")
    normalize = params.pop("normalize", "global")
    params.pop("sample_rate", None)  # the rate the clip bank was built at arrives as `sample_rate`
    if name not in TRANSFORMS:
        raise ValueError(f"name={name} is unknown: choose one of {', '.join(TRANSFORMS)}")
    accepted = [key for key in inspect.signature(TRANSFORMS[name]).parameters if key != "sample_rate"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{unknown[0]}={params[unknown[0]]} is not a parameter of the {name} frontend: "
                         f"it takes {', '.join(['sample_rate', 'normalize', *accepted])}")
    if normalize == "utterance_tilt" and name == "mfcc":
        raise ValueError("normalize=utterance_tilt removes a slope across frequency bands, and MFCCs are not "
                         "bands: use features=logmel or normalize=utterance")
    transform = TRANSFORMS[name](sample_rate=sample_rate, **params)
    warp = None
    if vtlp is not None and tuple(float(a) for a in vtlp) != (1.0, 1.0):
        if name != "logmel":
            raise ValueError(f"vtlp={list(vtlp)} warps mel bands, and the {name} frontend has none: "
                             "use features=logmel or vtlp=[1.0,1.0]")
        warp = VocalTractWarp(transform.mel, tuple(vtlp))
    return Frontend(transform, InputNorm(normalize), SpecAugment(**(spec_augment or {})), warp)


class RawPowerMel(nn.Module):
    """Mel power spectrogram with no log, (B, 1, n_mels, frames).

    `librosa.feature.melspectrogram` defaults (Slaney mel scale and area
    normalization, power 2): the input of the FSDD LSTM that stays at chance.
    With `librosa_layout` (the default) the array keeps librosa's (mels, frames)
    order, which Keras reads as (steps, features): a sequence model then steps
    over the 80 mel bands, not over time, as the original did.
    """

    def __init__(self, sample_rate: int, win_ms: float = 64.0, hop_ms: float = 32.0, n_fft: int | None = None,
                 n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None, center: bool = True,
                 mel_scale: str = "slaney", norm: str | None = "slaney", librosa_layout: bool = True):
        super().__init__()
        self.librosa_layout = librosa_layout
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate, **frame_lengths(sample_rate, win_ms, hop_ms, n_fft),
            n_mels=n_mels, f_min=f_min, f_max=f_max, center=center, mel_scale=mel_scale, norm=norm,
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        mel = self.mel(waves).unsqueeze(1)
        return mel.transpose(2, 3) if self.librosa_layout else mel


class PhasedStft(nn.Module):
    """Phased spectrogram, (B, phases, freq, frames).

    Each STFT bin's log1p magnitude is spread over `phases` phase centres
    c_k = 2 pi k / P, weighted by exp(-d^2 / (2 sigma^2)) where d = |e^{i phi} -
    e^{i c_k}| = 2 |sin((phi - c_k) / 2)| is the chord distance between the bin's
    unit phasor and the centre; sigma = sigma_scale * 2 pi / P. The clip is
    zero-padded to `pad_to` samples (null: the next power of two, 16,384 for
    1 s at 16 kHz). `pool` = (freq, time) average-pools the volume, so a 3D CNN
    over it fits CPU training memory.
    """

    def __init__(self, sample_rate: int, win_ms: float = 16.0, hop_ms: float = 4.0,
                 phases: int = 10, sigma_scale: float = 0.8, pad_to: int | None = None,
                 center: bool = False, pool: list[int] | tuple[int, int] = (2, 2)):
        super().__init__()
        frames = frame_lengths(sample_rate, win_ms, hop_ms)
        n_fft = frames["win_length"]  # the window is the whole FFT frame
        self.n_fft, self.hop_length, self.center = n_fft, frames["hop_length"], center
        self.pad_to = pad_to
        self.sigma = sigma_scale * 2 * math.pi / phases
        self.pool = tuple(int(p) for p in pool)
        if len(self.pool) != 2 or min(self.pool) < 1:
            raise ValueError(f"pool={list(pool)} must be 2 positive ints [freq, time]")
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        centres = 2 * math.pi * torch.arange(phases) / phases
        self.register_buffer("centres", centres, persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        length = int(waves.shape[-1])  # a plain int while tracing (TorchScript export)
        target = self.pad_to or 1 << max(0, (length - 1).bit_length())
        if target > length:
            waves = torch.nn.functional.pad(waves, (0, target - length))
        spec = torch.stft(waves, self.n_fft, self.hop_length, window=self.window,
                          center=self.center, return_complex=True)           # (B, F, T)
        magnitude = torch.log1p(spec.abs()).unsqueeze(1)                     # (B, 1, F, T)
        phase = torch.angle(spec).unsqueeze(1)
        chord = 2 * torch.sin((phase - self.centres.view(1, -1, 1, 1)) / 2).abs()
        volume = magnitude * torch.exp(-chord**2 / (2 * self.sigma**2))      # (B, P, F, T)
        if self.pool != (1, 1):
            volume = torch.nn.functional.avg_pool2d(volume, self.pool, ceil_mode=True)
        return volume


class Waveform(nn.Module):
    """The samples themselves, (B, 1, 1, samples), for backbones that learn their filters."""

    def __init__(self, sample_rate: int):
        super().__init__()

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return waves[:, None, None, :]


TRANSFORMS.update({"raw_power_mel": RawPowerMel, "phased_stft": PhasedStft, "waveform": Waveform})
