"""Audio encoders (avatars.audio): alignments, the Hugging Face encoders from a registered folder, the
feature cache, and the errors for wrong folders and bad audio.

The wav2vec 2.0 / HuBERT models are tiny random-initialised configs saved with ``save_pretrained`` into
a temporary folder and registered in a registry that only searches temporary folders (never the user's
cache); expected values are computed independently from the model's own modules or numpy.
"""

from __future__ import annotations

import hashlib
import logging
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from avatars.audio import (
    FeatureCache,
    check_audio,
    frame_pairs,
    interpolate_features,
    interpolate_features_torch,
    load_audio,
    open_encoder,
    prepare_audio,
    resolve_encoder,
    window_features,
)
from avatars.audio.base import LogMelEncoder
from avatars.audio.cache import encoder_slug
from benchmark.weights import WeightRegistry
from gsbench.errors import InputError, WeightsError

SR = 16000


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 410 * t)
    return (0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def tiny_wav2vec2_config():
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(24,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )


def tiny_hubert_config():
    from transformers import HubertConfig

    return HubertConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-initialised wav2vec 2.0 and HuBERT saved in the Hugging Face layout."""
    from transformers import HubertModel, Wav2Vec2Model

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    Wav2Vec2Model(tiny_wav2vec2_config()).save_pretrained(root / "wav2vec2")
    HubertModel(tiny_hubert_config()).save_pretrained(root / "hubert")
    return {"wav2vec2": root / "wav2vec2", "hubert": root / "hubert"}


@pytest.fixture
def registry(tmp_path, hf_folders) -> WeightRegistry:
    """A registry searching only ``tmp_path/weights`` with both tiny encoders added."""
    store = tmp_path / "weights"
    registry = WeightRegistry([store])
    registry.add("wav2vec2-base-960h", hf_folders["wav2vec2"], store)
    registry.add("hubert-large-ls960-ft", hf_folders["hubert"], store)
    return WeightRegistry([store])


def normalised(audio: np.ndarray) -> torch.Tensor:
    """Wav2Vec2FeatureExtractor's do_normalize, written out: zero mean, unit variance (eps 1e-7)."""
    audio = audio.astype(np.float64)
    return torch.as_tensor(((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)).astype(np.float32))[None]


def numpy_interp(features: np.ndarray, rate: float, fps: float, frames: int) -> np.ndarray:
    """Frame t at t / fps s from native frame k at k / rate s, linear, edges held (loop, by hand)."""
    out = np.empty((frames, features.shape[1]), np.float64)
    for t in range(frames):
        position = min(t / fps * rate, features.shape[0] - 1)
        lower = int(np.floor(position))
        upper = min(lower + 1, features.shape[0] - 1)
        weight = position - lower
        out[t] = (1 - weight) * features[lower] + weight * features[upper]
    return out


# -- alignments ------------------------------------------------------------------------------------


def test_interpolation_matches_a_hand_written_loop_in_numpy_and_torch() -> None:
    features = np.random.default_rng(1).standard_normal((37, 5)).astype(np.float32)
    for fps, frames in ((30.0, 25), (25.0, 19), (60.0, 50)):  # the last runs past the signal: held
        expected = numpy_interp(features, 50.0, fps, frames)
        np.testing.assert_allclose(interpolate_features(features, 50.0, fps, frames), expected, atol=1e-5)
        torch_out = interpolate_features_torch(torch.as_tensor(features)[None], 50.0, fps, frames)[0]
        np.testing.assert_allclose(torch_out.numpy(), expected, atol=1e-5)


def test_windows_are_zero_padded_sixteen_frame_slices() -> None:
    features = np.arange(1, 21 * 3 + 1, dtype=np.float32).reshape(21, 3)  # no zero rows of its own
    windows = window_features(features, 50.0, 25.0, 11)
    assert windows.shape == (11, 16, 3)
    for t in range(11):
        for j in range(16):
            k = 2 * t + j - 8  # ER-NeRF: native frames 2t - 8 .. 2t + 7
            expected = features[k] if 0 <= k < 21 else np.zeros(3)
            np.testing.assert_array_equal(windows[t, j], expected)
    assert not windows[0, :8].any() and windows[0, 8:].all()  # first frame: 8 zero frames before it


def test_pairs_give_frames_2t_and_2t_plus_1_and_refuse_non_integer_ratios() -> None:
    features = np.random.default_rng(2).standard_normal((9, 4)).astype(np.float32)
    pairs = frame_pairs(features, 50.0, 25.0, 5)
    np.testing.assert_array_equal(pairs[:4].reshape(8, 4), features[:8])
    np.testing.assert_array_equal(pairs[4, 0], features[8])
    assert not pairs[4, 1].any()  # beyond the signal
    with pytest.raises(InputError, match="cannot be paired"):
        frame_pairs(features, 50.0, 30.0, 5)


# -- Hugging Face encoders ---------------------------------------------------------------------------


def test_registered_wav2vec2_has_sha_id_50hz_rate_and_the_models_output(registry, hf_folders) -> None:
    from transformers import Wav2Vec2Model

    encoder, reason = resolve_encoder("wav2vec2-base-960h", fallback="logmel50", weights=registry)
    assert reason is None and encoder.pretrained
    digest = hashlib.sha256((hf_folders["wav2vec2"] / "model.safetensors").read_bytes()).hexdigest()
    assert encoder.id == f"wav2vec2-base-960h:{digest[:12]}"
    audio = speech(2.0)
    features = encoder.encode(audio)
    assert features.shape == ((audio.size - 400) // 320 + 1, 32)  # 99 frames for 2 s: 50 Hz
    assert encoder.rate == 50.0
    model = Wav2Vec2Model.from_pretrained(hf_folders["wav2vec2"]).eval()
    with torch.no_grad():
        expected = model(normalised(audio)).last_hidden_state[0].numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)
    tcn = open_encoder("wav2vec2-base-960h", registry, output="extract_features")
    assert tcn.id == encoder.id + "/extract_features" and tcn.dim == 24
    with torch.no_grad():
        raw = model.feature_extractor(normalised(audio)).transpose(1, 2)[0].numpy()
    np.testing.assert_allclose(tcn.encode(audio), raw, atol=1e-5)


def test_wav2vec2_video_rate_interpolates_the_tcn_before_the_transformer(registry, hf_folders) -> None:
    from transformers import Wav2Vec2Model

    encoder = open_encoder("wav2vec2-base-960h", registry)
    audio, fps, frames = speech(1.6, seed=3), 30.0, 48
    model = Wav2Vec2Model.from_pretrained(hf_folders["wav2vec2"]).eval()
    with torch.no_grad():
        tcn = model.feature_extractor(normalised(audio)).transpose(1, 2)[0].numpy()
        at_video_rate = torch.as_tensor(numpy_interp(tcn, 50.0, fps, frames), dtype=torch.float32)[None]
        projected, _ = model.feature_projection(at_video_rate)
        expected = model.encoder(projected).last_hidden_state[0].numpy()
    got = encoder.video_rate(audio, fps, frames)
    assert got.shape == (frames, 32)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # interpolating after the transformer is a different feature: the order is what FaceFormer does
    after = interpolate_features(encoder.encode(audio), 50.0, fps, frames)
    assert np.abs(after - expected).max() > 1e-2


def test_transformer_from_tcn_trains_the_transformer_not_the_tcn(registry) -> None:
    encoder = open_encoder("wav2vec2-base-960h", registry)
    model = encoder.trainable_copy()
    tcn = torch.as_tensor(encoder.tcn_features(speech(1.0)))[None]
    out = encoder.transformer_from_tcn(tcn, 25.0, 25, model=model)
    assert out.shape == (1, 25, 32)
    out.square().mean().backward()
    assert model.encoder.layers[0].attention.k_proj.weight.grad is not None
    assert all(not p.requires_grad for p in model.feature_extractor.parameters())
    assert all(p.grad is None for p in encoder.module().parameters())  # the shared copy stays frozen


def test_registered_hubert_last_hidden_state_and_tcn_dims(registry, hf_folders) -> None:
    encoder, reason = resolve_encoder("hubert-large-ls960-ft", fallback="logmel50", weights=registry)
    assert reason is None and encoder.id.startswith("hubert-large-ls960-ft:")
    audio = speech(1.0)
    assert encoder.encode(audio).shape == (49, 48)
    assert encoder.pairs(audio, 25.0, 25).shape == (25, 2, 48)
    assert open_encoder("hubert-large-ls960-ft", registry, output="extract_features").encode(audio).shape == (
        49,
        16,
    )


def test_a_ctc_checkpoint_with_old_weight_norm_names_loads_as_the_base_model(tmp_path) -> None:
    """The real facebook folders hold Wav2Vec2ForCTC / HubertForCTC weights (keys under ``wav2vec2.``,
    plus the CTC head), the 2021 ones as pytorch_model.bin with weight_g/weight_v weight-norm names."""
    from transformers import Wav2Vec2ForCTC

    torch.manual_seed(1)
    ctc = Wav2Vec2ForCTC(tiny_wav2vec2_config()).eval()
    state = {
        key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): value
        for key, value in ctc.state_dict().items()
    }
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in state and "lm_head.weight" in state
    folder = tmp_path / "wav2vec2-base-960h-ctc"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    ctc.config.architectures = ["Wav2Vec2ForCTC"]
    ctc.config.to_json_file(folder / "config.json")
    store = tmp_path / "weights"
    WeightRegistry([store]).add("wav2vec2-base-960h", folder, store)
    encoder = open_encoder("wav2vec2-base-960h", WeightRegistry([store]))
    audio = speech(1.0)
    with torch.no_grad():
        expected = ctc.wav2vec2(normalised(audio)).last_hidden_state[0].numpy()
    np.testing.assert_allclose(encoder.encode(audio), expected, atol=1e-5)


