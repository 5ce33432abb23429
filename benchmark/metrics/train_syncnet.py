"""Train a SyncNet on a dataset's training split: the offline stand-in for the official ``syncnet_v2``.

This is **ours**, not the network of Chung & Zisserman: it is trained on the benchmark's own training
sequences (by default the frontal camera), stored as ``syncnet-gsbench-<first 8 hex of its sha256>.pt``
with a ``.json`` sidecar (dataset, split, schedule, seed, a validation check), and every LSE computed
with it carries that name in its weight id. Numbers from it are comparable between methods scored with
the same file, never with papers' LSE (which use ``syncnet_v2``).

Training follows the SyncNet paper's recipe: pairs of a 5-frame face-crop window and a 0.2 s MFCC window,
label 1 when they are in sync and 0 when the audio is shifted by at least ``min_shift`` frames within the
same sequence, contrastive loss on the Euclidean distance of the two embeddings (Chung & Zisserman 2016,
Eq. 1: ``y d^2 + (1 - y) max(margin - d, 0)^2``). Inputs are exactly those of evaluation (crops from
``landmarks.npz`` with the syncnet_python crop rule, int16-scale MFCCs, BGR 0..255 frames), so the
trained network is used by the unchanged LSE code.

The channel ``width`` (1.0 = the official network) is a CPU concession: the default 0.25 trains in
minutes on a laptop-class CPU; the checkpoint records it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmark import weights as weight_registry
from benchmark.metrics import syncnet
from benchmark.metrics.syncnet import TRAINED_SYNCNET_PREFIX
from benchmark.weights import ResolvedWeight
from gsbench.dataset import (
    DATASET_JSON,
    audio_path,
    landmarks_path,
    read_dataset_json,
    read_landmarks,
    sequence_dir,
)
from gsbench.errors import ConfigError, InputError
from gsbench.io import sha256_file, write_json
from gsbench.media import read_wav
from gsbench.progress import log, track


@dataclasses.dataclass(frozen=True)
class TrainSyncNetConfig:
    width: float = 0.25
    embedding_dim: int = 256
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 1e-3
    margin: float = 1.0
    min_shift: int = 3  # frames: a negative's audio is at least this far from the video window
    camera: str | None = None  # None: the dataset's frontal camera
    seed: int = 0


@dataclasses.dataclass
class SyncClip:
    """One sequence ready for SyncNet: 25 fps crops and int16 16 kHz audio."""

    name: str
    crops: np.ndarray  # [T, 224, 224, 3] uint8 RGB
    audio: np.ndarray  # int16
    mfcc: np.ndarray  # [13, M] float32

    @property
    def num_windows(self) -> int:
        """Valid window starts v: frames v..v+4 and MFCC 4v..4v+19 exist."""
        return max(
            0,
            min(
                len(self.crops) - syncnet.WINDOW_FRAMES + 1,
                (self.mfcc.shape[1] - syncnet.MFCC_WINDOW) // syncnet.MFCC_PER_FRAME + 1,
            ),
        )


def split_sequences(dataset: Path, split: str) -> list[str]:
    """Sequence ids of ``split`` over all subjects (sorted), in dataset.json order."""
    meta = read_dataset_json(dataset)
    return [seq for subject in sorted(meta.splits) for seq in getattr(meta.splits[subject], split)]


def load_clip(dataset: Path, sequence: str, camera: str | None = None) -> SyncClip:
    """Crops of ``camera`` (default frontal) from ``landmarks.npz`` and the sequence's audio."""
    dataset = Path(dataset)
    meta = read_dataset_json(dataset)
    camera = camera or meta.frontal_camera
    fps = meta.fps
    seq_dir = sequence_dir(dataset, sequence)
    files = sorted((seq_dir / "images" / camera).glob("*.jpg")) + sorted(
        (seq_dir / "images" / camera).glob("*.png")
    )
    if not files:
        raise InputError(
            f"no frames for camera {camera}",
            path=seq_dir / "images" / camera,
            fix="re-run gsbench ingest (frames stage)",
        )
    lm_path = landmarks_path(dataset, sequence)
    entries = read_landmarks(lm_path, [camera], fix="re-run gsbench ingest (landmarks stage)")
    points, detected = entries[camera]
    frames = np.stack([cv2.imread(str(f), cv2.IMREAD_COLOR)[..., ::-1] for f in files])
    if len(points) != len(frames):
        raise InputError(
            f"{len(points)} landmark frames for {len(frames)} images",
            path=lm_path,
            fix="re-run gsbench ingest (landmarks stage)",
        )
    index = syncnet.resample_frames_to_25fps(np.arange(len(frames)), fps)
    track_ = syncnet.face_boxes_from_landmarks(points[index], detected[index])
    crops = syncnet.crop_faces(frames[index], track_)
    audio = syncnet.audio_to_int16(read_wav(audio_path(dataset, sequence), resample=True))
    mfcc = syncnet.mfcc_features(audio).astype(np.float32)
    return SyncClip(sequence, crops, audio, mfcc)


