"""A dataset's audio features: imported DeepSpeech features (ER-NeRF aud_ds.npy) and the per-dataset cache
the runner hands to methods, on the tiny dataset of conftest.py (12 frames at 25 fps per sequence)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from avatars.audio import open_encoder, resolve_encoder
from avatars.methods.base import Method, RenderOutput, RenderRequest, TrainStats
from benchmark.audio_features import dataset_feature_cache, import_features, import_features_folder
from benchmark.cli import main
from benchmark.dataset import load_dataset
from gsbench.errors import InputError

DIM = 29


def ernerf_windows(native: np.ndarray) -> np.ndarray:
    """AD-NeRF deepspeech_features.py's windowing, as written there: 8 zero frames each side, windows
    of 16 with stride 2 -> [ceil(K / 2), 16, D]."""
    pad = np.zeros((8, native.shape[1]), native.dtype)
    padded = np.concatenate([pad, native, pad])
    return np.array([padded[i : i + 16] for i in range(0, padded.shape[0] - 16, 2)])


def fake_logits(sequence_index: int, frames: int = 24) -> np.ndarray:
    return np.random.default_rng(100 + sequence_index).standard_normal((frames, DIM)).astype(np.float32)


def import_all(dataset, folder) -> dict[str, np.ndarray]:
    """One aud_ds.npy per sequence under ``folder/<seq>/``; returns the windows written."""
    written = {}
    for index, sequence in enumerate(sorted(dataset.sequences)):
        windows = ernerf_windows(fake_logits(index))
        (folder / sequence).mkdir(parents=True)
        np.save(folder / sequence / "aud_ds.npy", windows)
        written[sequence] = windows
    imported, missing = import_features_folder(dataset, "deepspeech-0.1.0", folder)
    assert sorted(imported) == sorted(dataset.sequences) and missing == []
    return written


def test_imported_deepspeech_windows_are_what_ernerf_would_read(tiny_dataset, tmp_path) -> None:
    dataset = load_dataset(tiny_dataset, check_files=False)
    written = import_all(dataset, tmp_path / "aud")
    cache = dataset_feature_cache(dataset)
    encoder, reason = resolve_encoder("deepspeech-0.1.0", fallback="filterbank29", cache=cache)
    assert reason is None and encoder.id.startswith("deepspeech-0.1.0:imported-") and encoder.dim == DIM
    for sequence, windows in written.items():
        audio = dataset.load_audio(sequence)  # what a RenderRequest carries: found by its content hash
        got = encoder.windows(audio, dataset.fps, dataset.sequences[sequence].num_frames, cache=cache)
        np.testing.assert_array_equal(got, windows)
    assert cache.hits == len(written) and cache.misses == 0  # imported files count as read, never computed
    stored = tiny_dataset / "sequences" / sequence / "audio_features"
    meta = json.loads((stored / "deepspeech-0.1.0.json").read_text())
    assert np.load(stored / "deepspeech-0.1.0.npy").shape == (24, DIM) and meta["source_shape"] == [
        12,
        16,
        DIM,
    ]
    np.save(tmp_path / "other.npy", 2.0 * written[sequence])  # other features: another id
    import_features(dataset, "deepspeech-0.1.0", sequence, tmp_path / "other.npy")
    reimported, _ = resolve_encoder("deepspeech-0.1.0", "filterbank29", cache=dataset_feature_cache(dataset))
    assert reimported.id != encoder.id
    with pytest.raises(InputError, match="no imported deepspeech-0.1.0 features for audio sha256"):
        encoder.windows(np.full(8000, 0.1, np.float32), 25.0, 12, cache=cache)


def test_without_imported_features_audio_plane_gets_filterbank29(tiny_dataset) -> None:
    cache = dataset_feature_cache(load_dataset(tiny_dataset, check_files=False))
    encoder, reason = resolve_encoder("deepspeech-0.1.0", fallback="filterbank29", cache=cache)
    assert encoder.name == "filterbank29" and encoder.dim == DIM
    assert "no deepspeech-0.1.0 features imported" in reason
    encoder, reason = resolve_encoder("deepspeech-0.1.0", fallback="filterbank29")  # no cache given
    assert encoder.name == "filterbank29" and "cache" in reason


def test_import_checks_shape_frame_count_and_windowing(tiny_dataset, tmp_path) -> None:
    dataset = load_dataset(tiny_dataset, check_files=False)
    sequence = sorted(dataset.sequences)[0]
    cases = {
        "wrong_dim.npy": (np.zeros((12, 16, 28), np.float32), "is not"),
        "too_few.npy": (ernerf_windows(fake_logits(0, frames=16)), "8 windows, sequence .* has 12 frames"),
        "not_windows.npy": (np.random.default_rng(0).random((12, 16, DIM), np.float32), "not ER-NeRF's"),
        "native_short.npy": (fake_logits(0, frames=10), "10 feature frames"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(InputError, match=message):
            import_features(dataset, "deepspeech-0.1.0", sequence, tmp_path / name)
    assert not (tiny_dataset / "sequences" / sequence / "audio_features").exists()
    np.save(tmp_path / "transposed.npy", ernerf_windows(fake_logits(0)).transpose(0, 2, 1))  # [T, 29, 16]
    target = import_features(dataset, "deepspeech-0.1.0", sequence, tmp_path / "transposed.npy")
    np.testing.assert_array_equal(np.load(target), fake_logits(0))


def test_partial_or_stale_imports_are_errors_not_fallbacks(tiny_dataset, tmp_path) -> None:
    import shutil

    dataset = load_dataset(tiny_dataset, check_files=False)
    import_all(dataset, tmp_path / "aud")
    first, second = sorted(dataset.sequences)[:2]
    shutil.copyfile(dataset.audio_path(second), dataset.audio_path(first))  # audio changed after import
    with pytest.raises(InputError, match=f"stale, .*{first}/audio.wav changed since the import"):
        resolve_encoder("deepspeech-0.1.0", "filterbank29", cache=dataset_feature_cache(dataset))
    for path in (tiny_dataset / "sequences" / first / "audio_features").iterdir():
        path.unlink()
    with pytest.raises(InputError, match="partial import: 1 of 8 sequences"):
        open_encoder("deepspeech-0.1.0", cache=dataset_feature_cache(dataset))


def test_dataset_cache_names_the_sequence_file_of_silent_audio(tiny_dataset) -> None:
    from gsbench.media import write_wav

    dataset = load_dataset(tiny_dataset, check_files=False)
    sequence = sorted(dataset.sequences)[0]
    write_wav(dataset.audio_path(sequence), np.zeros(7680, np.float32))
    cache = dataset_feature_cache(dataset)
    with pytest.raises(
        InputError, match=f"{sequence}/audio.wav \\(sequence {sequence}\\): the audio is silent"
    ):
        open_encoder("logmel50").windows(dataset.load_audio(sequence), 25.0, 12, cache=cache)


def test_cli_import_features_and_cache(tiny_dataset, tmp_path, capsys) -> None:
    dataset = load_dataset(tiny_dataset, check_files=False)
    sequence = sorted(dataset.sequences)[0]
    np.save(tmp_path / "aud_ds.npy", ernerf_windows(fake_logits(0)))
    main(
        ["audio", "import-features", str(tiny_dataset), str(tmp_path / "aud_ds.npy"), "--sequence", sequence]
    )
    assert f"imported deepspeech-0.1.0 for {sequence}" in capsys.readouterr().out
    main(["audio", "cache", str(tiny_dataset), "--encoder", "filterbank29"])
    assert "8 sequences, 8 computed, 0 read" in capsys.readouterr().out
    main(["audio", "cache", str(tiny_dataset), "--encoder", "filterbank29"])
    assert "8 sequences, 0 computed, 8 read" in capsys.readouterr().out
    assert len(list((tiny_dataset / "audio_features_cache").glob("filterbank29*/*.npy"))) == 8


class AudioCacheProbe(Method):
    """Test-only: encodes every train and test audio through ``self.audio_cache`` (set by the runner)
    and reports the cache's counts in ``info()``."""

    name = "audio-cache-probe-test"
    description = "test-only method that reads its audio features through the runner's cache"
    protocols = ("mono-front",)

    def train(self, train_view, budget, workdir):
        self.encoder, self.reason = resolve_encoder(
            "deepspeech-0.1.0", "filterbank29", self.weights, cache=self.audio_cache
        )
        for sequence in train_view.sequences:
            audio = train_view.load_audio(sequence)
            self.encoder.windows(
                audio, train_view.fps, train_view.num_frames(sequence), cache=self.audio_cache
            )
        return TrainStats()

    def render(self, request: RenderRequest) -> RenderOutput:
        self.encoder.windows(request.audio, request.fps, request.num_frames, cache=self.audio_cache)
        shape = (request.num_frames, request.camera.height, request.camera.width)
        return RenderOutput(np.full((*shape, 3), 0.5, np.float32), np.ones(shape, np.float32))

    def info(self):
        cache = self.audio_cache
        return {
            "audio_encoder": self.encoder.id,
            "audio_encoder_fallback": self.reason,
            "cache_class": type(cache).__name__,
            "cache_misses": cache.misses,
            "cache_hits": cache.hits,
        }

    def save(self, path):
        (Path(path) / "nothing.txt").write_text("no state")

    def load(self, path):
        pass


