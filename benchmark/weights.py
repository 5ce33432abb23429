"""Registry of the pretrained networks the metrics (and later the methods) need.

Every pretrained file is looked up by **name**, checked against its registered **sha256**, and
reported by its **id** (``name:<first 12 hex of its sha256>``) in every result it produces.

Where a file is looked for, first hit wins:

1. ``$GSBENCH_WEIGHTS`` (one folder, or several separated by ``os.pathsep``),
2. ``~/.cache/gsbench/weights`` (the user folder; ``gsbench weights add`` copies files here),
3. the torch hub cache ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``),
   where torchvision leaves ``alexnet-owt-7be5be79.pth`` on a machine that has downloaded it.

Checksums. Only files whose real source is known are registered:

* ``lpips-alexnet``: torchvision's ImageNet AlexNet, ``alexnet-owt-7be5be79.pth``. torchvision names its
  files ``<name>-<first 8 hex of the sha256>.pth`` and checks that prefix on download
  (``torch.hub.download_url_to_file(hash_prefix=...)``); the full sha256 of the official file was not
  available to us, so the registry checks the published 8-hex prefix (``sha256_prefix``) and records the
  full sha256 of the file it found in the id.
* ``syncnet-v2``: ``syncnet_v2.model`` of joonson/syncnet_python (fetched by its ``download_model.sh``).
  Its authors publish no checksum, so ``expected_sha256`` is unknown; the registry accepts the file only
  if it loads into our SyncNet by state-dict key with every shape matching (a structural check), and the
  id carries the sha256 of the file actually used.
* ``syncnet-gsbench-<sha8>``: SyncNets trained by ``gsbench weights train-syncnet`` on a dataset. They
  are ours, not the official network: the name says so, the sidecar ``.json`` records the dataset, seed
  and schedule, and every metric computed with one carries that name in its weight id.

* ``vgg16-imagenet`` / ``vgg19-imagenet``: torchvision's ImageNet VGG16 / VGG19 (IMAGENET1K_V1,
  ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth``), the backbone of GaussianSpeech's patch perceptual loss
  (Eq. 4). As for AlexNet, torchvision's 8-hex file-name prefix is checked; only ``features.*`` is used.
* ``arcface-iresnet100`` / ``arcface-iresnet50``: ArcFace backbones of insightface's ``arcface_torch`` model
  zoo (``ms1mv3_arcface_r100_fp16/backbone.pth`` / ``..._r50_fp16/backbone.pth``), for GaussianSpeech's
  global perceptual loss (Eqs. 1-3). insightface distributes them through share links and publishes no
  checksum: they are **user-supplied**. The registry accepts a file only if every key and shape of our
  IResNet definition (``avatars.perceptual.IResNet``) is in it, and the id records its sha256.

Entries with a ``network`` are loaded by :meth:`WeightRegistry.load_network`, which builds the architecture
(torchvision VGG features, our IResNet) and loads the registered state dict into it; nothing is downloaded.

* ``wav2vec2-base-960h`` / ``hubert-large-ls960-ft``: speech encoders (GaussianSpeech / HiCoDe), each a
  **folder** in the Hugging Face layout (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``,
  ``layout="hf-folder"``), loaded by ``avatars.audio.pretrained`` through ``transformers``. The sha256 of
  the weight file is not pinned here (the hub shows it per file, we could not check it offline):
  ``gsbench weights add NAME DIR`` checks the architecture (``config.json``'s ``model_type`` and the
  weight file's keys), copies the folder and records the sha256 in ``gsbench-weights.json`` inside it;
  every later use re-hashes the weight file and refuses a folder whose file no longer matches (or that
  was never added). The encoder id is ``name:<first 12 hex>`` like every other weight.
* DeepSpeech 0.1.0 (Audio-Plane) is not a weight here: its features are imported per dataset
  (``gsbench audio import-features``, ``avatars.audio.imported``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gsbench.errors import InputError, WeightsError
from gsbench.io import atomic_path, sha256_file, write_json

TRAINED_SYNCNET_PREFIX = "syncnet-gsbench-"


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One registered pretrained file."""

    name: str
    filename: str
    url: str
    description: str
    expected_sha256: str | None = None  # full hex digest where the source publishes one
    sha256_prefix: str | None = None  # published prefix (torchvision file names) where only that is known
    origin: str = "official"  # "official" (the authors' file) or "ours" (trained by gsbench)
    checksum_note: str = ""
    network: str = ""  # architecture load_network builds for it (a key of NETWORKS), "" = none
    layout: str = "file"  # "file", or "hf-folder": ``filename`` names a Hugging Face model folder

    def check_digest(self, digest: str) -> str | None:
        """None when ``digest`` matches what is registered, else the reason it does not."""
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            return f"sha256 {digest} != registered {self.expected_sha256}"
        if self.sha256_prefix is not None and not digest.startswith(self.sha256_prefix):
            return f"sha256 {digest[:16]}... does not start with the published prefix {self.sha256_prefix}"
        return None