def _batch(clips: list[SyncClip], config: TrainSyncNetConfig, rng: np.random.Generator):
    """(video [B,3,5,224,224] BGR 0..255, mfcc [B,1,13,20], label [B]) with half positives."""
    videos, audios, labels = [], [], []
    weights = np.array([c.num_windows for c in clips], float)
    for b in range(config.batch_size):
        clip = clips[rng.choice(len(clips), p=weights / weights.sum())]
        v = int(rng.integers(clip.num_windows))
        positive = b % 2 == 0
        a = v
        if not positive:
            choices = [k for k in range(clip.num_windows) if abs(k - v) >= config.min_shift]
            a = int(rng.choice(choices))
        window = clip.crops[v : v + syncnet.WINDOW_FRAMES, :, :, ::-1]  # BGR as cv2 reads it
        videos.append(torch.from_numpy(np.ascontiguousarray(window)).permute(3, 0, 1, 2).float())
        start = syncnet.MFCC_PER_FRAME * a
        audios.append(torch.from_numpy(clip.mfcc[None, :, start : start + syncnet.MFCC_WINDOW]))
        labels.append(1.0 if positive else 0.0)
    return torch.stack(videos), torch.stack(audios), torch.tensor(labels)


def contrastive_loss(
    video_emb: torch.Tensor, audio_emb: torch.Tensor, label: torch.Tensor, margin: float
) -> torch.Tensor:
    """Chung & Zisserman 2016, Eq. 1: mean of y d^2 + (1-y) max(margin - d, 0)^2."""
    d = torch.nn.functional.pairwise_distance(video_emb, audio_emb)
    return (label * d**2 + (1 - label) * torch.clamp(margin - d, min=0) ** 2).mean()


def train_syncnet_on_clips(
    clips: list[SyncClip], config: TrainSyncNetConfig
) -> tuple[syncnet.SyncNet, list[float]]:
    """Train from scratch; returns the model (eval mode) and the per-step losses."""
    clips = [c for c in clips if c.num_windows > config.min_shift * 2]
    if not clips:
        raise InputError(
            "no training sequence is long enough for SyncNet windows",
            fix=f"sequences need more than {config.min_shift * 2 + 5} frames",
        )
    torch.manual_seed(config.seed)  # layer initialisation draws from torch's default generator
    rng = np.random.default_rng(config.seed)
    model = syncnet.SyncNet(width=config.width, embedding_dim=config.embedding_dim)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    losses = []
    for _ in track(range(config.steps), "training SyncNet"):
        video, audio, label = _batch(clips, config, rng)
        loss = contrastive_loss(model.forward_lip(video), model.forward_aud(audio), label, config.margin)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def shifted_check(model: syncnet.SyncNet, clip: SyncClip, shift: int = 8) -> dict[str, float]:
    """LSE of a clip in sync and with its video delayed by ``shift`` frames (first frame repeated)."""
    delayed = np.concatenate([np.repeat(clip.crops[:1], shift, 0), clip.crops[:-shift]])
    sync = syncnet.lse_from_crops(model, clip.crops, clip.audio)
    off = syncnet.lse_from_crops(model, delayed, clip.audio)
    return {
        "sequence": clip.name,
        "shift_frames": shift,
        "lse_d_sync": sync.lse_d,
        "lse_c_sync": sync.lse_c,
        "lse_d_shifted": off.lse_d,
        "lse_c_shifted": off.lse_c,
    }


def train_syncnet(
    dataset: Path, config: TrainSyncNetConfig = TrainSyncNetConfig(), out_dir: Path | None = None
) -> ResolvedWeight:
    """Train on ``dataset``'s train split and store ``syncnet-gsbench-<sha8>.pt`` (+ ``.json``) in
    ``out_dir`` (default: the user weights folder). Validation sequences (never test) give the check."""
    dataset = Path(dataset)
    train_ids = split_sequences(dataset, "train")
    if not train_ids:
        raise ConfigError(
            "the train split is empty", path=dataset / DATASET_JSON, fix="re-run gsbench ingest"
        )
    clips = [load_clip(dataset, seq, config.camera) for seq in track(train_ids, "loading train crops")]
    model, losses = train_syncnet_on_clips(clips, config)
    val_ids = split_sequences(dataset, "val")
    check = [shifted_check(model, load_clip(dataset, seq, config.camera)) for seq in val_ids[:2]]
    # looked up at call time (tests point the user folder at a temporary one)
    out_dir = Path(out_dir) if out_dir is not None else weight_registry.user_weights_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance = {
        "origin": "ours (gsbench weights train-syncnet), not the official syncnet_v2",
        "dataset": str(dataset.resolve()),
        "dataset_json_sha256": sha256_file(dataset / DATASET_JSON),
        "train_sequences": train_ids,
        "config": dataclasses.asdict(config),
        "final_loss_mean_last_50": float(np.mean(losses[-50:])),
        "validation_check": check,
    }
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / "syncnet.pt"
        syncnet.save_syncnet(model, staged, extra={"origin": provenance["origin"], "dataset": str(dataset)})
        digest = sha256_file(staged)
        name = f"{TRAINED_SYNCNET_PREFIX}{digest[:8]}"
        final = out_dir / f"{name}.pt"
        staged.replace(final)
    write_json(final.with_suffix(".json"), {"name": name, "sha256": digest, **provenance})
    log(f"stored {final} (id {name}:{digest[:12]})")
    return ResolvedWeight(name, final, digest, "ours")