def test_the_folders_preprocessor_config_decides_the_normalisation(tmp_path, hf_folders) -> None:
    import shutil

    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = Path(shutil.copytree(hf_folders["wav2vec2"], tmp_path / "raw-input"))
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(folder)  # as some checkpoints ship
    store = tmp_path / "weights"
    registry = WeightRegistry([store])
    registry.add("wav2vec2-base-960h", folder, store)
    assert (store / "wav2vec2-base-960h" / "preprocessor_config.json").is_file()
    audio = speech(1.0)
    model = Wav2Vec2Model.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(torch.as_tensor(audio)[None]).last_hidden_state[0].numpy()  # not normalised
    np.testing.assert_allclose(
        open_encoder("wav2vec2-base-960h", registry).encode(audio), expected, atol=1e-5
    )


# -- registry: absent falls back, broken raises -------------------------------------------------------


def test_unregistered_encoder_falls_back_with_the_reason(tmp_path) -> None:
    encoder, reason = resolve_encoder("wav2vec2-base-960h", "logmel50", weights=WeightRegistry([tmp_path]))
    assert encoder.name == "logmel50" and not encoder.pretrained
    assert "wav2vec2-base-960h is not registered" in reason and "gsbench weights add" in reason
    encoder, reason = resolve_encoder("hubert-large-ls960-ft", "logmel50", weights=None)
    assert encoder.name == "logmel50" and "no weight registry" in reason