def test_runner_hands_methods_the_dataset_cache_and_a_second_run_only_reads(tiny_dataset, tmp_path) -> None:
    from avatars.methods import BUILTIN_METHODS
    from benchmark.runner import RunOptions, run_benchmark

    options = RunOptions(
        methods=(AudioCacheProbe.name,),
        protocols=("mono-front",),
        subjects=("s01",),
        budget="smoke",
        videos=False,
    )
    infos = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BUILTIN_METHODS, AudioCacheProbe.name, f"{__name__}:AudioCacheProbe")
        for _ in range(2):
            summary = run_benchmark(tiny_dataset, tmp_path / "runs", dataclasses.replace(options, force=True))
            assert summary.exit_code == 0, [o.error for o in summary.outcomes]
            results = (
                tmp_path / "runs" / "tiny" / "mono-front" / AudioCacheProbe.name / "s01" / "results.json"
            )
            document = json.loads(results.read_text())
            infos.append({**document["method_info"], "timing": document["timing"]["audio_features"]})
    first, second = infos
    assert second["timing"]["computed"] == 0 and second["timing"]["read"] == 3
    assert first["cache_class"] == "FeatureCache" and first["audio_encoder"].startswith("filterbank29(")
    assert "no deepspeech-0.1.0 features imported" in first["audio_encoder_fallback"]
    assert first["cache_misses"] == 3 and first["cache_hits"] == 0  # s01: 2 train + 1 test sequence
    assert second["cache_misses"] == 0 and second["cache_hits"] == 3
    assert len(list((tiny_dataset / "audio_features_cache").glob("filterbank29*/*.npy"))) == 3
