"""Audio features of a dataset: the per-dataset feature cache and imported (precomputed) features.

* :func:`dataset_feature_cache` is what ``benchmark.runner`` sets as ``method.audio_cache``: a
  :class:`avatars.audio.cache.FeatureCache` on ``<dataset>/audio_features_cache/`` whose error messages
  name the sequence an audio belongs to, and through which imported features are found.
* :func:`import_features` / :func:`import_features_folder` (``gsbench audio import-features``) store
  precomputed DeepSpeech 0.1.0 features as ``sequences/<seq>/audio_features/<encoder>.npy`` after
  checking their shape and frame count against the sequence (``avatars.audio.imported``).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from avatars.audio.base import NATIVE_RATE, check_audio
from avatars.audio.cache import FeatureCache, audio_hash, dataset_cache_folder
from avatars.audio.imported import (
    ERNERF_FPS,
    ERNERF_WINDOW,
    FEATURES_DIRNAME,
    IMPORTED_ENCODERS,
    ImportedFeatures,
    native_from_windows,
)
from benchmark.dataset import Dataset
from gsbench.errors import InputError
from gsbench.io import atomic_path, sha256_file, write_json

logger = logging.getLogger("benchmark.audio_features")

FRAME_TOLERANCE = 1  # video frames: T of aud_ds.npy may differ from the sequence's by the audio's rounding


def sequence_audio_hashes(dataset: Dataset) -> dict[str, str]:
    """sequence id -> :func:`audio_hash` of its ``audio.wav`` as ``Dataset.load_audio`` returns it."""
    return {sequence: audio_hash(dataset.load_audio(sequence)) for sequence in sorted(dataset.sequences)}


def imported_path(dataset: Dataset, sequence: str, encoder: str) -> Path:
    """``sequences/<seq>/audio_features/<encoder>.npy``."""
    return dataset.sequence_dir(sequence) / FEATURES_DIRNAME / f"{encoder}.npy"


def dataset_feature_cache(dataset: Dataset) -> FeatureCache:
    """The feature cache of ``dataset`` (``<dataset>/audio_features_cache/``), which also finds the
    dataset's imported features and names a sequence's ``audio.wav`` in errors."""

    @functools.cache
    def hashes() -> dict[str, str]:
        return sequence_audio_hashes(dataset)

    def describe(digest: str) -> str | None:
        sequence = {d: s for s, d in hashes().items()}.get(digest)
        return None if sequence is None else f"{dataset.audio_path(sequence)} (sequence {sequence})"

    return FeatureCache(
        dataset_cache_folder(dataset.root),
        imported=lambda name: scan_imported(dataset, name, hashes),
        describe=describe,
    )


def scan_imported(dataset: Dataset, encoder: str, hashes=None) -> ImportedFeatures | None:
    """The imported ``encoder`` features of ``dataset`` (None when no sequence has any). Stale files
    (the sequence's audio changed since the import), malformed files and a partial import are listed as
    ``problems``: an encoder is never half real, half fallback."""
    files = {s: imported_path(dataset, s, encoder) for s in sorted(dataset.sequences)}
    files = {s: path for s, path in files.items() if path.is_file()}
    if not files:
        return None
    current = hashes() if hashes is not None else sequence_audio_hashes(dataset)
    problems, by_hash, sources = [], {}, hashlib.sha256()
    dim = IMPORTED_ENCODERS[encoder].dim
    for sequence, path in files.items():
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as error:
            problems.append(f"{path}: unreadable ({error})")
            continue
        if len(shape) != 2 or shape[1] != dim:
            problems.append(f"{path}: shape {shape}, expected [K, {dim}]")
        elif meta.get("audio_sha256") != current[sequence]:
            problems.append(f"{path}: stale, {dataset.audio_path(sequence)} changed since the import")
        else:
            by_hash[current[sequence]] = path
            sources.update(f"{sequence}:{meta.get('source_sha256')}\n".encode())
    missing = sorted(set(dataset.sequences) - set(files))
    if missing:
        problems.append(
            f"partial import: {len(missing)} of {len(dataset.sequences)} sequences lack {encoder}.npy "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
        )
    return ImportedFeatures(encoder, by_hash, tuple(problems), sources.hexdigest())


def import_features(dataset: Dataset, encoder: str, sequence: str, source: str | Path) -> Path:
    """Check ``source`` (ER-NeRF ``aud_ds.npy`` ``[T, 16, 29]``, its transpose ``[T, 29, 16]``, or
    native ``[K, 29]`` at 50 Hz) against ``sequence`` and store it as
    ``sequences/<seq>/audio_features/<encoder>.npy`` (native ``[K, D]``) with a ``.json`` sidecar."""
    if encoder not in IMPORTED_ENCODERS:
        raise InputError(
            f"{encoder!r} has no imported features", fix=f"use one of: {', '.join(IMPORTED_ENCODERS)}"
        )
    if sequence not in dataset.sequences:
        raise InputError(
            f"no sequence {sequence!r} in the dataset",
            path=dataset.root / "dataset.json",
            fix=f"use one of: {', '.join(sorted(dataset.sequences)[:8])}, ...",
        )
    source = Path(source)
    try:
        array = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read as .npy ({error})", path=source, fix="pass aud_ds.npy") from error
    dim = IMPORTED_ENCODERS[encoder].dim
    num_frames = dataset.sequences[sequence].num_frames
    layout = _layout(array.shape, dim)
    if layout is None:
        raise InputError(
            f"shape {array.shape} is not [T, {ERNERF_WINDOW}, {dim}], [T, {dim}, {ERNERF_WINDOW}] "
            f"or [K, {dim}]",
            path=source,
            fix=f"pass the {encoder} features of this sequence",
        )
    source_shape = list(array.shape)
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError("non-finite values", path=source, fix="re-extract the features")
    if layout == "windows-transposed":
        array = array.transpose(0, 2, 1)
    if layout.startswith("windows"):
        if abs(dataset.fps - ERNERF_FPS) > 1e-6:
            raise InputError(
                f"ER-NeRF windows assume {ERNERF_FPS:g} fps video (stride 2 at 50 Hz), the dataset is "
                f"{dataset.fps:g} fps",
                path=source,
                fix="import native [K, 29] features at 50 Hz instead",
            )
        if abs(array.shape[0] - num_frames) > FRAME_TOLERANCE:
            raise InputError(
                f"{array.shape[0]} windows, sequence {sequence} has {num_frames} frames",
                path=source,
                fix=f"pass the aud_ds.npy of sequence {sequence}",
            )
        native = native_from_windows(array, str(source))
    else:
        native = array
        expected = num_frames * NATIVE_RATE / dataset.fps
        if abs(native.shape[0] - expected) > 2 * FRAME_TOLERANCE * NATIVE_RATE / dataset.fps:
            raise InputError(
                f"{native.shape[0]} feature frames at 50 Hz, sequence {sequence} needs about {expected:.0f}",
                path=source,
                fix=f"pass the features of sequence {sequence}",
            )
    audio = check_audio(dataset.load_audio(sequence), str(dataset.audio_path(sequence)))
    target = imported_path(dataset, sequence, encoder)
    with atomic_path(target) as tmp:
        np.save(tmp, np.ascontiguousarray(native, dtype=np.float32), allow_pickle=False)
    write_json(
        target.with_suffix(".json"),
        {
            "encoder": encoder,
            "sequence": sequence,
            "audio_sha256": audio_hash(audio),
            "source": str(source.resolve()),
            "source_sha256": sha256_file(source),
            "source_shape": source_shape,
            "source_layout": layout,
            "native_shape": list(native.shape),
            "rate_hz": NATIVE_RATE,
            "num_frames": num_frames,
            "imported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    )
    logger.info("imported %s for %s: %s -> %s %s", encoder, sequence, source, target, native.shape)
    return target


def _layout(shape: tuple[int, ...], dim: int) -> str | None:
    if len(shape) == 3 and shape[1:] == (ERNERF_WINDOW, dim):
        return "windows"
    if len(shape) == 3 and shape[1:] == (dim, ERNERF_WINDOW):
        return "windows-transposed"
    if len(shape) == 2 and shape[1] == dim:
        return "native"
    return None


def import_features_folder(
    dataset: Dataset, encoder: str, folder: str | Path
) -> tuple[dict[str, Path], list[str]]:
    """Import every sequence found in ``folder`` as ``<seq>.npy``, ``<seq>/aud_ds.npy`` or
    ``<seq>/<encoder>.npy``; returns (sequence -> stored file, sequences not found)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", path=folder, fix="pass a folder of <seq>.npy or <seq>/aud_ds.npy")
    imported, missing = {}, []
    for sequence in sorted(dataset.sequences):
        for candidate in (
            folder / f"{sequence}.npy",
            folder / sequence / "aud_ds.npy",
            folder / sequence / f"{encoder}.npy",
        ):
            if candidate.is_file():
                imported[sequence] = import_features(dataset, encoder, sequence, candidate)
                break
        else:
            missing.append(sequence)
    if not imported:
        raise InputError(
            f"no <seq>.npy, <seq>/aud_ds.npy or <seq>/{encoder}.npy of the dataset's sequences",
            path=folder,
            fix="name the files after the dataset's sequence ids",
        )
    return imported, missing