def _check_lpips_alexnet(path: Path) -> str | None:
    from benchmark.metrics.lpips_metric import check_alexnet_state_dict

    return check_alexnet_state_dict(path)


def _check_fan(path: Path) -> str | None:
    from benchmark.metrics.fan import check_fan_state_dict

    return check_fan_state_dict(path)


def _check_s3fd(path: Path) -> str | None:
    from benchmark.metrics.s3fd import check_s3fd_state_dict

    return check_s3fd_state_dict(path)


def _check_syncnet(path: Path) -> str | None:
    from benchmark.metrics.syncnet import check_syncnet_state_dict

    return check_syncnet_state_dict(path)


REGISTRY: dict[str, WeightSpec] = {
    "lpips-alexnet": WeightSpec(
        name="lpips-alexnet",
        filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        description="torchvision ImageNet AlexNet (IMAGENET1K_V1): the LPIPS v0.1 'alex' backbone",
        sha256_prefix="7be5be79",
        checksum_note="full sha256 unpublished; torchvision's 8-hex file-name prefix is checked",
    ),
    "syncnet-v2": WeightSpec(
        name="syncnet-v2",
        filename="syncnet_v2.model",
        url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        description="official SyncNet (Chung & Zisserman 2016) of joonson/syncnet_python, for LSE-D/LSE-C",
        checksum_note="no published checksum; accepted only if every state-dict key and shape matches",
    ),
    "fan-2d": WeightSpec(
        name="fan-2d",
        filename="2DFAN4-11f355bf06.pth.tar",
        url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
        description="face_alignment 1.5.0's 2DFAN-4 (68 iBUG points): the LMD detector of ER-NeRF, "
        "GeneFace, SyncTalk, TalkingGaussian (gsbench metrics/run --lmd-detector fan)",
        sha256_prefix="11f355bf06",
        checksum_note="full sha256 unpublished; the file name's sha256 prefix (torch hub convention) is "
        "checked, and every key and shape of face_alignment.models.FAN(4)",
    ),
    "s3fd-sfd-face": WeightSpec(
        name="s3fd-sfd-face",
        filename="sfd_face.pth",
        url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
        description="S3FD face detector of joonson/syncnet_python's run_pipeline: LSE crop boxes "
        "(gsbench metrics/run --lse-boxes s3fd)",
        checksum_note="no published checksum; accepted only if every key and shape of syncnet_python's "
        "S3FDNet matches",
    ),
}

ARCFACE_ZOO = "https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch#model-zoo"
USER_SUPPLIED = (
    "user-supplied: the source publishes no checksum; accepted only if every key and shape matches"
)


def _torchvision_vgg(network: str, sha8: str, use: str) -> WeightSpec:
    """A torchvision ImageNet VGG (IMAGENET1K_V1) checkpoint, checked by its file-name sha256 prefix."""
    return WeightSpec(
        name=f"{network}-imagenet",
        filename=f"{network}-{sha8}.pth",
        url=f"https://download.pytorch.org/models/{network}-{sha8}.pth",
        description=f"torchvision ImageNet {network.upper()} (IMAGENET1K_V1): {use}",
        sha256_prefix=sha8,
        checksum_note="full sha256 unpublished; torchvision's 8-hex file-name prefix is checked",
        network=network,
    )


REGISTRY.update(
    {
        "vgg16-imagenet": _torchvision_vgg("vgg16", "397923af", "GaussianSpeech patch perceptual loss"),
        "vgg19-imagenet": _torchvision_vgg("vgg19", "dcbb9e9d", "alternative patch-loss backbone"),
        "arcface-iresnet100": WeightSpec(
            name="arcface-iresnet100",
            filename="ms1mv3_arcface_r100_fp16.pth",
            url=ARCFACE_ZOO,
            description="ArcFace IResNet-100 (insightface arcface_torch, MS1MV3; its backbone.pth): "
            "GaussianSpeech global perceptual loss",
            checksum_note=USER_SUPPLIED,
            network="iresnet100",
        ),
        "arcface-iresnet50": WeightSpec(
            name="arcface-iresnet50",
            filename="ms1mv3_arcface_r50_fp16.pth",
            url=ARCFACE_ZOO,
            description="ArcFace IResNet-50 (insightface arcface_torch, MS1MV3; its backbone.pth)",
            checksum_note=USER_SUPPLIED,
            network="iresnet50",
        ),
    }
)


HF_FOLDER_MANIFEST = "gsbench-weights.json"  # written by ``add`` into a registered folder: its sha256
HF_FOLDER_CHECKSUM = (
    "recorded by `gsbench weights add` (gsbench-weights.json in the folder) and re-checked on every use; "
    "the hub's own sha256 is not pinned here"
)


def _hf_folder(name: str, model_id: str, use: str) -> WeightSpec:
    return WeightSpec(
        name=name,
        filename=name,
        url=f"https://huggingface.co/{model_id}",
        description=f"{model_id} (Hugging Face folder: config.json + model.safetensors or "
        f"pytorch_model.bin): {use}",
        checksum_note=HF_FOLDER_CHECKSUM,
        layout="hf-folder",
    )