def test_changed_weights_are_an_error_not_a_fallback(registry) -> None:
    folder = registry.find("wav2vec2-base-960h").path
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF  # one weight changed (tensor data, the header stays valid): another checkpoint
    (folder / "model.safetensors").write_bytes(bytes(data))
    fresh = WeightRegistry(registry.search_paths)
    with pytest.raises(WeightsError, match="changed since it was registered"):
        resolve_encoder("wav2vec2-base-960h", "logmel50", weights=fresh)


def test_wrong_folders_are_rejected_with_the_reason(tmp_path, hf_folders) -> None:
    import shutil

    store = tmp_path / "store"
    registry = WeightRegistry([store])
    with pytest.raises(WeightsError, match="model_type is 'hubert'.*other architecture"):
        registry.add("wav2vec2-base-960h", hf_folders["hubert"], store)
    no_weights = Path(shutil.copytree(hf_folders["wav2vec2"], tmp_path / "no_weights"))
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="no weight file"):
        registry.add("wav2vec2-base-960h", no_weights, store)
    with pytest.raises(InputError, match="not a folder"):
        registry.add("wav2vec2-base-960h", hf_folders["wav2vec2"] / "config.json", store)
    # a folder copied in by hand, never added: refused (not silently used, not silently replaced)
    shutil.copytree(hf_folders["wav2vec2"], store / "wav2vec2-base-960h")
    with pytest.raises(WeightsError, match="not registered: no readable gsbench-weights.json"):
        resolve_encoder("wav2vec2-base-960h", "logmel50", weights=WeightRegistry([store]))
    assert not list(store.glob(".*tmp"))  # no staging folder left behind by the rejected adds


