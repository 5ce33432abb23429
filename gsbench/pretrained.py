"""Pretrained networks: how a metric or method declares one, and the one reader of their state dicts.

A module that uses a pretrained file declares it where it is used, with :func:`declare`::

    ALEXNET = declare(PretrainedNetwork(
        name="lpips-alexnet", filename="alexnet-owt-7be5be79.pth", url="https://...",
        description="torchvision ImageNet AlexNet", used_by="LPIPS (benchmark.metrics.lpips_metric)",
        sha256_prefix="7be5be79", check=check_alexnet_state_dict,
    ))

``benchmark.weights.WeightRegistry`` (``gsbench weights list|add|find``, ``gsbench doctor``) collects
these declarations; it holds no table of its own. This module imports nothing of gsbench's upper layers
(torch only inside the readers), so ``tracking``, ``avatars`` and ``benchmark`` can all declare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gsbench.errors import WeightsError


@dataclasses.dataclass(frozen=True)
class PretrainedNetwork:
    """One pretrained file (or Hugging Face folder) a metric or method can use, looked up by ``name``."""

    name: str
    filename: str  # file (or folder, layout "hf-folder") name in a weights folder
    url: str  # where the user gets it ("" for files gsbench makes itself)
    description: str
    used_by: str = ""  # what uses it (metric, loss, encoder), shown by `gsbench weights list`
    expected_sha256: str | None = None  # full hex digest where the source publishes one
    sha256_prefix: str | None = None  # published prefix (torchvision file names) where only that is known
    origin: str = "official"  # "official" (the authors' file) or "ours" (trained by gsbench)
    checksum_note: str = ""
    network: str = ""  # architecture WeightRegistry.load_network builds for it ("" = none)
    layout: str = "file"  # "file", or "hf-folder": ``filename`` names a Hugging Face model folder
    # architecture check of a candidate file: None when it fits, else the reason (the registry runs it
    # after the sha256 check, before accepting the file)
    check: Callable[[Path], str | None] | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return "folder" if self.layout == "hf-folder" else "file"

    def check_digest(self, digest: str) -> str | None:
        """None when ``digest`` matches what is declared, else the reason it does not."""
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            return f"sha256 {digest} != registered {self.expected_sha256}"
        if self.sha256_prefix is not None and not digest.startswith(self.sha256_prefix):
            return f"sha256 {digest[:16]}... does not start with the published prefix {self.sha256_prefix}"
        return None


@dataclasses.dataclass(frozen=True)
class NetworkFamily:
    """Networks whose names share ``prefix`` and are made on the fly (e.g. SyncNets trained here,
    ``syncnet-gsbench-<sha8>``): ``spec(name)`` declares one; files ``<prefix>*<suffix>`` found in a
    weights folder are listed by name."""

    prefix: str
    suffix: str
    spec: Callable[[str], PretrainedNetwork]
    description: str = ""


_DECLARED: dict[str, PretrainedNetwork] = {}
_FAMILIES: dict[str, NetworkFamily] = {}


def declare(network: PretrainedNetwork) -> PretrainedNetwork:
    """Declare ``network`` (once per name; the same declaration again is a no-op); returns it."""
    known = _DECLARED.get(network.name)
    if known is not None and known != network:
        raise ValueError(f"pretrained network {network.name!r} is declared twice, differently")
    _DECLARED[network.name] = network
    return network


def undeclare(name: str) -> None:
    """Remove a declaration (tests that declare a network of their own clean up with this)."""
    _DECLARED.pop(name, None)


def declare_family(family: NetworkFamily) -> NetworkFamily:
    _FAMILIES[family.prefix] = family
    return family


def declared() -> Mapping[str, PretrainedNetwork]:
    """Every network declared so far in this process (the modules that declare must have been imported:
    ``benchmark.weights`` imports them through the metric, method and audio-encoder registries)."""
    return dict(_DECLARED)


def families() -> Mapping[str, NetworkFamily]:
    return dict(_FAMILIES)


def read_checkpoint(path: str | Path, *, fix: str = "pass the original file") -> dict[str, Any]:
    """The dict a torch checkpoint holds (``torch.load(weights_only=True)``, memory-mapped where the file
    allows); WeightsError naming the file when it is unreadable or not a dict."""
    import torch

    path = Path(path)
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    except Exception as error:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(f"cannot read as a torch state dict ({error})", path=path, fix=fix) from error
    if not isinstance(loaded, dict):
        raise WeightsError(f"expected a state dict, found {type(loaded).__name__}", path=path, fix=fix)
    return loaded


def read_state_dict(path: str | Path, *, fix: str = "pass the original file") -> dict[str, Any]:
    """The state dict in ``path``: a bare one, or the ``state_dict`` of a ``{"state_dict": ...}``
    checkpoint; ``module.`` prefixes (DataParallel) removed."""
    state = read_checkpoint(path, fix=fix)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {key.removeprefix("module."): value for key, value in state.items()}


def shape_problem(state: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], what: str) -> str | None:
    """None if ``state`` holds every key of ``expected`` with that shape, else the first difference,
    worded ``not a <what> state dict: ...``. Extra keys in ``state`` are allowed."""
    for key, shape in expected.items():
        if key not in state:
            return f"not a {what} state dict: missing key {key}"
        if tuple(state[key].shape) != tuple(shape):
            return (
                f"not a {what} state dict: {key} has shape {tuple(state[key].shape)}, expected {tuple(shape)}"
            )
    return None


def check_state_dict(path: str | Path, expected: Mapping[str, tuple[int, ...]], what: str) -> str | None:
    """:func:`shape_problem` of the file ``path`` (an unreadable file gives the reader's reason)."""
    try:
        state = read_state_dict(path)
    except WeightsError as error:
        return str(error)
    return shape_problem(state, expected, what)
