"""Waveform augmentation, batched on the device, for training batches only.

Speed perturbation (resampling), time shift (zero-filled), gain, background
noise mixed at either a drawn volume (kws_streaming style) or a drawn
signal-to-noise ratio, and fresh noise crops for `_silence_` clips. Mixup on
features (`mixup`) is used by the LightningModule's training step.

Every draw comes from the global torch RNG of the batch's device, so
`L.seed_everything(seed)` makes the augmented batches reproducible.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

# augment.* keys that act on features (the module's frontend and training step), not on waveforms here
FEATURE_KEYS = ("spec_augment", "mixup_alpha", "vtlp")
# augment.* keys of StreamWindows (they change labels, so they run before the waveform augmentation)
STREAM_KEYS = ("stream_cut_prob", "stream_cut_visible", "stream_anywhere", "stream_junction_prob")
# augment.* keys of the max-pooling loss's training segments (SegmentWindows; the module pools over their windows)
SEGMENT_KEYS = ("max_pool_windows", "max_pool_span_ms")


def waveform_args(augment: dict) -> dict:
    """The augment.* keys WaveAugment takes (noise_dir among them: the caller turns it into a noise bank)."""
    return {key: value for key, value in augment.items() if key not in (*FEATURE_KEYS, *STREAM_KEYS, *SEGMENT_KEYS)}


class NoiseBank(nn.Module):
    """Noise recordings concatenated into one buffer; random crops are gathered in one op."""

    def __init__(self, recordings: list[np.ndarray]):
        super().__init__()
        lengths = torch.tensor([len(r) for r in recordings])
        samples = torch.from_numpy(np.concatenate(recordings))
        self.register_buffer("samples", samples, persistent=False)
        self.register_buffer("starts", torch.cumsum(lengths, 0) - lengths, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)

    @classmethod
    def from_recordings(cls, recordings: list[np.ndarray], min_samples: int,
                        origin: str) -> NoiseBank:
        recordings = [r.astype(np.float32) for r in recordings if len(r) >= min_samples]
        if not recordings:
            raise ValueError(
                f"{origin} holds no noise recording of at least {min_samples} samples: "
                "point noise_dir at a folder of noise WAVs"
            )
        return cls(recordings)

    def crops(self, count: int, length: int) -> torch.Tensor:
        """(count, length) crops, each from a random file at a random offset."""
        files = torch.randint(len(self.lengths), (count,), device=self.samples.device)
        room = (self.lengths[files] - length + 1).float()
        offsets = (torch.rand(count, device=self.samples.device) * room).long()
        steps = torch.arange(length, device=self.samples.device)
        index = (self.starts[files] + offsets)[:, None] + steps
        return self.samples[index]


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()


def uniform(low: float, high: float, count: int, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, 1, device=device)


def low_high(name: str, value, example: str) -> tuple[float, float]:
    """A [low, high] range option as two floats; anything else is a ValueError naming `name`."""
    if len(value) != 2:
        raise ValueError(f"{name}={list(value)} must be [low, high], two numbers, e.g. {name}={example}")
    return float(value[0]), float(value[1])


def speed_factors(speed: tuple[float, float], steps: int) -> list[Fraction]:
    """`steps` evenly spaced speed factors over [low, high], as small fractions for resampling."""
    low, high = low_high("speed", speed, "[0.9,1.1]")
    if not 0 < low <= high:
        raise ValueError(f"speed={list(speed)} must be [low, high] with 0 < low <= high, e.g. speed=[0.9,1.1]")
    values = [low] if low == high or steps <= 1 else np.linspace(low, high, int(steps)).tolist()
    return sorted({Fraction(v).limit_denominator(50) for v in values})


def change_speed(waves: torch.Tensor, factor: Fraction, length: int | None = None) -> torch.Tensor:
    """Play (B, samples) clips `factor` times faster by band-limited resampling.

    The result lasts samples / factor (pitch moves with tempo, as in Kaldi's
    speed perturbation); with `length` it is cropped or zero-padded at the end,
    so the start of the clip stays put (clips shorter than the window are
    padded at the end when the clip bank is built).
    """
    factor = Fraction(factor)
    out = waves if factor == 1 else AF.resample(waves, factor.numerator, factor.denominator)
    if length is None or out.shape[-1] == length:
        return out
    if out.shape[-1] > length:
        return out[..., :length]
    return F.pad(out, (0, length - out.shape[-1]))


class WaveAugment(nn.Module):
    def __init__(
        self,
        sample_rate: int,
        shift_ms: float = 0.0,
        gain_db: tuple[float, float] = (0.0, 0.0),
        speed: tuple[float, float] = (1.0, 1.0),
        speed_steps: int = 5,
        noise_prob: float = 0.0,
        noise_mode: str = "volume",
        noise_volume: tuple[float, float] = (0.0, 0.1),
        noise_snr_db: tuple[float, float] = (5.0, 20.0),
        noise_bank: NoiseBank | None = None,
        fresh_silence: bool = False,
        silence_volume: tuple[float, float] = (0.0, 1.0),
        silence_label: int | None = None,
        white_noise_db: tuple[float, float] | None = None,
        white_noise_prob: float = 1.0,
        tilt: tuple[float, float] = (0.0, 0.0),
    ):
        super().__init__()
        if noise_mode not in ("volume", "snr"):
            raise ValueError(f"noise_mode={noise_mode} is unknown: use volume or snr")
        self.max_shift = int(round(shift_ms * sample_rate / 1000))
        self.gain_db = tuple(gain_db)
        self.speeds = speed_factors(speed, speed_steps)
        self.noise_prob, self.noise_mode = noise_prob, noise_mode
        self.noise_volume, self.noise_snr_db = tuple(noise_volume), tuple(noise_snr_db)
        self.noise_bank = noise_bank
        self.silence_volume = tuple(silence_volume)
        self.white_noise_db = tuple(white_noise_db) if white_noise_db else None
        self.white_noise_prob = white_noise_prob
        self.tilt = low_high("tilt", tilt, "[-0.7,0.7]")
        if not all(-1.0 < a < 1.0 for a in self.tilt):
            raise ValueError(f"tilt={list(self.tilt)} must lie inside (-1, 1): it is a first-order filter coefficient")
        # `_silence_` clips get a fresh noise crop at every step instead of their fixed bank crop
        self.silence_label = silence_label if fresh_silence and noise_bank is not None else None

    def forward(self, waves: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        waves = self.speed(waves)
        waves = self.shift(waves)
        if self.tilt != (0.0, 0.0):
            waves = self.tilt_spectrum(waves)
        if self.gain_db != (0.0, 0.0):
            gain = uniform(*self.gain_db, len(waves), waves.device)
            waves = waves * 10 ** (gain / 20)
        if self.noise_bank is not None and self.noise_prob > 0:
            waves = self.add_noise(waves)
        if self.silence_label is not None and labels is not None:
            waves = self.refresh_silence(waves, labels)
        if self.white_noise_db is not None:
            waves = self.add_white_noise(waves)
        return waves

    def tilt_spectrum(self, waves: torch.Tensor) -> torch.Tensor:
        """A random microphone colouring: y[n] = x[n] - a x[n-1] with a drawn in `tilt` per clip
        (a > 0 brightens like pre-emphasis: 0.7 is -10 dB at 0 Hz and +5 dB at Nyquist; a < 0 darkens)."""
        a = uniform(*self.tilt, len(waves), waves.device)
        previous = torch.nn.functional.pad(waves[:, :-1], (1, 0))
        return waves - a * previous

    def add_white_noise(self, waves: torch.Tensor) -> torch.Tensor:
        """Gaussian noise of a level drawn in `white_noise_db` (dB full scale: -46 dB is a standard
        deviation of 0.005) on a share `white_noise_prob` of the clips (NeMo's WhiteNoisePerturbation)."""
        batch = len(waves)
        level = 10 ** (uniform(*self.white_noise_db, batch, waves.device) / 20)
        mixed = torch.rand(batch, 1, device=waves.device) < self.white_noise_prob
        return waves + torch.randn_like(waves) * level * mixed

    def speed(self, waves: torch.Tensor) -> torch.Tensor:
        """Each clip at a speed factor drawn from `self.speeds`; one resampling call per factor."""
        if self.speeds == [1]:
            return waves
        choice = torch.randint(len(self.speeds), (len(waves),), device=waves.device)
        out = waves.clone()
        for i, factor in enumerate(self.speeds):
            if factor == 1:
                continue
            rows = (choice == i).nonzero().squeeze(1)
            if len(rows):
                out[rows] = change_speed(waves[rows], factor, waves.shape[-1])
        return out

    def shift(self, waves: torch.Tensor) -> torch.Tensor:
        """Shift each clip by up to +-max_shift samples, filling with zeros (no wrap-around)."""
        if self.max_shift == 0:
            return waves
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (len(waves),), device=waves.device)
        return shift_clips(waves, shifts)

    def add_noise(self, waves: torch.Tensor) -> torch.Tensor:
        batch, length = waves.shape
        noise = self.noise_bank.crops(batch, length)
        if self.noise_mode == "volume":
            scale = uniform(*self.noise_volume, batch, waves.device)
        else:
            snr_db = uniform(*self.noise_snr_db, batch, waves.device)
            # torchaudio's add_noise has this SNR definition but gives NaN for a silent noise crop (log10 of 0)
            scale = rms(waves) / (rms(noise).clamp_min(1e-8) * 10 ** (snr_db / 20))
        mixed = torch.rand(batch, 1, device=waves.device) < self.noise_prob
        return waves + noise * scale * mixed

    def refresh_silence(self, waves: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Replace `_silence_` clips by fresh noise crops at a volume drawn from silence_volume."""
        batch, length = waves.shape
        volume = uniform(*self.silence_volume, batch, waves.device)
        fresh = self.noise_bank.crops(batch, length) * volume
        return torch.where((labels == self.silence_label)[:, None], fresh, waves)


def speech_bounds(waves: torch.Tensor, frame: int, floor_db: float = 35.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) sample offsets of each clip's speech: from the first to the last `frame`-sample
    frame whose level is within `floor_db` of the clip's loudest frame. (B,) long tensors each."""
    batch, length = waves.shape
    frames = waves[:, : length - length % frame].reshape(batch, -1, frame)
    level = 10 * torch.log10(frames.pow(2).mean(-1).clamp_min(1e-10))
    active = level >= level.amax(-1, keepdim=True) - floor_db
    first = active.float().argmax(-1)
    last = active.shape[-1] - 1 - active.flip(-1).float().argmax(-1)
    return first * frame, (last + 1) * frame


def shift_clips(waves: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move each clip right by `shifts` samples (left when negative), filling with zeros."""
    length = waves.shape[-1]
    source = torch.arange(length, device=waves.device) - shifts[:, None]
    inside = (source >= 0) & (source < length)
    return torch.gather(waves, 1, source.clamp(0, length - 1)) * inside


class StreamWindows(nn.Module):
    """Training clips that look like the windows a detector sees on a live stream (train only).

    - `cut_prob`: a share of the keyword clips is moved so that at most `cut_visible` of the word's
      speech stays inside the window, and relabelled `_unknown_`: on a stream most windows hold a word
      that is entering or leaving, and a clip-trained model fires on them.
    - `anywhere`: the other keyword clips are moved so the word lies anywhere it fits whole, not only
      near the centre where Speech Commands puts it (a sliding window meets it at every offset).
    - `junction_prob`: a share of the word clips (keywords and `_unknown_`) is replaced by a junction, the
      end of another word (at most `cut_visible` of its speech) at the left edge and the start of this one
      at the right, labelled `_unknown_`: a sliding window spans every gap between two words.
    """

    def __init__(self, sample_rate: int, keyword_labels: list[int], unknown_label: int | None,
                 cut_prob: float = 0.0, cut_visible: float = 0.4, anywhere: bool = False,
                 junction_prob: float = 0.0):
        super().__init__()
        for name, share in (("stream_cut_prob", cut_prob), ("stream_junction_prob", junction_prob)):
            if share > 0 and unknown_label is None:
                raise ValueError(f"{name}={share} relabels windows as _unknown_, and the data has "
                                 f"no _unknown_ class: use data.labels=kws12 or {name}=0")
        if not 0 <= cut_prob <= 1 or not 0 <= junction_prob <= 1 or not 0 <= cut_visible < 1:
            raise ValueError(f"stream_cut_prob={cut_prob}, stream_junction_prob={junction_prob} and "
                             f"stream_cut_visible={cut_visible} must be shares: 0 <= stream_cut_prob <= 1, "
                             "0 <= stream_junction_prob <= 1, 0 <= stream_cut_visible < 1")
        self.frame = max(1, sample_rate // 100)  # 10 ms
        self.register_buffer("keywords", torch.tensor(sorted(keyword_labels), dtype=torch.long), persistent=False)
        self.unknown_label = unknown_label
        self.cut_prob, self.cut_visible, self.anywhere = cut_prob, cut_visible, anywhere
        self.junction_prob = junction_prob

    @property
    def active(self) -> bool:
        return self.cut_prob > 0 or self.anywhere or self.junction_prob > 0

    def forward(self, waves: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length = waves.shape
        device = waves.device
        is_keyword = torch.isin(labels, self.keywords.to(device))
        start, end = speech_bounds(waves, self.frame)
        cut = is_keyword & (torch.rand(batch, device=device) < self.cut_prob)
        shifts = torch.zeros(batch, dtype=torch.long, device=device)
        if self.anywhere:
            room = (length - end + start + 1).clamp_min(1)  # offsets where the word fits whole
            shifts = torch.where(is_keyword, (torch.rand(batch, device=device) * room).long() - start, shifts)
        visible = (torch.rand(batch, device=device) * self.cut_visible * (end - start)).long()
        leaving = torch.rand(batch, device=device) < 0.5
        cut_shift = torch.where(leaving, length - visible - start, visible - end)  # right edge / left edge
        shifts = torch.where(cut, cut_shift, shifts)
        labels = torch.where(cut, torch.full_like(labels, self.unknown_label or 0), labels)
        if self.junction_prob > 0:
            is_word = (is_keyword | (labels == self.unknown_label)) & ~cut
            return self.junctions(waves, labels, is_word, start, end, shift_clips(waves, shifts))
        return shift_clips(waves, shifts), labels

    def junctions(self, waves: torch.Tensor, labels: torch.Tensor, is_word: torch.Tensor, start: torch.Tensor,
                  end: torch.Tensor, shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace a share of the word clips by a junction: another word clip leaving at the left edge,
        this one entering at the right, each showing at most `cut_visible` of its speech."""
        batch, length = waves.shape
        device = waves.device
        words = torch.nonzero(is_word).flatten()
        junction = is_word & (torch.rand(batch, device=device) < self.junction_prob)
        if len(words) < 2 or not junction.any():
            return shifted, labels
        partner = words[torch.randint(len(words), (batch,), device=device)]
        visible = (torch.rand(2, batch, device=device) * self.cut_visible * (end - start)).long()
        entering = shift_clips(waves, length - visible[0] - start)
        leaving = shift_clips(waves[partner], visible[1] - end[partner])
        mixed = torch.where(junction[:, None], entering + leaving, shifted)
        return mixed, torch.where(junction, torch.full_like(labels, self.unknown_label), labels)


class SegmentWindows(nn.Module):
    """Training segments for the max-pooling loss (train only; wekws's `max_pooling` on a window classifier).

    `place` puts each clip at a random offset in a segment `span_ms` longer than the window, which the waveform
    augmentation then treats as one recording (its noise and gain span the whole segment); `cut` slices
    `windows` windows evenly spaced over it, (B, segment) -> (B * windows, window), as a sliding detector sees
    the segment. The module's loss keeps one window per segment (`max_pool_window`).
    """

    def __init__(self, num_samples: int, sample_rate: int, windows: int = 0, span_ms: float = 400.0):
        super().__init__()
        if windows != int(windows) or windows < 0 or span_ms < 0 or (windows > 1 and span_ms == 0):
            raise ValueError(f"max_pool_windows={windows} and max_pool_span_ms={span_ms} must be a whole number "
                             "of windows >= 0 (0 or 1: off) and a span > 0 ms to slide them over, "
                             "e.g. max_pool_windows=5 max_pool_span_ms=400")
        self.num_samples, self.count = num_samples, int(windows)
        self.span = int(round(span_ms * sample_rate / 1000))

    @property
    def active(self) -> bool:
        return self.count > 1

    @property
    def segment_samples(self) -> int:
        return self.num_samples + self.span

    def place(self, waves: torch.Tensor) -> torch.Tensor:
        batch = len(waves)
        offsets = (torch.rand(batch, device=waves.device) * (self.span + 1)).long()
        index = offsets[:, None] + torch.arange(self.num_samples, device=waves.device)
        return torch.zeros(batch, self.segment_samples, device=waves.device).scatter(1, index, waves)

    def cut(self, segments: torch.Tensor) -> torch.Tensor:
        offsets = torch.linspace(0, self.span, self.count, device=segments.device).round().long()
        index = offsets[:, None] + torch.arange(self.num_samples, device=segments.device)
        return segments[:, index].reshape(-1, self.num_samples)


def check_one_loss_change(max_pool_windows: int, mixup_alpha: float) -> None:
    """The max-pooling loss and Mixup each replace the plain cross-entropy: only one may be on."""
    if max_pool_windows > 1 and mixup_alpha > 0:
        raise ValueError("max_pool_windows and mixup_alpha both change the loss: use one of them "
                         "(augment.max_pool_windows=0 or augment.mixup_alpha=0)")


def max_pool_window(logits: torch.Tensor, labels: torch.Tensor, keywords: torch.Tensor) -> torch.Tensor:
    """The window of each segment the max-pooling loss trains on, from (B, windows, classes) logits:
    for a keyword, the window that scores it highest (one window must fire, not every window it crosses);
    for anything else, the window closest to a false alarm (the highest keyword probability), so no window
    of background or of another word may fire. (B,) window indices."""
    probabilities = logits.softmax(-1)
    target = probabilities.gather(-1, labels[:, None, None].expand(-1, logits.shape[1], 1)).squeeze(-1)
    alarm = probabilities[..., keywords].amax(-1) if len(keywords) else torch.zeros_like(target)
    return torch.where(torch.isin(labels, keywords)[:, None], target, alarm).argmax(1)


def mixup(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
          alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a random partner of the batch: x = l x_i + (1 - l) x_j, l ~ Beta(a, a)
    per example, and return the matching soft targets l onehot(y_i) + (1 - l) onehot(y_j).

    Cross-entropy against these targets equals l CE(y_i) + (1 - l) CE(y_j).
    """
    batch = len(labels)
    lam = torch.distributions.Beta(alpha, alpha).sample((batch,)).to(features.device)
    partner = torch.randperm(batch, device=features.device)
    shape = (batch,) + (1,) * (features.dim() - 1)
    mixed = lam.view(shape) * features + (1 - lam.view(shape)) * features[partner]
    onehot = F.one_hot(labels, num_classes).to(features.dtype)
    targets = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]
    return mixed, targets
