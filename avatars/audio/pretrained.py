"""wav2vec 2.0 and HuBERT through Hugging Face ``transformers``, loaded from a registered local folder.

A folder in the Hugging Face layout (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``,
optionally ``preprocessor_config.json``) is registered by ``gsbench weights add <name> DIR``, which
records the sha256 of its weight file; ``benchmark.weights.WeightRegistry.find`` re-checks it and the
architecture (``config.json``'s ``model_type``) before anything is loaded. Nothing is downloaded.

Outputs (``output=``):

* ``last_hidden_state`` (default): the transformer output, 768-d (base) / 1024-d (large) at 50 Hz;
  HiCoDe's HuBERT features, GaussianSpeech's / FaceFormer's wav2vec 2.0 features.
* ``extract_features``: the temporal convolutional network (TCN, ``model.feature_extractor``) output,
  512-d at 50 Hz, *before* ``feature_projection``'s LayerNorm (transformers' ``Wav2Vec2Model`` returns
  the layer-normed copy under that name; HuBERT returns none).

Frame ``k`` covers input samples ``[320 k, 320 k + 400)`` (receptive field 25 ms, hop 20 ms), so
``K = floor((N - 400) / 320) + 1``; like FaceFormer and ER-NeRF we put it at time ``k / 50`` s.

FaceFormer / GaussianSpeech alignment (:meth:`HFSpeechEncoder.video_rate` for ``last_hidden_state``):
the TCN output is linearly interpolated to the video frame times *before* ``feature_projection`` and the
transformer encoder (FaceFormer ``wav2vec.py``; GaussianSpeech's "Frequency Interpolation"), so the
transformer runs at the video rate. :meth:`HFSpeechEncoder.transformer_from_tcn` is the same computation
on tensors, differentiable, for a method that fine-tunes the transformer (GaussianSpeech, FaceFormer:
TCN frozen, transformer trained) on a copy from :meth:`HFSpeechEncoder.trainable_copy`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avatars.audio.base import (
    SAMPLE_RATE,
    AudioEncoder,
    EncoderUnavailable,
    check_audio,
    interpolate_features_torch,
)
from gsbench.errors import InputError, WeightsError
from gsbench.pretrained import PretrainedNetwork, declare, read_checkpoint

logger = logging.getLogger("avatars.audio")

OUTPUTS = ("last_hidden_state", "extract_features")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # first present wins (transformers' order)
MIN_SAMPLES = 400  # one TCN receptive field (25 ms)
# parameters a base model may lack in a fine-tuned (ForCTC) checkpoint without changing its features:
# SpecAugment's mask embedding is only used when training with time masking
OPTIONAL_KEYS = ("masked_spec_embed",)


@dataclasses.dataclass(frozen=True)
class HFModelSpec:
    model_type: str  # config.json "model_type"
    model_class: str  # transformers class holding feature_extractor / feature_projection / encoder
    description: str


HF_MODELS: dict[str, HFModelSpec] = {
    "wav2vec2-base-960h": HFModelSpec(
        "wav2vec2", "Wav2Vec2Model", "facebook/wav2vec2-base-960h (GaussianSpeech, FaceFormer)"
    ),
    "hubert-large-ls960-ft": HFModelSpec("hubert", "HubertModel", "facebook/hubert-large-ls960-ft (HiCoDe)"),
}


def _hf_folder(name: str, model_id: str, use: str) -> PretrainedNetwork:
    """The registry's declaration of a Hugging Face speech-encoder folder: ``gsbench weights add`` checks
    it with :func:`check_folder` and records its weight file's sha256 (the hub's is not pinned here)."""
    return declare(
        PretrainedNetwork(
            name=name,
            filename=name,
            url=f"https://huggingface.co/{model_id}",
            description=f"{model_id} (Hugging Face folder: config.json + model.safetensors or "
            f"pytorch_model.bin): {use}",
            used_by=f"audio encoder {name} (avatars.audio.pretrained)",
            checksum_note="recorded by `gsbench weights add` (gsbench-weights.json in the folder) and "
            "re-checked on every use; the hub's own sha256 is not pinned here",
            layout="hf-folder",
            check=lambda folder: check_folder(folder, name),
        )
    )


WAV2VEC2_BASE = _hf_folder(
    "wav2vec2-base-960h", "facebook/wav2vec2-base-960h", "GaussianSpeech audio encoder"
)
HUBERT_LARGE = _hf_folder("hubert-large-ls960-ft", "facebook/hubert-large-ls960-ft", "HiCoDe audio encoder")


def weight_file(folder: Path) -> Path | None:
    """The weight file of a Hugging Face folder (``model.safetensors`` before ``pytorch_model.bin``)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise WeightsError(
            "no config.json: not a Hugging Face model folder", path=folder, fix="pass the model's folder"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(
            f"unreadable config.json ({error})", path=path, fix="re-copy the folder"
        ) from error


def check_folder(folder: str | Path, name: str) -> str | None:
    """None if ``folder`` holds a ``name`` model (config.json with its model_type, a weight file whose
    keys include the TCN and the transformer), else the problem. Reads no tensor data."""
    spec = HF_MODELS[name]
    folder = Path(folder)
    try:
        config = read_config(folder)
    except WeightsError as error:
        return str(error)
    if config.get("model_type") != spec.model_type:
        return (
            f"config.json model_type is {config.get('model_type')!r}, "
            f"{name} needs {spec.model_type!r} (other architecture)"
        )
    path = weight_file(folder)
    if path is None:
        return f"no weight file ({' or '.join(WEIGHT_FILES)}) in {folder}"
    try:
        keys = _weight_keys(path)
    except Exception as error:  # noqa: BLE001 - any unreadable weight file is reported as such
        return f"{path.name} unreadable ({type(error).__name__}: {error})"
    for needed in ("feature_extractor.conv_layers.0.conv.weight", "encoder.layers.0.attention.k_proj.weight"):
        if not any(key.endswith(needed) for key in keys):
            return f"{path.name} lacks {needed}: not a {spec.model_type} checkpoint"
    return None


def _weight_keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    return list(read_checkpoint(path))


def open_pretrained(name: str, weights: Any, *, output: str = "last_hidden_state", device: str = "cpu"):
    """The encoder ``name`` from ``weights`` (a ``WeightRegistry``). :class:`EncoderUnavailable` when
    it is not registered; ``WeightsError`` when the registered folder is broken."""
    if output not in OUTPUTS:
        raise InputError(f"unknown output {output!r} of {name}", fix=f"use one of: {', '.join(OUTPUTS)}")
    if weights is None:
        raise EncoderUnavailable(
            f"no weight registry given to look {name} up in", fix="construct the method with weights="
        )
    try:
        resolved = weights.find(name)
    except WeightsError as error:
        if not weights.candidates(name):  # nothing registered under that name: absent, not broken
            where = ", ".join(str(path) for path in getattr(weights, "search_paths", []))
            raise EncoderUnavailable(
                f"{name} is not registered (no folder in {where})", fix=error.fix
            ) from error
        raise
    return HFSpeechEncoder(name, Path(resolved.path), resolved.sha256, output=output, device=device)


class HFSpeechEncoder(AudioEncoder):
    """wav2vec 2.0 / HuBERT from a verified local folder; the model is loaded on first use."""

    pretrained = True

    def __init__(
        self, name: str, folder: Path, sha256: str, *, output: str = "last_hidden_state", device: str = "cpu"
    ):
        if name not in HF_MODELS:
            raise InputError(f"{name!r} is not a Hugging Face encoder", fix=f"use one of {list(HF_MODELS)}")
        self.name = name
        self.spec = HF_MODELS[name]
        self.folder = Path(folder)
        self.sha256 = sha256
        self.output = output
        self.device = device
        self.config = read_config(self.folder)
        problem = check_folder(self.folder, name)
        if problem is not None:
            raise WeightsError(f"not usable as {name}: {problem}", path=self.folder)
        self.tcn_dim = int(self.config.get("conv_dim", [512])[-1])
        self.dim = int(self.config["hidden_size"]) if output == "last_hidden_state" else self.tcn_dim
        self._model = None
        self._normalize = None

    @property
    def weight_id(self) -> str:
        return f"{self.name}:{self.sha256[:12]}"

    @property
    def id(self) -> str:
        return self.weight_id if self.output == "last_hidden_state" else f"{self.weight_id}/{self.output}"

    # -- model --------------------------------------------------------------------------------------
    def module(self):
        """The frozen model (eval mode, no gradients), loaded once from the folder."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def trainable_copy(self):
        """A copy of the model to fine-tune as FaceFormer does: TCN frozen, projection + transformer
        trainable, train mode (SpecAugment as configured in config.json applies)."""
        model = copy.deepcopy(self.module())
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        for parameter in model.feature_extractor.parameters():
            parameter.requires_grad_(False)
        return model.train()

    def _load(self):
        import torch
        import transformers

        model_class = getattr(transformers, self.spec.model_class)
        bars = transformers.utils.logging.is_progress_bar_enabled()
        verbosity = transformers.utils.logging.get_verbosity()
        # a progress bar per local load and a report on the CTC head (lm_head, unused) are noise here;
        # missing or mismatched keys are checked below and raised
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        try:
            model, info = model_class.from_pretrained(
                str(self.folder), local_files_only=True, output_loading_info=True, dtype=torch.float32
            )
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise WeightsError(
                f"cannot load as {self.spec.model_class} ({type(error).__name__}: {error})",
                path=self.folder,
                fix=f"register the original {self.spec.description} folder",
            ) from error
        finally:
            transformers.utils.logging.set_verbosity(verbosity)
            if bars:
                transformers.utils.logging.enable_progress_bar()
        missing = [key for key in info.get("missing_keys", []) if key not in OPTIONAL_KEYS]
        mismatched = info.get("mismatched_keys", [])
        if missing or mismatched:
            raise WeightsError(
                f"not a complete {self.spec.model_type} checkpoint: missing {missing[:4]}, "
                f"mismatched {mismatched[:4]}",
                path=self.folder,
                fix=f"register the original {self.spec.description} folder",
            )
        if info.get("unexpected_keys"):
            logger.info(
                "%s: ignored %s (not part of %s)",
                self.folder,
                sorted(info["unexpected_keys"])[:4],
                self.spec.model_class,
            )
        model.to(self.device).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        logger.info("loaded %s from %s", self.id, self.folder)
        return model

    def input_values(self, audio: np.ndarray):
        """``[1, N]`` float tensor as the model's feature extractor prepares it (zero mean, unit
        variance per utterance when ``do_normalize``, as Wav2Vec2FeatureExtractor does)."""
        import torch
        from transformers import Wav2Vec2FeatureExtractor

        if self._normalize is None:
            if (self.folder / "preprocessor_config.json").is_file():
                self._normalize = Wav2Vec2FeatureExtractor.from_pretrained(
                    str(self.folder), local_files_only=True
                )
            else:
                self._normalize = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
        audio = check_audio(audio, f"{self.name} input")
        if audio.size < MIN_SAMPLES:
            raise InputError(
                f"{audio.size} samples is shorter than one {self.name} frame ({MIN_SAMPLES} samples, 25 ms)"
            )
        values = self._normalize(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_values
        return torch.as_tensor(np.asarray(values, np.float32)).reshape(1, -1).to(self.device)

    # -- features -----------------------------------------------------------------------------------
    def encode(self, audio: np.ndarray) -> np.ndarray:
        """``[K, dim]`` float32: ``last_hidden_state`` or the TCN output at 50 Hz."""
        import torch

        model = self.module()
        with torch.inference_mode():
            values = self.input_values(audio)
            if self.output == "extract_features":
                out = model.feature_extractor(values).transpose(1, 2)
            else:
                out = model(values).last_hidden_state
        return out[0].float().cpu().numpy()

    def tcn_features(self, audio: np.ndarray, cache: Any = None) -> np.ndarray:
        """``[K, 512]`` TCN output (before feature_projection), cached under ``<weight id>/tcn``."""
        import torch

        def compute() -> np.ndarray:
            with torch.inference_mode():
                tcn = self.module().feature_extractor(self.input_values(audio)).transpose(1, 2)
            return tcn[0].float().cpu().numpy()

        audio = self._checked(audio, cache)
        if cache is None or not hasattr(cache, "get_or_compute_key"):
            return compute()
        return cache.get_or_compute_key(f"{self.weight_id}/tcn", audio, compute, dim=self.tcn_dim)

    def transformer_from_tcn(self, tcn, fps: float | None = None, num_frames: int | None = None, model=None):
        """``[B, T, dim]`` transformer output from TCN features ``tcn [B, K, 512]`` (a tensor):
        interpolated to ``num_frames`` video frames at ``fps`` first when ``fps`` is given (FaceFormer),
        then ``feature_projection`` -> SpecAugment (train mode only) -> transformer encoder.
        Differentiable; ``model`` defaults to the frozen :meth:`module` (pass a :meth:`trainable_copy`)."""
        model = model if model is not None else self.module()
        hidden = tcn
        if fps is not None:
            if num_frames is None:
                raise InputError("transformer_from_tcn: fps given without num_frames")
            hidden = interpolate_features_torch(hidden, self.rate, fps, num_frames)
        projected = model.feature_projection(hidden)
        if isinstance(projected, tuple):  # Wav2Vec2FeatureProjection also returns the layer-normed input
            projected = projected[0]
        projected = model._mask_hidden_states(projected)
        return model.encoder(projected).last_hidden_state

    def video_rate(self, audio: np.ndarray, fps: float, num_frames: int, cache: Any = None) -> np.ndarray:
        """``[num_frames, dim]``. For ``last_hidden_state`` the FaceFormer alignment: TCN output
        interpolated to the video frames, then projection + transformer (cached per fps and length);
        for ``extract_features`` the TCN output interpolated."""
        if self.output != "last_hidden_state":
            return super().video_rate(audio, fps, num_frames, cache)
        import torch

        audio = self._checked(audio, cache)

        def compute() -> np.ndarray:
            tcn = torch.as_tensor(self.tcn_features(audio, cache)).to(self.device)[None]
            with torch.inference_mode():
                return self.transformer_from_tcn(tcn, fps, num_frames)[0].float().cpu().numpy()

        if cache is None or not hasattr(cache, "get_or_compute_key"):
            return compute()
        key = f"{self.id}|faceformer-video-rate(fps={fps:g},frames={int(num_frames)})"
        return cache.get_or_compute_key(key, audio, compute, dim=self.dim)
