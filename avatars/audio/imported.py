"""Precomputed encoder features imported per sequence: DeepSpeech 0.1.0 (Audio-Plane, ER-NeRF).

The field shares DeepSpeech 0.1.0 character logits as arrays rather than as a runnable network: ER-NeRF's
``aud_ds.npy`` holds, per video, ``[T, 16, 29]`` windows made by AD-NeRF's ``deepspeech_features.py``:
29 logits at 50 Hz, 8 zero frames padded on each side, windows of 16 with stride 2, so window ``t``
holds native frames ``2t - 8 .. 2t + 7`` (25 fps video). ``gsbench audio import-features`` stores them
in the dataset as::

    sequences/<seq>/audio_features/deepspeech-0.1.0.npy    # [K, 29] float32 at 50 Hz
    sequences/<seq>/audio_features/deepspeech-0.1.0.json   # audio sha256, source file + sha256, shapes

The native ``[K, 29]`` sequence is recovered from the windows (:func:`native_from_windows`) and the import
checks that re-windowing it (:func:`avatars.audio.base.window_features`) gives back the file exactly, so
``encoder.windows(audio, 25, T)`` returns what ER-NeRF would read while ``video_rate`` and ``pairs`` work
too. A method only gets ``request.audio`` at render time, so the encoder finds a sequence's features by
the audio's content hash (recorded at import and re-checked against the sequence's ``audio.wav``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from avatars.audio.base import NATIVE_RATE, AudioEncoder, EncoderUnavailable, window_features
from gsbench.errors import InputError

FEATURES_DIRNAME = "audio_features"
ERNERF_WINDOW = 16  # AD-NeRF / ER-NeRF: audio_window_size 16, stride 2 at 50 Hz for 25 fps video
ERNERF_FPS = 25.0


@dataclasses.dataclass(frozen=True)
class ImportedSpec:
    name: str
    dim: int
    description: str


IMPORTED_ENCODERS: dict[str, ImportedSpec] = {
    "deepspeech-0.1.0": ImportedSpec(
        "deepspeech-0.1.0", 29, "DeepSpeech 0.1.0 character logits (ER-NeRF aud_ds.npy), per sequence"
    ),
}


def import_fix(name: str) -> str:
    return f"gsbench audio import-features DATASET --encoder {name} --sequence SEQ aud_ds.npy (or a folder)"


@dataclasses.dataclass(frozen=True)
class ImportedFeatures:
    """The imported features of one encoder in one dataset: audio sha256 -> ``[K, D]`` file.

    ``problems`` lists what makes the import unusable (a stale file whose sequence's audio changed, a
    partial import, a malformed file); :func:`open_imported` raises on them instead of falling back."""

    name: str
    files: dict[str, Path]
    problems: tuple[str, ...] = ()
    digest: str = ""  # sha256 over the imported files' source sha256s: names this set of features

    @property
    def present(self) -> bool:
        return bool(self.files) or bool(self.problems)


def native_from_windows(windows: np.ndarray, source: str = "features") -> np.ndarray:
    """``[K, D]`` native 50 Hz features of ER-NeRF windows ``[T, 16, D]`` (``window[t][j]`` = native
    frame ``2t + j - 8``); ``K = 2T``, or ``2T - 1`` when the last window's frame ``2T - 1`` is the zero
    padding. Raises when overlapping windows disagree (not AD-NeRF's windowing)."""
    windows = np.asarray(windows, dtype=np.float32)
    half = ERNERF_WINDOW // 2
    count = windows.shape[0]
    native = np.empty((2 * count, windows.shape[2]), np.float32)
    native[0::2] = windows[:, half]
    native[1::2] = windows[:, half + 1]
    if count > 0 and not native[-1].any():
        native = native[:-1]
    rebuilt = window_features(native, NATIVE_RATE, ERNERF_FPS, count, ERNERF_WINDOW)
    if not np.allclose(rebuilt, windows, rtol=0.0, atol=1e-5):
        worst = np.unravel_index(np.argmax(np.abs(rebuilt - windows)), windows.shape)
        raise InputError(
            f"{source}: the [T, 16, D] windows are not ER-NeRF's (16 frames, stride 2 at 50 Hz, 8 zero "
            f"frames each side): window {worst[0]} frame {worst[1]} disagrees with its neighbours",
            fix="import the aud_ds.npy written by ER-NeRF/AD-NeRF's deepspeech_features.py unchanged",
        )
    return native


class ImportedEncoder(AudioEncoder):
    """Features looked up by the audio's content hash among a dataset's imported files."""

    pretrained = True
    cacheable = False

    def __init__(self, spec: ImportedSpec, features: ImportedFeatures, describe: Any = None):
        self.name = spec.name
        self.dim = spec.dim
        self.features = features
        self._describe = describe

    @property
    def id(self) -> str:
        """``deepspeech-0.1.0:imported-<first 12 hex of the digest of the imported source files>``."""
        return f"{self.name}:imported-{self.features.digest[:12]}"

    def encode(self, audio: np.ndarray) -> np.ndarray:
        from avatars.audio.cache import audio_hash

        digest = audio_hash(audio)
        path = self.features.files.get(digest)
        if path is None:
            where = self._describe(digest) if self._describe is not None else f"audio sha256 {digest[:16]}"
            raise InputError(
                f"no imported {self.name} features for {where}: they exist only for the dataset's "
                "sequences as imported",
                fix=import_fix(self.name),
            )
        return np.load(path, allow_pickle=False).astype(np.float32, copy=False)


def open_imported(name: str, cache: Any) -> ImportedEncoder:
    """The imported encoder ``name`` of the dataset behind ``cache`` (``method.audio_cache``).

    :class:`EncoderUnavailable` when there is no cache or nothing imported (Audio-Plane then uses the
    offline ``filterbank29``); ``InputError`` for a stale, partial or malformed import."""
    spec = IMPORTED_ENCODERS[name]
    lookup = getattr(cache, "imported_features", None)
    if lookup is None:
        raise EncoderUnavailable(
            f"{name} features are imported per dataset and no dataset feature cache was given",
            fix="pass cache=method.audio_cache to resolve_encoder",
        )
    features = lookup(name)
    if features is None or not features.present:
        raise EncoderUnavailable(f"no {name} features imported in this dataset", fix=import_fix(name))
    if features.problems:
        raise InputError(
            f"the imported {name} features are unusable: " + "; ".join(features.problems),
            fix=import_fix(name),
        )
    return ImportedEncoder(spec, features, getattr(cache, "describe", None))
