"""Per-dataset cache of audio-encoder features, keyed by the audio's content hash and the encoder id.

Layout (one folder per dataset, written atomically; the dataset's content hash does not cover it)::

    <dataset>/audio_features_cache/<encoder-slug>/encoder.json     # {"encoder_id": ..., "dim": ...}
    <dataset>/audio_features_cache/<encoder-slug>/<audio-sha>.npy  # [K, D] float32 at the native rate

``<audio-sha>`` is :func:`audio_hash` (sha256 of the 16 kHz mono float32 samples, first 32 hex), so the
same audio reaches the same file whichever sequence, protocol or method asks for it: ``gsbench run
--method all`` computes each encoder once per sequence and a second run only reads. ``<encoder-slug>``
is the encoder id made file-name safe plus the first 8 hex of the id's sha256 (ids with different
weights never share a folder).

The cache is only an accelerator: an unreadable or malformed entry is recomputed (with a warning), and a
dataset folder that cannot be written is used read-only (warned once), never a different result.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gsbench.io import atomic_path, write_json

logger = logging.getLogger("avatars.audio")

CACHE_DIRNAME = "audio_features_cache"


def audio_hash(audio: np.ndarray) -> str:
    """sha256 hex of ``audio`` as contiguous little-endian float32 samples (16 kHz mono)."""
    samples = np.ascontiguousarray(np.asarray(audio, dtype="<f4").reshape(-1))
    return hashlib.sha256(samples.tobytes()).hexdigest()


def encoder_slug(encoder_id: str) -> str:
    """File-name-safe folder name of ``encoder_id``: readable prefix + first 8 hex of its sha256."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("_")[:60]
    return f"{readable}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:8]}"


class FeatureCache:
    """``get_or_compute(encoder, audio) -> [K, D]``: cached ``encoder.encode(audio)``.

    ``folder`` is the dataset's ``audio_features_cache/``; ``None`` keeps entries in memory only.
    ``imported(name)`` returns the :class:`avatars.audio.imported.ImportedFeatures` of an encoder whose
    features are imported per sequence (DeepSpeech 0.1.0), or None; it is called once per name, when an
    encoder is opened (:meth:`imported_features`). ``describe(sha256)`` names the sequence of an audio.
    ``hits`` / ``misses`` count lookups (a wav2vec 2.0 video-rate miss also looks up its TCN output);
    ``seconds`` is the wall time spent in them (the benchmark and tests read these).
    """

    def __init__(
        self,
        folder: str | Path | None,
        *,
        imported: Callable[[str], Any] | None = None,
        describe: Callable[[str], str | None] | None = None,
        memory_entries: int = 64,
    ):
        self.folder = Path(folder) if folder is not None else None
        self._imported = imported
        self._imported_memo: dict[str, Any] = {}
        self._describe = describe  # audio sha256 -> "sequence X of dataset Y" (error messages)
        self._memory: collections.OrderedDict[tuple[str, str], np.ndarray] = collections.OrderedDict()
        self._memory_entries = memory_entries
        self._read_only_warned = False
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0
        self._depth = 0

    def __repr__(self) -> str:
        return f"FeatureCache({self.folder}, hits={self.hits}, misses={self.misses})"

    def describe(self, digest: str) -> str:
        """Where the audio with sha256 ``digest`` comes from, for error messages."""
        described = self._describe(digest) if self._describe is not None else None
        return described or f"audio sha256 {digest[:16]}"

    def imported_features(self, name: str) -> Any:
        """The imported features of encoder ``name`` in this dataset (None: nothing imported)."""
        if self._imported is None:
            return None
        if name not in self._imported_memo:
            self._imported_memo[name] = self._imported(name)
        return self._imported_memo[name]

    def path(self, key: str, digest: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / encoder_slug(key) / f"{digest[:32]}.npy"

    def get_or_compute(self, encoder: Any, audio: np.ndarray) -> np.ndarray:
        """``encoder.encode(audio)`` (``[K, encoder.dim]`` float32), read from the cache when present."""
        if not getattr(encoder, "cacheable", True):  # imported features: already a file, counted as read
            start = time.perf_counter()
            features = encoder.encode(audio)
            self.hits += 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - start
            return features
        return self.get_or_compute_key(encoder.id, audio, lambda: encoder.encode(audio), dim=encoder.dim)

    def get_or_compute_key(
        self, key: str, audio: np.ndarray, compute: Callable[[], np.ndarray], dim: int | None = None
    ) -> np.ndarray:
        """The array ``compute()`` returns for ``audio`` under ``key`` (an encoder id, or an id plus the
        parameters of a derived feature such as wav2vec 2.0's video-rate output), cached."""
        start = time.perf_counter()
        self._depth += 1  # a derived feature computes its base feature inside: time counted once
        try:
            digest = audio_hash(audio)
            memo_key = (key, digest)
            if memo_key in self._memory:
                self._memory.move_to_end(memo_key)
                self.hits += 1
                return self._memory[memo_key].copy()
            path = self.path(key, digest)
            features = self._read(path, dim) if path is not None else None
            if features is not None:
                self.hits += 1
            else:
                self.misses += 1
                features = np.ascontiguousarray(compute(), dtype=np.float32)
                if path is not None:
                    self._write(path, key, features)
            self._remember(memo_key, features)
            return features.copy()
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - start

    def _remember(self, memo_key: tuple[str, str], features: np.ndarray) -> None:
        self._memory[memo_key] = features
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def _read(self, path: Path, dim: int | None) -> np.ndarray | None:
        if not path.is_file():
            return None
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            logger.warning("audio feature cache entry %s unreadable (%s): recomputing", path, error)
            return None
        if (
            features.dtype != np.float32
            or features.ndim < 2
            or features.shape[0] == 0
            or (dim is not None and features.shape[-1] != dim)
            or not np.isfinite(features).all()
        ):
            logger.warning("audio feature cache entry %s malformed %s: recomputing", path, features.shape)
            return None
        return features

    def _write(self, path: Path, key: str, features: np.ndarray) -> None:
        try:
            with atomic_path(path) as tmp:
                np.save(tmp, features, allow_pickle=False)
            sidecar = path.parent / "encoder.json"
            if not sidecar.is_file():
                write_json(sidecar, {"encoder_id": key, "dim": int(features.shape[-1])})
        except OSError as error:
            if not self._read_only_warned:
                logger.warning("audio feature cache %s not writable (%s): kept in memory", path, error)
                self._read_only_warned = True


def dataset_cache_folder(dataset_root: str | Path) -> Path:
    """``<dataset>/audio_features_cache``."""
    return Path(dataset_root) / CACHE_DIRNAME
