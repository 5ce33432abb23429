"""Audio features of a dataset: the per-dataset feature cache the runner hands to every method.

``dataset_feature_cache(dataset)`` is what ``benchmark.runner`` sets as ``method.audio_cache``: a
:class:`avatars.audio.cache.FeatureCache` on ``<dataset>/audio_features_cache/`` whose error messages name
the sequence an audio belongs to.
"""

from __future__ import annotations

import functools

from avatars.audio.cache import FeatureCache, audio_hash, dataset_cache_folder
from benchmark.dataset import Dataset


def sequence_audio_hashes(dataset: Dataset) -> dict[str, str]:
    """sequence id -> :func:`audio_hash` of its ``audio.wav`` as ``Dataset.load_audio`` returns it."""
    return {sequence: audio_hash(dataset.load_audio(sequence)) for sequence in sorted(dataset.sequences)}


def dataset_feature_cache(dataset: Dataset) -> FeatureCache:
    """The feature cache of ``dataset`` (``<dataset>/audio_features_cache/``)."""

    @functools.cache
    def by_hash() -> dict[str, str]:
        return {digest: sequence for sequence, digest in sequence_audio_hashes(dataset).items()}

    def describe(digest: str) -> str | None:
        sequence = by_hash().get(digest)
        return None if sequence is None else f"{dataset.audio_path(sequence)} (sequence {sequence})"

    return FeatureCache(dataset_cache_folder(dataset.root), describe=describe)
