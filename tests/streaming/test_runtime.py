"""Stateful streaming: hop-by-hop features and probabilities equal the windowed model's on the same windows.

Tolerance: atol 1e-5 in float32 on features (normalized, order 1-10) and on probabilities; measured, the
features are bit-identical and probabilities differ by at most 3e-8. ONNX vs PyTorch: 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioclf.audio.frontends import build_frontend
from audioclf.config import CONF_DIR
from audioclf.deploy.streaming import export_step_onnx
from audioclf.errors import UserError
from audioclf.models import BACKBONES
from audioclf.streaming.detection import say_once, window_probabilities
from audioclf.streaming.runtime import (
    WINDOWED_BACKBONES,
    CannotStream,
    Framing,
    StreamingFrontend,
    framing_of,
    from_classifier,
    grid_runs,
    stateless_reason,
)
from tests.tasks.test_export import registry_classifier

TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4
RATE = 16000
FEATURES = sorted(path.stem for path in (CONF_DIR / "features").glob("*.yaml"))


def frontend_of(name: str, rate: int = RATE, **overrides):
    from omegaconf import OmegaConf

    features = {**OmegaConf.to_container(OmegaConf.load(CONF_DIR / "features" / f"{name}.yaml")), **overrides}
    frontend = build_frontend(features, rate)
    noise = np.random.default_rng(0).normal(0, 3000, (8, rate)).astype(np.int16)
    frontend.adapt(noise)  # fixed statistics, as a trained checkpoint has
    return frontend.eval()


def recording(seconds: float, seed: int = 0, rate: int = RATE) -> torch.Tensor:
    """Noise with loud and quiet stretches, so every frame differs from its neighbours."""
    generator = torch.Generator().manual_seed(seed)
    samples = torch.randn(int(seconds * rate), generator=generator)
    envelope = 0.02 + 0.5 * torch.rand(int(seconds * 20) + 1, generator=generator)
    return samples * envelope.repeat_interleave(rate // 20)[: len(samples)]


def frame_hop(frontend, window: int) -> int:
    return framing_of(frontend.transform, window).hop


def test_framing_of_centred_log_mel_is_hand_computed():
    """30/10 ms at 16 kHz, n_fft 512, centred: 256 reflected samples each side, 1 + 16000 // 160 = 101
    frames; frame i starts at 160 i - 256, so frames 0, 1 reach into the left padding, 99, 100 into the
    right (99 * 160 - 256 + 512 = 16096 > 16000), and 2 .. 98 are inner (97 of them)."""
    frontend = frontend_of("logmel")
    f = framing_of(frontend.transform, RATE)
    assert f == Framing(16000, 512, 160, 256, 0, 256, "reflect")
    assert (f.frames, f.first_inner, f.last_inner) == (101, 2, 98)
    stream = StreamingFrontend(frontend, RATE, 1600)
    assert stream.edge_frames == (2, 2) and stream.inner == 97 and stream.steps == 10
    # the head edge frames need the window's first samples: the whole window is state, minus the hop
    assert (stream.kept, stream.state_samples) == (16000, 14400)


def test_framing_of_uncentred_stft_and_padded_phase_is_hand_computed():
    # TF tutorial STFT: 256 / 128 samples, not centred: 1 + (16000 - 256) // 128 = 124 frames, no edges;
    # a hop of 12 frames (96 ms) reads 12 * 128 + 256 - 128 samples, 128 of them kept from the last hop
    stft = StreamingFrontend(frontend_of("stft"), RATE, 1536)
    assert (stft.framing.frames, stft.edge_frames, stft.kept, stft.state_samples) == (124, (0, 0), 1664, 128)
    # phased STFT: 16000 samples zero-padded to 16384, 256 / 64: 253 frames, the last 6 reach into the zeros
    phase = StreamingFrontend(frontend_of("phased_stft"), RATE, 1600)
    assert phase.framing.zeros == 384 and phase.framing.frames == 253 and phase.edge_frames == (0, 6)


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("hop_frames", [1, "100ms"])
def test_streaming_frontend_equals_the_frontend_on_every_window(name, hop_frames):
    frontend = frontend_of(name)
    step = frame_hop(frontend, RATE)
    hop = step if hop_frames == 1 else max(1, round(0.1 * RATE / step)) * step
    stream = StreamingFrontend(frontend, RATE, hop, RATE)
    audio = recording(1 + 8 * hop / RATE)
    with torch.no_grad():
        features, samples, ring = stream.start(audio[None, :RATE])
        assert torch.allclose(features, frontend(audio[None, :RATE]), atol=TOLERANCE, rtol=0)
        for j in range(1, 9):
            chunk = audio[None, RATE + (j - 1) * hop : RATE + j * hop]
            features, samples, ring = stream(chunk, samples, ring)
            want = frontend(audio[None, j * hop : j * hop + RATE])
            assert features.shape == want.shape
            difference = (features - want).abs().max().item()
            assert difference <= TOLERANCE * max(1.0, want.abs().max().item()), (name, j, difference)
        offline = stream.windows(audio, 9)  # the batched form: every window at once
        want = torch.cat([frontend(audio[None, j * hop : j * hop + RATE]) for j in range(9)])
        assert (offline - want).abs().max().item() <= TOLERANCE * max(1.0, want.abs().max().item())


def test_a_hop_longer_than_the_window_streams_too():
    frontend = frontend_of("logmel")
    hop = 1.5 * RATE  # 150 frames: more than the 97 inner ones, so the ring is all new each hop
    stream = StreamingFrontend(frontend, RATE, int(hop))
    audio = recording(5)
    with torch.no_grad():
        _, samples, ring = stream.start(audio[None, :RATE])
        features, _, _ = stream(audio[None, RATE : RATE + int(hop)], samples, ring)
        assert torch.allclose(features, frontend(audio[None, int(hop) : int(hop) + RATE]), atol=TOLERANCE)


@pytest.mark.parametrize("name", ["tf_cnn", "bcresnet", "matchboxnet", "kwt", "lstm_fsdd"])
def test_streaming_classifier_probabilities_equal_the_windowed_model(name):
    probabilities_match(name, hops=6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_streams_with_the_windowed_models_probabilities(name):
    probabilities_match(name, hops=20)


def probabilities_match(name: str, hops: int) -> None:
    model = registry_classifier(name)
    rate, window = int(model.hparams.sample_rate), int(model.hparams.num_samples)
    step = frame_hop(model.frontend, window)
    hop = max(1, round(0.1 * rate / step)) * step
    stream = from_classifier(model, hop)
    audio = recording(window / rate + hops * hop / rate + 0.1, rate=rate)
    with torch.no_grad():
        got, samples, ring = stream.start(audio[None, :window])
        assert torch.allclose(got, model(audio[None, :window]).softmax(-1), atol=TOLERANCE, rtol=0)
        for j in range(1, hops + 1):
            chunk = audio[None, window + (j - 1) * hop : window + j * hop]
            got, *_ = stream(chunk, samples, ring)
            features, samples, ring = stream.frontend(chunk, samples, ring)
            want_logits = model(audio[None, j * hop : j * hop + window])
            # the logits too: random weights give near-uniform probabilities, which hide differences
            assert torch.allclose(stream.backbone(features), want_logits, atol=1e-4, rtol=1e-5), (name, j)
            assert torch.allclose(got, want_logits.softmax(-1), atol=TOLERANCE, rtol=0), (name, j)


def test_stream_mode_stateful_gives_the_windowed_probabilities_with_quiet_windows_and_a_tail():
    model = registry_classifier("bcresnet")
    audio = recording(3.37).numpy()
    audio[RATE : 2 * RATE] = 0  # quiet windows are skipped (all-zero rows) in both modes
    windowed = window_probabilities(model, audio, 1600, -50.0, batch_size=7, stream_mode="windowed")
    stateful = window_probabilities(model, audio, 1600, -50.0, batch_size=7, stream_mode="stateful")
    assert np.array_equal(windowed[0], stateful[0]) and windowed[0][-1] % 1600  # a last window off the grid
    assert (windowed[1].sum(axis=1) == 0).any() and np.abs(windowed[1] - stateful[1]).max() <= TOLERANCE


def test_stream_mode_falls_back_to_windowed_with_one_line_where_the_hop_cannot_stream(capsys):
    say_once.cache_clear()  # said once per process: an earlier test (predict stream=true) may have said it
    model = registry_classifier("tf_cnn")  # 8 ms STFT frames: 100 ms is 12.5 of them
    audio = recording(2.0).numpy()
    stateful = window_probabilities(model, audio, 1600, -50.0, stream_mode="stateful")
    windowed = window_probabilities(model, audio, 1600, -50.0, stream_mode="windowed")
    assert np.array_equal(stateful[1], windowed[1])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["info: stream_mode=stateful: a hop of 1600 samples (100 ms) is not a multiple of the frame hop "
                   "(128 samples (8 ms), features.hop_ms): use 1536 samples (96 ms) or 1664 samples (104 ms); "
                   "streaming windowed instead"]
    with pytest.raises(UserError, match="^stream_mode=fast is unknown: use stateful or windowed$"):
        window_probabilities(model, audio, 1600, -50.0, stream_mode="fast")


def test_what_cannot_stream_is_one_line_naming_the_key():
    with pytest.raises(CannotStream, match=r"^a hop of 1000 samples \(62.5 ms\) is not a multiple of the frame hop "
                                           r"\(160 samples \(10 ms\), features.hop_ms\): use 960 samples"):
        StreamingFrontend(frontend_of("logmel"), RATE, 1000, RATE)
    with pytest.raises(CannotStream, match=r"^pool=\[1, 2\] averages frames in time.*use pool=\[<freq>, 1\]"):
        StreamingFrontend(frontend_of("phased_stft", pool=[1, 2]), RATE, 1600)
    frontend = frontend_of("logmel")
    frontend.transform = torch.nn.Identity()
    with pytest.raises(CannotStream, match="^the Identity frontend is not known to compute frame by frame"):
        StreamingFrontend(frontend, RATE, 1600)
    with pytest.raises(CannotStream, match=r"^normalize=cmvn standardizes each window by its own statistics"):
        StreamingFrontend(frontend_of("logmel", normalize="cmvn"), RATE, 1600)
    assert isinstance(CannotStream("x"), ValueError)  # the library's plain ValueError


def test_grid_runs_split_far_apart_windows():
    assert grid_runs([0, 100, 200, 1700, 1750, 1800], 100, 1000) == [[0, 1, 2], [3, 5]]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_streams_with_state_or_says_why_not_in_one_line(name):
    reason = stateless_reason(registry_classifier(name).backbone)
    if name in ("gru",):  # causal as posted; bcresnet and dscnn only with model.causal=true
        assert reason is None
    else:
        assert reason.startswith(f"{name}: ") and "\n" not in reason
    assert set(WINDOWED_BACKBONES) <= set(BACKBONES)


@pytest.mark.parametrize("name", ["lstm_fsdd"])  # centred log-mel: reflect-padded edge frames in the graph
def test_a_streaming_step_exports_to_onnx_and_matches_pytorch(tmp_path, name):
    onnx_matches(tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_exports_its_streaming_step_to_onnx(tmp_path, name):
    onnx_matches(tmp_path, name)


def onnx_matches(tmp_path, name: str, hops: int = 4) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = registry_classifier(name)
    rate, window = int(model.hparams.sample_rate), int(model.hparams.num_samples)
    step = frame_hop(model.frontend, window)
    stream = from_classifier(model, max(1, round(0.1 * rate / step)) * step)
    path = export_step_onnx(stream, tmp_path / "step.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["chunk", "samples", "ring"]
    hop = stream.frontend.hop
    audio = recording(window / rate + hops * hop / rate + 0.1, seed=3, rate=rate)
    with torch.no_grad():
        _, samples, ring = stream.start(audio[None, :window])
    state = {"samples": samples.numpy(), "ring": ring.numpy()}
    for j in range(hops):  # the graph's own state fed back, hop after hop
        chunk = audio[None, window + j * hop : window + (j + 1) * hop]
        with torch.no_grad():
            want, samples, ring = stream(chunk, samples, ring)
        got, state["samples"], state["ring"] = session.run(None, {"chunk": chunk.numpy(), **state})
        assert np.abs(got - want.numpy()).max() <= ONNX_TOLERANCE
        assert np.abs(state["ring"] - ring.numpy()).max() <= ONNX_TOLERANCE * max(1.0, ring.abs().max().item())


def test_the_stream_bench_prints_a_row_per_backbone_and_hop(capsys):
    from tools.bench import stream as bench

    rows = bench.main(["--backbones", "lstm_fsdd", "--hops-ms", "100", "--rounds", "2", "--warmup", "1"])
    assert [(r["backbone"], r["hop_ms"]) for r in rows] == [("lstm_fsdd", 96.0)]  # 3 frames of 32 ms
    assert rows[0]["stateful"] > 0 and rows[0]["rtf_stateful"] == pytest.approx(rows[0]["stateful"] / 96.0)
    assert "| `lstm_fsdd` | logmel80 | 96.0 | 3 + 2 / 16 |" in capsys.readouterr().out