REGISTRY.update(
    {
        "wav2vec2-base-960h": _hf_folder(
            "wav2vec2-base-960h", "facebook/wav2vec2-base-960h", "GaussianSpeech audio encoder"
        ),
        "hubert-large-ls960-ft": _hf_folder(
            "hubert-large-ls960-ft", "facebook/hubert-large-ls960-ft", "HiCoDe audio encoder"
        ),
    }
)


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(
            f"cannot read as a torch state dict ({exc})", path=path, fix="pass the original file"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError("not a state dict", path=path, fix="pass the original file")
    return {key.removeprefix("module."): value for key, value in state.items()}


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
    try:
        state = _read_state_dict(Path(path))
    except WeightsError as error:
        return str(error)
    for key, shape in _expected_shapes(network).items():
        if key not in state:
            return f"not a {network} state dict: missing key {key}"
        if tuple(state[key].shape) != shape:
            return f"not a {network} state dict: {key} has shape {tuple(state[key].shape)}, expected {shape}"
    return None


def build_network(path: Path, network: str):
    """Build ``network`` (torchvision VGG features or our ArcFace IResNet) on the CPU and load the state
    dict in ``path`` into it; returned frozen (eval mode, no gradients)."""
    import torch

    from avatars.perceptual import frozen

    state = _read_state_dict(Path(path))
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
"""Architectures ``WeightSpec.network`` may name (iresnet18/34 for sites registering smaller ArcFaces)."""

STRUCTURE_CHECKS: dict[str, Callable[[Path], str | None]] = {
    "lpips-alexnet": _check_lpips_alexnet,
    "syncnet-v2": _check_syncnet,
    "fan-2d": _check_fan,
    "s3fd-sfd-face": _check_s3fd,
}


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


def trained_syncnet_spec(name: str) -> WeightSpec:
    """Spec of a SyncNet trained by gsbench; its name ends in the first 8 hex of its sha256."""
    digest_prefix = name[len(TRAINED_SYNCNET_PREFIX) :]
    return WeightSpec(
        name=name,
        filename=f"{name}.pt",
        url="",
        description="SyncNet trained by gsbench weights train-syncnet (ours, not the official network)",
        sha256_prefix=digest_prefix,
        origin="ours",
        checksum_note="trained here; the name carries the sha256 prefix, the .json sidecar the provenance",
    )


class WeightRegistry:
    """Finds, verifies and reports registered weight files.

    ``syncnet`` names the SyncNet that LSE-D/LSE-C use: ``syncnet-v2`` (official, the default) or a
    ``syncnet-gsbench-<sha8>`` trained here. Nothing is substituted when the named file is missing.
    """

    def __init__(
        self,
        search_paths: list[Path] | None = None,
        *,
        syncnet: str = "syncnet-v2",
        specs: dict[str, WeightSpec] | None = None,
    ):
        self.search_paths = [
            Path(p) for p in (search_paths if search_paths is not None else default_search_paths())
        ]
        self.syncnet = syncnet
        # ``specs`` replaces registered entries by name (tests, or a site pinning its own files)
        self.specs = {**REGISTRY, **(specs or {})}
        self._verified: dict[Path, str] = {}

    def spec(self, name: str) -> WeightSpec:
        if name in self.specs:
            return self.specs[name]
        if name.startswith(TRAINED_SYNCNET_PREFIX) and len(name) > len(TRAINED_SYNCNET_PREFIX):
            return trained_syncnet_spec(name)
        known = ", ".join(sorted(self.specs) + [f"{TRAINED_SYNCNET_PREFIX}<sha8>"])
        raise WeightsError(f"unknown weight name {name!r}", fix=f"use one of: {known}")

    def names(self) -> list[str]:
        """Registered names plus every trained SyncNet found in the search paths."""
        trained = set()
        for folder in self.search_paths:
            if folder.is_dir():
                trained.update(p.stem for p in folder.glob(f"{TRAINED_SYNCNET_PREFIX}*.pt"))
        return list(self.specs) + sorted(trained)

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

    def _verify_folder(self, spec: WeightSpec, path: Path, registered: bool = True) -> str | None:
        """None if the Hugging Face folder ``path`` is a ``spec`` model whose weight file has the
        sha256 ``add`` recorded (``registered``) and the spec's published digest, if any."""
        from avatars.audio.pretrained import check_folder, weight_file

        problem = check_folder(path, spec.name)
        if problem is not None:
            return problem
        weights_path = weight_file(path)
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

    def _verify(self, spec: WeightSpec, path: Path) -> str | None:
        if spec.layout == "hf-folder":
            return self._verify_folder(spec, path)
        digest = self._verified.get(path) or sha256_file(path)
        reason = spec.check_digest(digest)
        if reason is None:
            structure = STRUCTURE_CHECKS.get(spec.name) or (_check_syncnet if spec.origin == "ours" else None)
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

    def _add_folder(self, spec: WeightSpec, source: Path, dest_dir: Path | None) -> ResolvedWeight:
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
