"""The math of each augmentation, where it applies (training only), and seeding."""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioclf.audio.augment import NoiseBank, WaveAugment, change_speed, mixup, speed_factors
from audioclf.audio.frontends import SpecAugment
from audioclf.tasks import build, train
from tests.conftest import SMALL_SYNTHETIC, compose_config, make_speech_commands, write_wav

RATE = 8000


def noise_bank(*recordings: np.ndarray) -> NoiseBank:
    return NoiseBank.from_recordings(list(recordings), RATE, "test")


def white(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.2, int(RATE * seconds)).astype(np.float32)


def tones(batch: int, length: int = RATE) -> torch.Tensor:
    t = torch.arange(length) / RATE
    freqs = torch.linspace(200, 900, batch)[:, None]
    return 0.3 * torch.sin(2 * math.pi * freqs * t)


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1).sqrt()


@pytest.fixture
def noise_dir(tmp_path):
    rng = np.random.default_rng(3)
    for name in ("white", "hum"):
        write_wav(
            tmp_path / "noise" / f"{name}.wav",
            rng.normal(0, 0.1, 16000 * 3).astype(np.float32),
            16000,
        )
    return tmp_path / "noise"


def test_snr_mode_lands_in_range():
    torch.manual_seed(0)
    augment = WaveAugment(
        RATE,
        noise_prob=1.0,
        noise_mode="snr",
        noise_snr_db=(5.0, 20.0),
        noise_bank=noise_bank(white(), white(seed=1) * 3),
    )
    clean = tones(256)
    mixed = augment(clean)
    snr = 20 * torch.log10(rms(clean) / rms(mixed - clean))
    assert snr.min() >= 5.0 - 1e-3 and snr.max() <= 20.0 + 1e-3
    assert snr.min() < 7 and snr.max() > 18  # the whole range is used


def test_volume_mode_bounds_and_probability():
    torch.manual_seed(0)
    ones = np.ones(RATE * 2, dtype=np.float32)  # a constant recording: every crop is all ones
    augment = WaveAugment(
        RATE, noise_prob=0.5, noise_volume=(0.0, 0.1), noise_bank=noise_bank(ones)
    )
    out = augment(torch.zeros(4000, RATE))
    volume = out[:, 0]
    assert torch.equal(out, volume[:, None].expand_as(out))  # one scale per clip
    assert volume.min() >= 0 and volume.max() <= 0.1 + 1e-7
    noisy = volume > 0
    assert abs(noisy.float().mean() - 0.5) < 0.05
    assert volume[noisy].max() > 0.095 and volume[noisy].min() < 0.005


def test_shift_is_bounded_and_zero_filled():
    torch.manual_seed(0)
    augment = WaveAugment(RATE, shift_ms=100.0)
    length, max_shift = 2000, 800
    ramp = torch.arange(1, length + 1, dtype=torch.float32).repeat(
        500, 1
    )  # every sample distinct, > 0
    out = augment(ramp)
    shifts = []
    for row in out:
        kept = row.nonzero().squeeze(1)
        shift = int(kept[0]) - int(row[kept[0]]) + 1  # out[t] = ramp[t - shift]
        assert abs(shift) <= max_shift
        t = torch.arange(length)
        expected = torch.where(
            (t - shift >= 0) & (t - shift < length), (t - shift + 1).float(), 0.0
        )
        assert torch.equal(row, expected)  # zero fill on the vacated side, never wrap-around
        shifts.append(shift)
    assert min(shifts) < -700 and max(shifts) > 700


def test_gain_range():
    torch.manual_seed(0)
    out = WaveAugment(RATE, gain_db=(-6.0, 6.0))(torch.ones(2000, 100))
    gain_db = 20 * torch.log10(out[:, 0])
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert gain_db.min() >= -6 - 1e-4 and gain_db.max() <= 6 + 1e-4
    assert gain_db.min() < -5.9 and gain_db.max() > 5.9


