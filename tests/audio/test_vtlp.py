"""VTLP on log-mel bands: a formant at f moves to the band at a f; identity in eval and at a = 1."""

from __future__ import annotations

import math

import pytest
import torch

from audioclf.audio.frontends import VocalTractWarp, build_frontend, hz_to_mel

RATE = 8000
LOGMEL = {"name": "logmel", "n_mels": 40, "normalize": "none"}


def tone(hz: float, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(RATE * seconds)) / RATE
    return torch.sin(2 * math.pi * hz * t)[None].repeat(3, 1)


def peak_band(frontend, waves) -> torch.Tensor:
    return frontend(waves).mean(dim=3)[:, 0].argmax(dim=1)


def band_of(frontend, hz: float) -> int:
    centers = frontend.warp.centers_hz
    return int((hz_to_mel(centers) - hz_to_mel(torch.tensor(hz))).abs().argmin())


@pytest.mark.parametrize("alpha", [0.9, 1.12])
def test_a_tone_moves_to_the_band_at_alpha_times_its_frequency(alpha):
    frontend = build_frontend(LOGMEL, RATE, vtlp=(alpha, alpha)).train()
    assert (peak_band(frontend, tone(1000.0)) == band_of(frontend, alpha * 1000.0)).all()
    assert band_of(frontend, alpha * 1000.0) != band_of(frontend, 1000.0)  # the test can tell them apart


def test_identity_in_eval_and_at_alpha_one():
    waves = tone(700.0) + 0.3 * tone(2300.0)
    warped = build_frontend(LOGMEL, RATE, vtlp=(0.9, 1.1))
    plain = build_frontend(LOGMEL, RATE)
    assert torch.equal(warped.eval()(waves), plain.eval()(waves))
    exact = VocalTractWarp(plain.transform.mel, (1.0, 1.0 + 1e-9)).train()  # a = 1 reads each band at itself
    features = plain(waves)
    assert torch.allclose(exact(features), features, atol=1e-3)


def test_each_clip_draws_its_own_factor_and_the_top_band_stays():
    frontend = build_frontend(LOGMEL, RATE, vtlp=(0.8, 1.2)).train()
    centers = frontend.warp.centers_hz
    source = frontend.warp.source_hz(torch.tensor([0.8, 1.0, 1.2]))
    assert torch.allclose(source[1], centers)
    assert torch.allclose(source[:, -1], centers[-1].expand(3), rtol=0.05)  # near f_max the warp lets go
    assert (source.diff(dim=1) > 0).all()  # and stays monotonic through its knee
    assert torch.allclose(source[2, :10], centers[:10] / 1.2)
    torch.manual_seed(0)
    peaks = peak_band(frontend, tone(1000.0).repeat(8, 1))
    assert len(set(peaks.tolist())) > 1


def test_vtlp_needs_mel_bands_and_a_sane_range():
    with pytest.raises(ValueError, match=r"^vtlp=\[0.9, 1.1\] warps mel bands, and the mfcc frontend has none: "
                                         r"use features=logmel or vtlp=\[1.0,1.0\]$"):
        build_frontend({"name": "mfcc"}, RATE, vtlp=(0.9, 1.1))
    with pytest.raises(ValueError, match=r"^vtlp=\[1.2, 0.9\] must be \[low, high\]"):
        build_frontend(LOGMEL, RATE, vtlp=(1.2, 0.9))
    assert isinstance(build_frontend({"name": "mfcc"}, RATE, vtlp=(1.0, 1.0)).warp, torch.nn.Identity)
