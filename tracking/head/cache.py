"""On-disk cache of built ``gsbench-head`` models, keyed by seed and a hash of the builder's code.

:func:`build_default_head` always builds (it is the reference the determinism tests check); callers
that only need the model can use :func:`load_or_build_default_head`, which reads
``<cache_dir>/gsbench-head_seed<seed>_<code hash>.npz`` when present and otherwise builds the model
and writes that file atomically. Changing any source file of :mod:`tracking.head` (or
:mod:`tracking.head_model`) changes the hash, so a stale model is never read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import tracking.head_model
from gsbench.errors import InputError
from tracking.head.build import build_default_head
from tracking.head_model import HeadModel


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gsbench/heads`` (``~/.cache/gsbench/heads`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gsbench" / "heads"


def code_version() -> str:
    """SHA-256 (hex) of the source of every module the built model depends on."""
    digest = hashlib.sha256()
    sources = sorted(Path(__file__).parent.glob("*.py")) + [Path(tracking.head_model.__file__)]
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cache_path(seed: int, cache_dir: str | Path | None = None) -> Path:
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return folder / f"gsbench-head_seed{int(seed)}_{code_version()[:16]}.npz"


def load_or_build_default_head(seed: int = 0, cache_dir: str | Path | None = None) -> HeadModel:
    """``build_default_head(seed)``, read from the on-disk cache when this code built it before.

    A cache file that cannot be read (e.g. truncated by a full disk) is rebuilt and overwritten.
    """
    path = cache_path(seed, cache_dir)
    if path.is_file():
        try:
            return HeadModel.load(path)
        except InputError:
            pass  # unreadable cache entry: rebuilt below
    model = build_default_head(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model
