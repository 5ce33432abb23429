"""Registry of the pretrained networks the metrics and methods use.

It holds no table of its own: a metric, a method's loss or an audio encoder declares the networks it can
use where it uses them (``gsbench.pretrained.PretrainedNetwork``: name, file or folder, source, checksum,
architecture check, what uses it), and :func:`declared_networks` collects those declarations from the
metric registry (``benchmark/metrics/``), every registered method's modules, the audio encoders
(``avatars.audio.pretrained``) and the ``gsbench.networks`` entry-point group. See docs/extending.md,
"Add a pretrained network".

Every pretrained file is looked up by **name**, checked against its declared **sha256**, and
reported by its **id** (``name:<first 12 hex of its sha256>``) in every result it produces.

Where a file is looked for, first hit wins:

1. ``$GSBENCH_WEIGHTS`` (one folder, or several separated by ``os.pathsep``),
2. ``~/.cache/gsbench/weights`` (the user folder; ``gsbench weights add`` copies files here),
3. the torch hub cache ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``),
   where torchvision leaves ``alexnet-owt-7be5be79.pth`` on a machine that has downloaded it.

Checks, in this order, for every candidate file (each declaration says which apply, and why, in its
``checksum_note``; ``gsbench weights list`` shows them):

* the sha256: the full digest where the source publishes one (``expected_sha256``), else the published
  prefix (``sha256_prefix``: torchvision and torch-hub file names carry the first 8+ hex of it), else none
  (the authors publish no checksum: syncnet_v2.model, insightface's ArcFace ``backbone.pth``);
* the architecture: the declaration's ``check`` (every state-dict key and shape the loader needs), or, for
  a declaration with a ``network`` (``vgg16``, ``iresnet100``, ...), every key and shape of that
  architecture, which :meth:`WeightRegistry.load_network` builds and loads the file into;
* Hugging Face folders (``layout="hf-folder"``: the speech encoders): ``add`` checks the folder
  (``config.json``'s ``model_type``, the weight file's keys), copies it and records the weight file's
  sha256 in ``gsbench-weights.json``; every later use re-hashes the file and refuses a folder whose file
  changed (or that was never added).

A file that fails is never used and never replaced by another: the metric or loss is reported missing with
the reason. SyncNets trained here (``syncnet-gsbench-<sha8>``, a declared family) are ours, not the official
network: the name says so, the sidecar ``.json`` records the dataset, seed and schedule. DeepSpeech 0.1.0
(Audio-Plane) is not a weight here: its features are imported per dataset (``gsbench audio
import-features``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from gsbench.errors import InputError, WeightsError
from gsbench.io import atomic_path, sha256_file, write_json
from gsbench.pretrained import PretrainedNetwork, check_state_dict, declared, families, read_state_dict
from gsbench.progress import warn

ENTRY_POINT_GROUP = "gsbench.networks"  # third-party modules that declare networks
AUDIO_ENCODER_MODULE = "avatars.audio.pretrained"  # the audio encoders' declarations (see open_encoder)
HF_FOLDER_MANIFEST = "gsbench-weights.json"  # written by ``add`` into a registered folder: its sha256

_collected = False


def _collect() -> None:
    """Import every module that declares networks, once: the metric modules, each registered method's
    module (and so the loss modules it imports), the audio encoders, the entry points."""
    global _collected
    if _collected:
        return
    _collected = True
    from benchmark import methods
    from gsbench.metric_table import load_declarations

    load_declarations()
    for name, spec in methods.registry().items():
        try:
            spec.load()
        except ImportError as error:
            warn(f"method {name}: cannot import it to read the networks it declares ({error})")
    importlib.import_module(AUDIO_ENCODER_MODULE)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def declared_networks() -> dict[str, PretrainedNetwork]:
    """Every declared network, by name (sorted: the listing does not depend on import order)."""
    _collect()
    return dict(sorted(declared().items()))


def method_users() -> dict[str, list[str]]:
    """network name -> the registered methods that list it in ``pretrained_networks``."""
    from benchmark import methods

    _collect()
    users: dict[str, list[str]] = {}
    for method, spec in methods.registry().items():
        try:
            listed = spec.load().pretrained_networks
        except ImportError:
            continue
        for network in listed:
            users.setdefault(network, []).append(method)
    return users


class _Declared(Mapping):
    """``name -> PretrainedNetwork`` of every declared network (collected on first use)."""

    def __getitem__(self, name: str) -> PretrainedNetwork:
        return declared_networks()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(declared_networks())

    def __len__(self) -> int:
        return len(declared_networks())


REGISTRY: Mapping[str, PretrainedNetwork] = _Declared()
"""Every declared network (read-only view; declare new ones with ``gsbench.pretrained.declare``)."""


def _network_module(network: str):
    """The architecture of ``network`` with its parameters on the meta device (shapes only, no memory)."""
    import torch

    with torch.device("meta"):
        return _new_network(network)


def _new_network(network: str):
    from avatars.perceptual import IResNet, VGGFeatures

    if network.startswith("iresnet"):
        return IResNet(int(network.removeprefix("iresnet")))
    return VGGFeatures(network)


def _expected_shapes(network: str) -> dict[str, tuple[int, ...]]:
    """Keys and shapes a file of ``network`` must hold (BatchNorm ``num_batches_tracked`` counters aside)."""
    state = _network_module(network).state_dict()  # VGGFeatures: torchvision's ``features.*`` keys
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}


def check_network_state_dict(path: Path, network: str) -> str | None:
    """None if ``path`` holds every key of ``network`` with the right shape, else the first problem."""
    return check_state_dict(path, _expected_shapes(network), network)


def build_network(path: Path, network: str):
    """Build ``network`` (torchvision VGG features or our ArcFace IResNet) on the CPU and load the state
    dict in ``path`` into it; returned frozen (eval mode, no gradients)."""
    import torch

    from avatars.perceptual import frozen

    state = read_state_dict(path)
    module = _new_network(network)
    wanted = module.state_dict()
    tensors = {k: state[k].to(torch.float32) for k in wanted if k in state}
    missing = [k for k in wanted if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsError(
            f"not a {network} state dict: missing {missing[:3]}", path=path, fix="pass the original file"
        )
    module.load_state_dict(tensors, strict=False)
    return frozen(module)


NETWORKS = ("vgg16", "vgg19", "iresnet50", "iresnet100", "iresnet18", "iresnet34")
"""Architectures ``PretrainedNetwork.network`` may name (iresnet18/34: sites with smaller ArcFaces)."""


@dataclasses.dataclass(frozen=True)
class ResolvedWeight:
    """A registered file found on disk and verified."""

    name: str
    path: Path
    sha256: str
    origin: str

    @property
    def weight_id(self) -> str:
        return f"{self.name}:{self.sha256[:12]}"


def default_search_paths() -> list[Path]:
    paths: list[Path] = []
    env = os.environ.get("GSBENCH_WEIGHTS", "")
    paths += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    paths.append(user_weights_dir())
    torch_home = os.environ.get("TORCH_HOME")
    hub = Path(torch_home).expanduser() if torch_home else Path("~/.cache/torch").expanduser()
    paths.append(hub / "hub" / "checkpoints")
    return paths


def user_weights_dir() -> Path:
    """Where ``gsbench weights add`` and ``train-syncnet`` store files: ``~/.cache/gsbench/weights``."""
    return Path("~/.cache/gsbench/weights").expanduser()


class WeightRegistry:
    """Finds, verifies and reports the declared weight files.

    ``syncnet`` names the SyncNet that LSE-D/LSE-C use: ``syncnet-v2`` (official, the default) or a
    ``syncnet-gsbench-<sha8>`` trained here. Nothing is substituted when the named file is missing.
    """

    def __init__(
        self,
        search_paths: list[Path] | None = None,
        *,
        syncnet: str = "syncnet-v2",
        specs: dict[str, PretrainedNetwork] | None = None,
    ):
        self.search_paths = [
            Path(p) for p in (search_paths if search_paths is not None else default_search_paths())
        ]
        self.syncnet = syncnet
        # ``specs`` replaces declared entries by name (tests, or a site pinning its own files)
        self.overrides = dict(specs or {})
        self._verified: dict[Path, str] = {}

    @property
    def specs(self) -> dict[str, PretrainedNetwork]:
        """Every declared network (collected on first use), with this registry's overrides."""
        return {**declared_networks(), **self.overrides}

    def spec(self, name: str) -> PretrainedNetwork:
        if name in self.overrides:
            return self.overrides[name]
        if name not in declared():  # its declaring module may not be imported in this process yet
            _collect()
        if name in declared():
            return declared()[name]
        for prefix, family in families().items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return family.spec(name)
        known = ", ".join(sorted(self.specs) + [f"{prefix}<sha8>" for prefix in families()])
        raise WeightsError(f"unknown weight name {name!r}", fix=f"use one of: {known}")

    def names(self) -> list[str]:
        """Declared names plus every file of a network family (trained SyncNets) in the search paths."""
        found = set()
        for folder in self.search_paths:
            if folder.is_dir():
                for family in families().values():
                    found.update(
                        p.name.removesuffix(family.suffix)
                        for p in folder.glob(f"{family.prefix}*{family.suffix}")
                    )
        names = list(self.specs)
        return names + sorted(found - set(names))

    def candidates(self, name: str) -> list[Path]:
        spec = self.spec(name)
        present = Path.is_dir if spec.layout == "hf-folder" else Path.is_file
        return [folder / spec.filename for folder in self.search_paths if present(folder / spec.filename)]

    def find(self, name: str) -> ResolvedWeight:
        """The first candidate file of ``name`` that passes its checks; WeightsError if none does."""
        spec = self.spec(name)
        problems = []
        for path in self.candidates(name):
            reason = self._verify(spec, path)
            if reason is None:
                return ResolvedWeight(spec.name, path, self._verified[path], spec.origin)
            problems.append(f"{path}: {reason}")
        where = ", ".join(str(p) for p in self.search_paths)
        if problems:
            raise WeightsError(
                f"no valid {spec.filename} for {name!r}: " + "; ".join(problems),
                fix=f"gsbench weights add {name} <{'folder' if spec.layout == 'hf-folder' else 'file'} "
                f"from {spec.url or 'train-syncnet'}>",
            )
        fix = (
            f"download {spec.url} and run: gsbench weights add {name} FILE"
            if spec.url
            else "gsbench weights train-syncnet DATASET"
        )
        if spec.layout == "hf-folder":
            fix = f"download the folder of {spec.url} and run: gsbench weights add {name} DIR"
        raise WeightsError(f"{spec.filename} ({name}) not found in {where}", fix=fix)

    def status(self, name: str) -> tuple[str, ResolvedWeight | None, str]:
        """(``ok`` | ``missing`` | ``invalid``, the resolved weight or None, reason)."""
        try:
            return "ok", self.find(name), ""
        except WeightsError as error:
            return ("invalid" if self.candidates(name) else "missing"), None, str(error)

    def load_network(self, name: str):
        """(the network built from ``name``'s verified file, frozen, on the CPU; its ResolvedWeight).

        Raises WeightsError when the file is missing or invalid (never downloads or substitutes one), or
        when ``name`` has no network definition."""
        spec = self.spec(name)
        if spec.network not in NETWORKS:
            raise WeightsError(
                f"{name!r} has no network definition to load into",
                fix=f"load_network serves the entries with a network: {', '.join(NETWORKS)}",
            )
        resolved = self.find(name)
        return build_network(resolved.path, spec.network), resolved

    def _verify_folder(self, spec: PretrainedNetwork, path: Path, registered: bool = True) -> str | None:
        """None if the Hugging Face folder ``path`` passes the declared check and its weight file has the
        sha256 ``add`` recorded (``registered``) and the declared digest, if any."""
        from avatars.audio.pretrained import weight_file

        problem = spec.check(path) if spec.check is not None else None
        if problem is not None:
            return problem
        weights_path = weight_file(path)
        if weights_path is None:
            return f"no weight file in {path}"
        digest = self._verified.get(path) or sha256_file(weights_path)
        reason = spec.check_digest(digest)
        if reason is None and registered:
            manifest_path = path / HF_FOLDER_MANIFEST
            try:
                manifest = json.loads(manifest_path.read_text())
            except (OSError, json.JSONDecodeError):
                return (
                    f"not registered: no readable {HF_FOLDER_MANIFEST} "
                    f"(run: gsbench weights add {spec.name} DIR)"
                )
            if manifest.get("sha256") != digest or manifest.get("weight_file") != weights_path.name:
                return (
                    f"{weights_path.name} changed since it was registered: sha256 {digest[:16]}... != "
                    f"registered {str(manifest.get('sha256'))[:16]}... ({manifest.get('weight_file')})"
                )
        if reason is None:
            self._verified[path] = digest
        return reason

    def _verify(self, spec: PretrainedNetwork, path: Path) -> str | None:
        if spec.layout == "hf-folder":
            return self._verify_folder(spec, path)
        digest = self._verified.get(path) or sha256_file(path)
        reason = spec.check_digest(digest)
        if reason is None:
            structure = spec.check
            if spec.network:
                structure = functools.partial(check_network_state_dict, network=spec.network)
            if structure is not None:
                reason = structure(path)
        if reason is None:
            self._verified[path] = digest
        return reason

    def add(self, name: str, source: Path, dest_dir: Path | None = None) -> ResolvedWeight:
        """Verify ``source`` against ``name``'s registration and copy it atomically into the user folder."""
        spec = self.spec(name)
        source = Path(source)
        if spec.layout == "hf-folder":
            return self._add_folder(spec, source, dest_dir)
        if not source.is_file():
            raise InputError("weight file not found", path=source, fix="pass the path of the downloaded file")
        reason = self._verify(spec, source)
        if reason is not None:
            raise WeightsError(
                f"rejected as {name!r}: {reason}",
                path=source,
                fix=f"get the file from {spec.url}" if spec.url else "re-run train-syncnet",
            )
        dest = (dest_dir or user_weights_dir()) / spec.filename
        digest = self._verified[source]
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
            if sha256_file(tmp) != digest:
                raise WeightsError("copy does not match the source's sha256", path=dest, fix="retry")
        sidecar = source.with_suffix(".json")
        if spec.origin == "ours" and sidecar.is_file():
            write_json(dest.with_suffix(".json"), json.loads(sidecar.read_text()))
        self._verified[dest] = digest
        return ResolvedWeight(name, dest, digest, spec.origin)

    def _add_folder(self, spec: PretrainedNetwork, source: Path, dest_dir: Path | None) -> ResolvedWeight:
        """Check the Hugging Face folder ``source``, copy its config, preprocessor config and weight
        file into ``<dest_dir>/<name>/`` (staged, then renamed) and record the weight file's sha256."""
        from avatars.audio.pretrained import weight_file

        if not source.is_dir():
            raise InputError(
                "not a folder",
                path=source,
                fix="pass the model folder (config.json + model.safetensors or pytorch_model.bin)",
            )
        reason = self._verify_folder(spec, source, registered=False)
        if reason is not None:
            raise WeightsError(
                f"rejected as {spec.name!r}: {reason}", path=source, fix=f"get it from {spec.url}"
            )
        digest = self._verified.pop(source)
        weights_path = weight_file(source)
        dest = (dest_dir or user_weights_dir()) / spec.filename
        staging = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            for name in ("config.json", "preprocessor_config.json", weights_path.name):
                if (source / name).is_file():
                    shutil.copyfile(source / name, staging / name)
            if sha256_file(staging / weights_path.name) != digest:
                raise WeightsError("copy does not match the source's sha256", path=dest, fix="retry")
            write_json(
                staging / HF_FOLDER_MANIFEST,
                {
                    "name": spec.name,
                    "weight_file": weights_path.name,
                    "sha256": digest,
                    "source": str(source),
                },
            )
            old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
            if dest.exists():
                dest.rename(old)
            staging.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._verified[dest] = digest
        return ResolvedWeight(spec.name, dest, digest, spec.origin)
