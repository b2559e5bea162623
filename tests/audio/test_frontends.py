"""Input normalization: adapted statistics vs per-clip (`utterance`, `cmvn`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioclf.audio.frontends import InputNorm, build_frontend

FLOOR = -13.8  # log(1e-6): the log-mel of zero padding
SPEECH = slice(0, 25)  # frames 25-29 are padding


def features(seed=0):
    clips = torch.randn(4, 1, 10, 30, generator=torch.Generator().manual_seed(seed)) * 3 + 1
    clips[..., 25:] = FLOOR
    return clips


def test_cmvn_removes_any_fixed_per_band_colouring_of_each_clip():
    norm = InputNorm("cmvn")
    clips = features()
    colouring = torch.randn(4, 1, 10, 1) * 5  # a different microphone tilt and level per clip
    coloured = clips.clone()
    coloured[..., SPEECH] += colouring
    assert torch.allclose(norm(coloured)[..., SPEECH], norm(clips)[..., SPEECH], atol=1e-5)
    out = norm(clips)[..., SPEECH]  # statistics over the speech frames, not the padding
    assert torch.allclose(out.mean(dim=3), torch.zeros(4, 1, 10), atol=1e-5)
    assert torch.allclose(out.std(dim=3), torch.ones(4, 1, 10), atol=1e-4)


def test_utterance_removes_each_clips_level_but_keeps_its_band_shape():
    norm = InputNorm("utterance")
    clips = features()
    louder = clips.clone()
    louder[..., SPEECH] += torch.tensor([-4.0, 0.0, 2.0, 7.0]).reshape(4, 1, 1, 1)
    assert torch.allclose(norm(louder)[..., SPEECH], norm(clips)[..., SPEECH], atol=1e-5)
    tilted = clips + torch.linspace(0, 6, 10).reshape(1, 1, 10, 1)
    assert not torch.allclose(norm(tilted), norm(clips), atol=1e-2)  # a tilt is not a level: it stays
    assert torch.allclose(norm(clips)[..., SPEECH].mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)


def test_utterance_tilt_removes_each_clips_level_and_slope_but_keeps_its_formant_shape():
    norm = InputNorm("utterance_tilt")
    clips = features()
    bands = torch.linspace(-1, 1, 10).reshape(1, 1, 10, 1)
    recoloured = clips.clone()  # another level and microphone slope per clip, on the speech frames only
    recoloured[..., SPEECH] += torch.tensor([-4.0, 0.0, 2.0, 7.0]).reshape(4, 1, 1, 1) + \
        torch.tensor([3.0, -2.0, 0.5, -6.0]).reshape(4, 1, 1, 1) * bands
    assert torch.allclose(norm(recoloured)[..., SPEECH], norm(clips)[..., SPEECH], atol=1e-4)
    assert not torch.allclose(InputNorm("utterance")(recoloured), InputNorm("utterance")(clips), atol=1e-2)
    formant = torch.zeros(1, 1, 10, 1)
    formant[:, :, 3] = 8.0  # a bump in the average spectrum is not a slope: it stays (cmvn would flatten it)
    out = norm(clips + formant)[..., SPEECH].mean(dim=3)
    assert (out[:, :, 3] - out[:, :, [2, 4]].mean(dim=2) > 1.0).all()
    cmvn = InputNorm("cmvn")(clips + formant)[..., SPEECH].mean(dim=3)
    assert torch.allclose(cmvn[:, :, 3], torch.zeros(4, 1), atol=1e-5)


def test_utterance_tilt_on_mfcc_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="^normalize=utterance_tilt removes a slope across frequency bands, "
                                         "and MFCCs are not bands: use features=logmel or normalize=utterance$"):
        build_frontend({"name": "mfcc", "normalize": "utterance_tilt"}, 8000)


def test_per_clip_modes_need_no_adaptation_and_save_no_statistics():
    for mode in InputNorm.PER_CLIP:
        frontend = build_frontend({"name": "logmel", "normalize": mode}, 8000)
        assert bool(frontend.norm.adapted)
        frontend.adapt(np.random.default_rng(0).integers(-3000, 3000, (8, 8000)).astype(np.int16))
        assert frontend.norm.mean.shape == (1,) and float(frontend.norm.mean) == 0.0
        restored = build_frontend({"name": "logmel", "normalize": mode}, 8000)
        restored.load_state_dict(frontend.state_dict())
        waves = torch.randn(2, 8000) * 0.1
        assert torch.equal(restored(waves), frontend(waves))


def test_log_mel_cmvn_is_blind_to_recording_gain():
    frontend = build_frontend({"name": "logmel", "normalize": "cmvn"}, 8000).eval()
    waves = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    assert torch.allclose(frontend(waves), frontend(waves * 0.25), atol=1e-2)  # up to the log floor (1e-6)
    global_norm = build_frontend({"name": "logmel", "normalize": "global"}, 8000).eval()
    global_norm.adapt((waves.numpy() * 32768).astype(np.int16))
    assert not torch.allclose(global_norm(waves), global_norm(waves * 0.25), atol=1e-1)


def test_unknown_mode_names_the_choices():
    with pytest.raises(ValueError, match="^normalize=clip is unknown: use one of none, global, per_band, "
                                         "utterance, utterance_tilt, cmvn$"):
        InputNorm("clip")


def test_per_clip_statistics_ignore_zero_padding_and_silence_so_clip_length_does_not_matter():
    frontend = build_frontend({"name": "logmel", "normalize": "cmvn"}, 8000).eval()
    word = torch.randn(1, 3000, generator=torch.Generator().manual_seed(2)) * 0.1
    short = torch.nn.functional.pad(word, (0, 5000))  # a 375 ms clip padded to 1 s, as the clip bank does
    longer = torch.nn.functional.pad(word, (0, 1000))
    frames = 3000 // 80 - 1  # frames whose window holds no padding
    assert torch.allclose(frontend(short)[..., 2:frames], frontend(longer)[..., 2:frames], atol=1e-4)
    room_noise = torch.randn(2400, generator=torch.Generator().manual_seed(3)) * 1e-4
    lead_in = torch.cat([room_noise[-800:], word[0], torch.zeros(4200)])[None]  # 100 ms of a quiet room first
    long_lead_in = torch.cat([room_noise, word[0], torch.zeros(2600)])[None]  # 300 ms
    shift = (2400 - 800) // 80
    assert torch.allclose(frontend(lead_in)[..., 10 - 2:10 + frames],
                          frontend(long_lead_in)[..., 10 - 2 + shift:10 + frames + shift], atol=1e-4)
    silent = InputNorm("cmvn")(torch.full((1, 1, 4, 10), -13.8))
    assert torch.isfinite(silent).all()
