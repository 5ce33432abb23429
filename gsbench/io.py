"""Atomic writes (temp file in the same folder + ``os.replace``) and content hashes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TEMP_MARKER = ".gsbench-tmp."  # in the name of every temporary file and staging folder gsbench writes


def current_umask() -> int:
    """The process umask (read from /proc on Linux, where reading it does not change it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files and staging folders (names holding :data:`TEMP_MARKER`) that a killed
    gsbench process left under ``folder``. Call it only while holding the folder's :func:`folder_lock`:
    a running writer's temporaries look the same."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for current, dirs, files in os.walk(folder):
        for name in list(dirs):
            if TEMP_MARKER in name:
                shutil.rmtree(Path(current) / name, ignore_errors=True)
                dirs.remove(name)
                removed.append(Path(current) / name)
        for name in files:
            if TEMP_MARKER in name:
                (Path(current) / name).unlink(missing_ok=True)
                removed.append(Path(current) / name)
    return removed


def staging_dir(parent: str | Path, name: str) -> Path:
    """A new, empty folder ``<parent>/.<name>.gsbench-tmp.<random>`` of this attempt alone."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}{TEMP_MARKER}", dir=parent))
    folder.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; it may become a shared result folder
    return folder


@contextlib.contextmanager
def folder_lock(lock_file: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created, holding our PID) while the block runs.

    Raises :class:`gsbench.errors.BusyError` naming the holder's PID when another process holds it.
    The lock is an ``flock``: the kernel releases it when its holder exits, even on SIGKILL, so a
    killed run never leaves a stale lock behind."""
    import fcntl

    from gsbench.errors import BusyError

    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise BusyError(
                f"{what} is already running, PID {holder}",
                path=lock_file.parent,
                fix=f"wait for PID {holder} to finish (or stop it), then run again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def load_npz(path: str | Path, fix: str = "re-run the step that wrote it") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read now; a missing, truncated or corrupt file raises
    :class:`gsbench.errors.InputError` naming it (not ``BadZipFile: File is not a zip file``)."""
    import zipfile
    import zlib

    from gsbench.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError("missing", path=path, fix=fix)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError) as error:
        raise InputError(
            f"unreadable .npz, truncated or corrupt ({type(error).__name__}: {error})", path=path, fix=fix
        ) from error


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` defaults to the target's suffix so tools that dispatch on it (ffmpeg, cv2) still work.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}{TEMP_MARKER}",
        suffix=suffix if suffix is not None else path.suffix,
        dir=path.parent,
    )
    # mkstemp creates 0600; the file replaces a normal one, so give it the mode open() would (0666 & ~umask):
    # datasets, results and leaderboards are read by other accounts (Ray workers, colleagues).
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy arrays/scalars, paths and dataclasses."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, default=json_default, allow_nan=True) + "\n")


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