# -- cache ----------------------------------------------------------------------------------------------


class CountingLogMel(LogMelEncoder):
    def __init__(self):
        super().__init__(80)
        self.calls = 0

    def encode(self, audio):
        self.calls += 1
        return super().encode(audio)


def test_second_lookup_reads_the_cache_file_without_encoding(tmp_path) -> None:
    audio = speech(1.0)
    encoder = CountingLogMel()
    first = encoder.windows(audio, 25.0, 25, cache=FeatureCache(tmp_path))
    assert encoder.calls == 1
    digest = hashlib.sha256(audio.astype("<f4").tobytes()).hexdigest()
    assert (tmp_path / encoder_slug(encoder.id) / f"{digest[:32]}.npy").is_file()
    second_cache = FeatureCache(tmp_path)  # a second run: a new process would build a new cache
    second = encoder.windows(audio, 25.0, 25, cache=second_cache)
    assert encoder.calls == 1 and second_cache.hits == 1 and second_cache.misses == 0
    np.testing.assert_array_equal(first, second)
    other = speech(1.0, seed=9)  # other audio, other key
    encoder.video_rate(other, 25.0, 25, cache=second_cache)
    assert encoder.calls == 2


def test_wav2vec2_video_rate_is_cached_per_fps(tmp_path, registry, monkeypatch) -> None:
    encoder = open_encoder("wav2vec2-base-960h", registry)
    audio = speech(1.0)
    first = encoder.video_rate(audio, 25.0, 25, cache=FeatureCache(tmp_path))
    reopened = open_encoder("wav2vec2-base-960h", registry)
    monkeypatch.setattr(reopened, "module", lambda: pytest.fail("the model ran on a cache hit"))
    np.testing.assert_array_equal(reopened.video_rate(audio, 25.0, 25, cache=FeatureCache(tmp_path)), first)


def test_cache_recomputes_a_corrupt_entry(tmp_path, caplog) -> None:
    audio = speech(0.5)
    encoder = CountingLogMel()
    cache = FeatureCache(tmp_path)
    expected = encoder.features(audio, cache=cache)
    entry = next(tmp_path.glob("*/*.npy"))
    entry.write_bytes(b"not an npy")
    with caplog.at_level(logging.WARNING, logger="avatars.audio"):
        again = encoder.features(audio, cache=FeatureCache(tmp_path))
    assert "unreadable" in caplog.text and encoder.calls == 2
    np.testing.assert_array_equal(again, expected)


# -- bad audio ---------------------------------------------------------------------------------------


def test_empty_and_silent_audio_are_errors_naming_the_audio() -> None:
    encoder = open_encoder("logmel50")
    with pytest.raises(InputError, match="empty"):
        encoder.video_rate(np.zeros(0, np.float32), 25.0, 10)
    with pytest.raises(InputError, match="seq7.wav: the audio is silent"):
        check_audio(np.full(16000, 1e-6, np.float32), "seq7.wav")
    with pytest.raises(InputError, match="silent"):
        encoder.windows(np.zeros(16000, np.float32), 25.0, 25)


def test_stereo_is_mixed_down_and_other_rates_resampled(tmp_path, caplog) -> None:
    from scipy.io import wavfile

    mono = speech(0.5)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    np.testing.assert_allclose(check_audio(stereo), 0.75 * mono, atol=1e-7)
    rate = 44100
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    path = tmp_path / "stereo44k.wav"
    wavfile.write(path, rate, (np.stack([tone, tone], 1) * 32767).astype(np.int16))
    with caplog.at_level(logging.INFO, logger="avatars.audio"):
        audio = load_audio(path)
    assert "resampled from 44100 Hz to 16000 Hz" in caplog.text and "mixed down" in caplog.text
    assert audio.shape == (16000,) and audio.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / audio.size - 440.0) <= 1.0  # the tone kept its pitch
    assert abs(np.abs(audio).max() - 0.5) < 0.01
    np.testing.assert_array_equal(prepare_audio(mono, SR), mono)  # 16 kHz mono passes unchanged
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SR)
    with pytest.raises(InputError, match="empty.wav: the audio is empty"):
        load_audio(empty)