def test_tilt_is_a_first_order_filter_that_brightens_or_darkens_each_clip():
    torch.manual_seed(0)
    waves = torch.randn(400, RATE)
    out = WaveAugment(RATE, tilt=(-0.7, 0.7))(waves)
    previous = waves[:, :-1]
    a = ((waves[:, 1:] - out[:, 1:]) * previous).sum(dim=1, keepdim=True) / (previous**2).sum(dim=1, keepdim=True)
    assert torch.allclose(out[:, 1:], waves[:, 1:] - a * previous, atol=1e-5)  # y[n] = x[n] - a x[n-1], one a a clip
    assert torch.equal(out[:, 0], waves[:, 0])
    assert a.min() >= -0.7 - 1e-4 and a.max() <= 0.7 + 1e-4 and a.min() < -0.6 and a.max() > 0.6
    spectrum = torch.fft.rfft(out, dim=1).abs() ** 2
    low, high = spectrum[:, 1 : RATE // 8].mean(dim=1), spectrum[:, 3 * RATE // 8 :].mean(dim=1)
    tilt_db = 10 * torch.log10(high / low)  # white input: the filter's own high/low balance
    assert (tilt_db[a[:, 0] > 0.5] > 6).all() and (tilt_db[a[:, 0] < -0.5] < -6).all()
    assert torch.equal(WaveAugment(RATE)(waves), waves)
    with pytest.raises(ValueError, match=r"^tilt=\[0.5, 1.0\] must lie inside \(-1, 1\)"):
        WaveAugment(RATE, tilt=(0.5, 1.0))


def runs(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean tensor."""
    edges = torch.diff(torch.cat([torch.zeros(1), mask.float(), torch.zeros(1)]))
    starts, ends = (edges == 1).nonzero().squeeze(1), (edges == -1).nonzero().squeeze(1)
    return (ends - starts).tolist()


@pytest.mark.parametrize("count", [1, 2])
def test_spec_augment_mask_widths_and_count(count):
    torch.manual_seed(0)
    bins, frames, freq_width, time_width = 40, 100, 7, 12
    spec = SpecAugment(
        freq_masks=count, freq_width=freq_width, time_masks=count, time_width=time_width
    )
    features = torch.ones(400, 1, bins, frames)
    out = spec.train()(features)
    widest = [0, 0]
    for example in out[:, 0]:
        masked_bins = (example == 0).all(dim=1)
        masked_frames = (example == 0).all(dim=0)
        assert torch.equal(
            example == 0, masked_bins[:, None] | masked_frames[None, :]
        )  # only masks
        for axis, (mask, width) in enumerate(
            ((masked_bins, freq_width), (masked_frames, time_width))
        ):
            lengths = runs(mask)
            assert len(lengths) <= count and sum(lengths) <= count * width
            if count == 1:
                assert all(n <= width for n in lengths)
                widest[axis] = max([widest[axis], *lengths])
    if count == 1:
        assert widest == [freq_width, time_width]
    assert torch.equal(spec.eval()(features), features)


def test_speed_perturbation_changes_duration():
    factors = speed_factors((0.9, 1.1), 5)
    assert [float(f) for f in factors] == pytest.approx([0.9, 0.95, 1.0, 1.05, 1.1])
    burst = torch.zeros(2, RATE)
    burst[:, :4000] = tones(2, 4000)
    for factor in factors:
        stretched = change_speed(burst, factor)
        assert stretched.shape[-1] == math.ceil(RATE / factor)
        voiced = int((stretched.abs() > 1e-3).nonzero()[:, 1].max()) + 1
        assert voiced == pytest.approx(4000 / float(factor), rel=0.01)
        fitted = change_speed(burst, factor, RATE)
        assert fitted.shape[-1] == RATE
        assert torch.equal(fitted[:, : min(RATE, stretched.shape[-1])], stretched[:, :RATE])
    torch.manual_seed(0)
    out = WaveAugment(RATE, speed=(0.9, 1.1), speed_steps=5)(burst.repeat(50, 1))
    assert out.shape == (100, RATE)
    voiced = (out.abs() > 1e-3).float().cumsum(1).argmax(1) + 1
    expected = torch.tensor([4000 / float(f) for f in factors])
    assert ((voiced[:, None] - expected).abs() < 45).any(1).all()
    assert len(voiced.unique()) >= 4


def test_mixup_label_math():
    torch.manual_seed(0)
    batch, classes = 32, 5
    features = torch.eye(batch).reshape(batch, 1, batch, 1)  # example i is the unit vector e_i
    labels = torch.randint(classes, (batch,))
    mixed, targets = mixup(features, labels, classes, alpha=0.4)
    assert mixed.shape == features.shape
    assert torch.allclose(targets.sum(1), torch.ones(batch)) and (targets >= 0).all()
    logits = torch.randn(batch, classes)
    for i in range(batch):
        row = mixed[i, 0, :, 0]  # lam e_i + (1 - lam) e_partner
        others = [j for j in row.nonzero().squeeze(1).tolist() if j != i]
        assert len(others) <= 1
        partner = others[0] if others else i
        lam = float(row[i]) if others else 1.0
        assert float(row[partner]) == pytest.approx(1 - lam if others else 1.0, abs=1e-6)
        expected = lam * F.one_hot(labels[i], classes) + (1 - lam) * F.one_hot(
            labels[partner], classes
        )
        assert torch.allclose(targets[i], expected.float(), atol=1e-6)
        soft = F.cross_entropy(logits[i : i + 1], targets[i : i + 1])
        hard = lam * F.cross_entropy(logits[i : i + 1], labels[i : i + 1]) + (
            1 - lam
        ) * F.cross_entropy(logits[i : i + 1], labels[partner : partner + 1])
        assert soft == pytest.approx(float(hard), abs=1e-5)


def datamodule(tmp_path, overrides):
    cfg = compose_config(tmp_path, overrides)
    dm = build.build_datamodule(cfg)
    dm.setup("fit")
    return cfg, dm


def augmented_batch(dm, training: bool = True):
    dm.trainer = SimpleNamespace(training=training)
    batch = next(iter(dm.train_dataloader()))
    return dm.on_after_batch_transfer(batch, 0)


def test_seeded_determinism(tmp_path, noise_dir):
    overrides = [
        *SMALL_SYNTHETIC,
        "augment=strong",
        f"augment.noise_dir={noise_dir}",
        "augment.noise_mode=snr",
    ]
    batches = []
    for seed in (7, 7, 8):
        L.seed_everything(seed)
        cfg, dm = datamodule(tmp_path / str(seed), [*overrides, f"seed={seed}"])
        waves, labels = augmented_batch(dm)
        spec = SpecAugment(2, 7, 2, 12).train()(waves.reshape(len(waves), 1, 100, -1))
        features, targets = mixup(spec, labels, dm.num_classes, 0.4)
        batches.append((waves, labels, features, targets))
    for same, other in zip(batches[0], batches[1], strict=True):
        assert torch.equal(same, other)
    assert not torch.equal(batches[0][0], batches[2][0])


def test_no_augmentation_at_validation_or_test(tmp_path, noise_dir):
    cfg, dm = datamodule(
        tmp_path,
        [
            *SMALL_SYNTHETIC,
            "augment=strong",
            f"augment.noise_dir={noise_dir}",
            "augment.mixup_alpha=0.4",
        ],
    )
    raw = next(iter(dm.train_dataloader()))
    clean, _ = augmented_batch(dm, training=False)
    assert torch.equal(clean, raw[0].float() / 32768)
    noisy, _ = augmented_batch(dm, training=True)
    assert not torch.equal(noisy, clean)

    calls = []
    augment_forward = dm.augment.forward
    dm.augment.forward = lambda *args: calls.append(len(args[0])) or augment_forward(*args)
    model = build.build_model(cfg, dm)
    model.frontend.adapt(dm.banks["train"].waves)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    assert len(calls) == 2  # the two training batches; never the sanity check or validation
    trainer.test(model, datamodule=dm, verbose=False)
    trainer.validate(model, datamodule=dm, verbose=False)
    assert len(calls) == 2
    model.eval()
    assert torch.equal(model.frontend(clean), model.frontend(clean))  # SpecAugment off in eval


def kws12(tmp_path, *overrides):
    root = make_speech_commands(tmp_path / "sc", per_word=6)
    return datamodule(tmp_path, ["data=speech_commands", f"data.root={root}", *overrides])[1]


def test_kws12_percentages_fresh_silence_and_balanced_sampler(tmp_path):
    dm = kws12(
        tmp_path,
        "data.unknown_percentage=25",
        "data.silence_percentage=10",
        "augment.fresh_silence=true",
        "augment.silence_volume=[0.5,1.0]",
        "data.batch_size=64",
    )
    names = dm.class_names
    labels = np.asarray(dm.banks["train"].labels)
    counts = np.bincount(labels, minlength=len(names))
    known = 40  # ten commands x four training clips in the fixture
    assert counts[names.index("_unknown_")] == math.ceil(known * 0.25)
    assert counts[names.index("_silence_")] == math.ceil(known * 0.10)

    raw_waves, raw_labels = next(iter(dm.train_dataloader()))
    silent = raw_labels == names.index("_silence_")
    first, _ = augmented_batch(dm)
    second, _ = augmented_batch(dm)
    clean = raw_waves.float() / 32768
    assert torch.equal(first[~silent], clean[~silent])  # augment=none otherwise
    assert not torch.equal(first[silent], clean[silent])
    assert not torch.equal(first[silent], second[silent])  # fresh crops every step
    assert (rms(first[silent]) > 0.5 * 0.09).all()  # noise rms ~0.1, volume >= 0.5

    dm.loader["balanced_sampler"] = True
    sampler = dm.train_dataloader().sampler
    drawn = np.concatenate([labels[idx] for _ in range(40) for idx in sampler])
    share = np.bincount(drawn, minlength=len(names)) / len(drawn)
    assert np.abs(share - 1 / len(names)).max() < 0.03


def test_augment_preview_logs_images_and_audio(tmp_path, noise_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_config(
        tmp_path,
        [
            *SMALL_SYNTHETIC,
            "augment=strong",
            f"augment.noise_dir={noise_dir}",
            "trainer.max_epochs=1",
            "++trainer.limit_train_batches=1",
            "++trainer.limit_val_batches=1",
            "test=false",
            "trainer.accelerator=cpu",
        ],
    )
    train.run(cfg)
    events = EventAccumulator(
        str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "audio": 0}
    )
    events.Reload()
    images = [t for t in events.Tags()["images"] if t.startswith("augment_preview/")]
    audio = [t for t in events.Tags()["audio"] if t.startswith("augment_preview/")]
    assert len(images) == 4
    assert len(audio) == 8 and sum(t.endswith("/augmented") for t in audio) == 4
