"""SyncNet (Chung & Zisserman, "Out of time", ACCV-W 2016) and the LSE-D / LSE-C metrics.

The network is written so that the official ``syncnet_v2.model`` of joonson/syncnet_python loads into
it by state-dict key: ``netcnnaud`` / ``netfcaud`` (audio: MFCC [N,1,13,20] -> [N,1024]) and
``netcnnlip`` / ``netfclip`` (video: 5 BGR frames [N,3,5,224,224] in 0..255 -> [N,1024]), the same
``nn.Sequential`` layer indices as ``SyncNetModel.S``. ``width`` scales every hidden channel count:
1.0 is the official network; SyncNets we train on CPU (``gsbench weights train-syncnet``) may use a
narrower one, whose width is stored in the checkpoint.

LSE follows ``SyncNetInstance.evaluate`` step by step (see ``lse_from_crops``):

* video at 25 fps, face crops 224x224, windows of 5 frames ``v .. v+4`` for ``v in range(T - 5)``
  (syncnet_python's ``lastframe = min_length - 5``, so the last full window is not used; kept);
* audio 16 kHz as int16 samples (as ``scipy.io.wavfile`` reads them),
  ``python_speech_features.mfcc(audio, 16000)`` (13 coefficients at 100 Hz), window ``4v .. 4v+20``;
* for each window, Euclidean distances between its video feature and the audio features of windows
  ``v-15 .. v+15`` (audio features zero-padded at both ends);
* ``mdist`` = mean over windows, per offset (31 values); **LSE-D = min(mdist)**,
  **LSE-C = median(mdist) - min(mdist)**, AV offset = 15 - argmin.

Differences from syncnet_python's ``run_pipeline.py`` (recorded in every result's details):

* face boxes come from MediaPipe FaceMesh (bounding box of the 478 landmarks) instead of S3FD; the box
  track is median-filtered over time with kernel 13 like ``run_pipeline.crop_video``; frames without a
  detection take the nearest detected box; the crop rule (``crop_scale`` 0.4, pad value 110,
  ``cv2.resize`` to 224x224) is syncnet_python's;
* crops are not re-encoded (run_pipeline writes an MPEG-4 .avi and re-reads it as JPEG);
* clips shorter than run_pipeline's ``min_track`` (100 frames) are scored, not dropped; a clip needs at
  least 6 frames (one window).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from gsbench.errors import InputError, WeightsError
from gsbench.pretrained import NetworkFamily, PretrainedNetwork, declare_family, read_checkpoint

SYNCNET_FPS = 25.0
SYNCNET_SAMPLE_RATE = 16000
CROP_SIZE = 224
WINDOW_FRAMES = 5
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps
MFCC_WINDOW = 20
DEFAULT_VSHIFT = 15
CROP_SCALE = 0.40
CROP_PAD_VALUE = 110
BOX_MEDFILT = 13


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class SyncNet(nn.Module):
    """SyncNet v2 (``SyncNetModel.S``): audio and lip towers mapping to a shared embedding space.

    ``width=1.0, embedding_dim=1024`` is the official network.
    """

    def __init__(self, width: float = 1.0, embedding_dim: int = 1024):
        super().__init__()
        self.width = float(width)
        self.embedding_dim = int(embedding_dim)
        c = lambda n: _ch(n, width)  # noqa: E731 - local shorthand for the channel plan
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, c(64), kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
            nn.BatchNorm2d(c(64)),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            nn.Conv2d(c(64), c(192), kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
            nn.BatchNorm2d(c(192)),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            nn.Conv2d(c(192), c(384), kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(c(384)),
            nn.ReLU(inplace=True),
            nn.Conv2d(c(384), c(256), kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(c(256)),
            nn.ReLU(inplace=True),
            nn.Conv2d(c(256), c(256), kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(c(256)),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            nn.Conv2d(c(256), c(512), kernel_size=(5, 4), padding=(0, 0)),
            nn.BatchNorm2d(c(512)),
            nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(
            nn.Linear(c(512), c(512)),
            nn.BatchNorm1d(c(512)),
            nn.ReLU(),
            nn.Linear(c(512), embedding_dim),
        )
        self.netfclip = nn.Sequential(
            nn.Linear(c(512), c(512)),
            nn.BatchNorm1d(c(512)),
            nn.ReLU(),
            nn.Linear(c(512), embedding_dim),
        )
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, c(96), kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
            nn.BatchNorm3d(c(96)),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(c(96), c(256), kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.BatchNorm3d(c(256)),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(c(256), c(256), kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(c(256)),
            nn.ReLU(inplace=True),
            nn.Conv3d(c(256), c(256), kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(c(256)),
            nn.ReLU(inplace=True),
            nn.Conv3d(c(256), c(256), kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(c(256)),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(c(256), c(512), kernel_size=(1, 6, 6), padding=0),
            nn.BatchNorm3d(c(512)),
            nn.ReLU(inplace=True),
        )

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """mfcc: [N, 1, 13, 20] -> [N, D]."""
        mid = self.netcnnaud(mfcc)
        return self.netfcaud(mid.reshape(mid.shape[0], -1))

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:
        """video: [N, 3, 5, 224, 224] BGR in 0..255 -> [N, D]."""
        mid = self.netcnnlip(video)
        return self.netfclip(mid.reshape(mid.shape[0], -1))

    default_filled_keys: tuple[str, ...] = ()  # BatchNorm counters absent from the loaded file (load_syncnet)

    def config(self) -> dict:
        return {"width": self.width, "embedding_dim": self.embedding_dim}


SYNCNET_FIX = "pass the syncnet_v2.model file or a train-syncnet output"


def _read_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, state_dict) of an official state-dict file or one of our ``{config, state_dict}`` files."""
    loaded = read_checkpoint(path, fix=SYNCNET_FIX)
    if "state_dict" in loaded and "config" in loaded:
        return dict(loaded["config"]), loaded["state_dict"]
    return {"width": 1.0, "embedding_dim": 1024}, loaded


def _is_batch_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _structure_problem(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    # syncnet_v2.model predates BatchNorm's num_batches_tracked buffers (PyTorch 0.4.1): the official
    # loader copies only the keys the file holds, so a file without those counters is complete.
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not _is_batch_counter(k))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        return f"state-dict keys differ (missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
    for key, tensor in expected.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            return f"{key}: shape {tuple(state[key].shape)} != {tuple(tensor.shape)}"
    return None


def check_syncnet_state_dict(path: Path) -> str | None:
    """None if ``path`` loads into :class:`SyncNet` key by key with matching shapes, else the reason."""
    try:
        config, state = _read_checkpoint(Path(path))
    except WeightsError as error:
        return str(error)
    return _structure_problem(SyncNet(**config), state)


def load_syncnet(path: Path) -> SyncNet:
    """A SyncNet in eval mode from the official ``syncnet_v2.model`` or a train-syncnet checkpoint.

    BatchNorm ``num_batches_tracked`` counters missing from the file (the official file has none) are
    default-filled and listed in ``model.default_filled_keys``.
    """
    config, state = _read_checkpoint(Path(path))
    model = SyncNet(**config)
    problem = _structure_problem(model, state)
    if problem is not None:
        raise WeightsError(
            f"not a SyncNet checkpoint: {problem}",
            path=path,
            fix=SYNCNET_FIX,
        )
    # counters absent from pre-0.4.1 files keep their default (0); eval mode never reads them
    filled = {k: v for k, v in model.state_dict().items() if _is_batch_counter(k) and k not in state}
    model.load_state_dict({**filled, **state})
    model.default_filled_keys = tuple(sorted(filled))
    return model.eval()


SYNCNET_V2 = PretrainedNetwork(
    name="syncnet-v2",
    filename="syncnet_v2.model",
    url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
    description="official SyncNet (Chung & Zisserman 2016) of joonson/syncnet_python, for LSE-D/LSE-C",
    used_by="metrics lse_d/lse_c (benchmark.metrics.lse)",
    checksum_note="no published checksum; accepted only if every state-dict key and shape matches",
    check=check_syncnet_state_dict,
)

TRAINED_SYNCNET_PREFIX = "syncnet-gsbench-"


def trained_syncnet_spec(name: str) -> PretrainedNetwork:
    """Declaration of a SyncNet trained by gsbench; its name ends in the first 8 hex of its sha256."""
    return PretrainedNetwork(
        name=name,
        filename=f"{name}.pt",
        url="",
        description="SyncNet trained by gsbench weights train-syncnet (ours, not the official network)",
        used_by="metrics lse_d/lse_c with --syncnet NAME (benchmark.metrics.lse)",
        sha256_prefix=name[len(TRAINED_SYNCNET_PREFIX) :],
        origin="ours",
        checksum_note="trained here; the name carries the sha256 prefix, the .json sidecar the provenance",
        check=check_syncnet_state_dict,
    )


TRAINED_SYNCNETS = declare_family(
    NetworkFamily(TRAINED_SYNCNET_PREFIX, ".pt", trained_syncnet_spec, "SyncNets trained here (<sha8>)")
)


def save_syncnet(model: SyncNet, path: Path, extra: dict | None = None) -> None:
    """Our checkpoint format: ``{"config": {...}, "state_dict": ..., "extra": {...}}`` (atomic).

    The bytes depend only on the contents: torch.save writes a random ``.data/serialization_id`` record
    into its zip, which is zeroed here and the archive rewritten with fixed timestamps, so the same seed
    gives the same file and the same sha256-based name.
    """
    import io
    import zipfile

    from gsbench.io import write_bytes

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    raw = io.BytesIO()
    torch.save({"config": model.config(), "state_dict": state, "extra": extra or {}}, raw)
    raw.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".data/serialization_id"):
                data = b"0" * len(data)
            zout.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), data)
    write_bytes(path, out.getvalue())


def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> int16 samples, the values ``wavfile.read`` gives for a 16-bit WAV."""
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio
    return np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc_features(audio: np.ndarray, sample_rate: int = SYNCNET_SAMPLE_RATE) -> np.ndarray:
    """[13, N] MFCCs at 100 Hz, exactly ``python_speech_features.mfcc(int16 audio, sample_rate)``."""
    import python_speech_features

    return np.asarray(python_speech_features.mfcc(audio_to_int16(audio), sample_rate)).T


def _round_half_away(value: Fraction) -> int:
    """``av_rescale_q``'s rounding (AV_ROUND_NEAR_INF) of an exact rational."""
    return int(math.floor(abs(value) + Fraction(1, 2))) * (1 if value >= 0 else -1)


def ffmpeg_cfr_source_index(num_frames: int, fps: float, out_fps: int = int(SYNCNET_FPS)) -> np.ndarray:
    """Input frame index of each output frame of ``ffmpeg -i in -r 25 out.avi`` (constant-frame-rate sync).

    Transcribes ``video_sync_process`` of fftools (FFmpeg 7.0 ``ffmpeg_filter.c``; the same rule as
    ``do_video_out`` of the 4.x releases syncnet_python ran with) for a constant-rate input starting
    at time 0: frame ``i`` lands at ``sync = i * out_fps / fps`` output ticks (``float_pts``, rescaled
    with 2^extra_bits precision and nudged off exact midpoints by 2^-17); with ``delta0 = sync -
    next_pts`` and ``delta = delta0 + duration``, a frame is dropped when ``delta < -1.1``, repeated
    ``llrintf(delta)`` times when ``delta > 1.1`` (the first ``llrint(delta0 - 0.6)`` of them being
    the previous frame when ``delta0 > 1.1``), else written once; at the end of the stream the median
    of the last three "previous frame" counts is appended. The tolerance of 1.1 frames is why 30 frames
    at 30 fps give 27 frames (0..11, then every 6th dropped), not the 25 of nearest-earlier sampling.
    ``fps`` is taken as the nearest fraction with denominator <= 1001 (29.97002997 -> 30000/1001).
    """
    rate = Fraction(fps).limit_denominator(1001)
    extra_bits = min(max(29 - (out_fps.bit_length() - 1), 0), 16)  # av_clip(29 - av_log2(den), 0, 16)
    duration = (1.0 / float(rate)) / (1.0 / out_fps)  # frame->duration in output ticks, as doubles
    next_pts = 0
    history = [0, 0, 0]  # frames_prev_hist
    source: list[int] = []
    for i in range(num_frames):
        sync = _round_half_away(Fraction(i) / rate * out_fps * 2**extra_bits) / 2**extra_bits
        sync = float(sync) + (2.0**-17 if sync != round(sync) else 0.0)
        delta0 = sync - next_pts
        delta = delta0 + duration
        if delta0 < 0 < delta:
            delta0 = 0.0  # "Clipping frame in rate conversion"; delta is not recomputed
        count, previous = 1, 0
        if delta < -1.1:
            count = 0
        elif delta > 1.1:
            count = int(np.rint(np.float32(delta)))  # llrintf: round half to even
            if delta0 > 1.1:
                previous = int(np.rint(delta0 - 0.6))
        history = [previous, *history[:2]]
        source += [i - 1 if (k < previous and i > 0) else i for k in range(count)]
        next_pts += count
    if num_frames:
        source += [num_frames - 1] * int(np.median(history))  # mid_pred at end of stream
    return np.asarray(source, dtype=int)


def resample_frames_to_25fps(frames: np.ndarray, fps: float) -> np.ndarray:
    """The frames ``ffmpeg -r 25`` keeps (see :func:`ffmpeg_cfr_source_index`); 25 fps passes through."""
    if abs(fps - SYNCNET_FPS) < 1e-6:
        return frames
    return frames[ffmpeg_cfr_source_index(len(frames), fps)]


def face_boxes_from_landmarks(points: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Face track ``[T, 3]`` = (centre x, centre y, half size) from MediaPipe landmarks ``[T, 478, 2]``.

    The box is the landmarks' bounding box (run_pipeline uses S3FD's box); half size is
    ``max(w, h) / 2`` and all three are median-filtered over time with kernel 13 as in
    ``run_pipeline.crop_video``. Frames without a detection take the nearest detected frame's box.
    """
    from scipy import signal

    detected = np.asarray(detected, bool)
    if not detected.any():
        raise InputError(
            "no face detected in any frame: cannot crop the face track for SyncNet",
            fix="check that the rendered frames show a frontal face",
        )
    pts = np.asarray(points, np.float64)
    idx = np.flatnonzero(detected)
    nearest = np.abs(np.arange(len(detected))[:, None] - idx[None, :]).argmin(axis=1)
    lo = np.nanmin(pts[idx], axis=1)[nearest]
    hi = np.nanmax(pts[idx], axis=1)[nearest]
    track = np.stack(
        [
            (lo[:, 0] + hi[:, 0]) / 2,
            (lo[:, 1] + hi[:, 1]) / 2,
            np.maximum(hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]) / 2,
        ],
        axis=1,
    )
    if len(track) >= BOX_MEDFILT:
        track = np.stack([signal.medfilt(track[:, i], kernel_size=BOX_MEDFILT) for i in range(3)], axis=1)
    return track


def crop_faces(frames: np.ndarray, track: np.ndarray, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """[T, H, W, 3] uint8 + track [T, 3] -> [T, 224, 224, 3] uint8 crops (run_pipeline's crop rule)."""
    crops = np.empty((len(frames), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for t, (frame, (cx, cy, bs)) in enumerate(zip(frames, track, strict=True)):
        bs = max(float(bs), 1.0)
        bsi = int(bs * (1 + 2 * crop_scale))
        padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=CROP_PAD_VALUE)
        my, mx = cy + bsi, cx + bsi
        face = padded[
            int(my - bs) : int(my + bs * (1 + 2 * crop_scale)),
            int(mx - bs * (1 + crop_scale)) : int(mx + bs * (1 + crop_scale)),
        ]
        crops[t] = cv2.resize(face, (CROP_SIZE, CROP_SIZE))
    return crops


@dataclasses.dataclass
class LseResult:
    lse_d: float  # min over offsets of the mean distance (syncnet_python "Min dist")
    lse_c: float  # median(mdist) - min(mdist) (syncnet_python "Confidence")
    offset: int  # vshift - argmin (syncnet_python "AV offset"), in frames
    mdist: np.ndarray  # [2*vshift+1] mean distance per offset
    dists: np.ndarray  # [num_windows, 2*vshift+1]
    num_windows: int


def _pairwise_offsets(video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int) -> torch.Tensor:
    """[N, 2*vshift+1]: distance of video window i to audio windows i-vshift .. i+vshift (zero-padded)."""
    win = 2 * vshift + 1
    padded = torch.nn.functional.pad(audio_feat, (0, 0, vshift, vshift))
    rows = [
        torch.nn.functional.pairwise_distance(video_feat[[i], :].repeat(win, 1), padded[i : i + win, :])
        for i in range(len(video_feat))
    ]
    return torch.stack(rows, 0)


@torch.no_grad()
def sync_features(
    model: SyncNet, crops: np.ndarray, audio: np.ndarray, batch_size: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window video and audio embeddings ``[N, D]`` (N = min(T, len(audio) // 640) - 5).

    crops: [T, 224, 224, 3] uint8 RGB at 25 fps; audio: 16 kHz mono (float in [-1, 1] or int16).
    """
    model.eval()
    samples = audio_to_int16(audio)
    mfcc = torch.from_numpy(mfcc_features(samples).astype(np.float32))  # [13, M]
    min_length = min(len(crops), len(samples) // 640)
    last = min_length - WINDOW_FRAMES
    if last < 1:
        raise InputError(
            f"clip too short for SyncNet: {min_length} frames at 25 fps, needs at least 6",
            fix="score clips of at least 0.24 s",
        )
    # syncnet_python reads frames with cv2 (BGR) as float 0..255: [1, 3, T, H, W]
    video = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(3, 0, 1, 2).float()[None]
    video_feat, audio_feat = [], []
    for start in range(0, last, batch_size):
        frames = range(start, min(last, start + batch_size))
        video_in = torch.cat([video[:, :, v : v + WINDOW_FRAMES] for v in frames], 0)
        audio_in = torch.stack(
            [mfcc[None, :, MFCC_PER_FRAME * v : MFCC_PER_FRAME * v + MFCC_WINDOW] for v in frames], 0
        )
        video_feat.append(model.forward_lip(video_in))
        audio_feat.append(model.forward_aud(audio_in))
    return torch.cat(video_feat, 0), torch.cat(audio_feat, 0)


def lse_from_crops(
    model: SyncNet, crops: np.ndarray, audio: np.ndarray, vshift: int = DEFAULT_VSHIFT, batch_size: int = 20
) -> LseResult:
    """LSE-D and LSE-C of 25 fps face crops ``[T, 224, 224, 3]`` uint8 RGB with 16 kHz audio."""
    video_feat, audio_feat = sync_features(model, crops, audio, batch_size)
    dists = _pairwise_offsets(video_feat, audio_feat, vshift)
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    return LseResult(
        lse_d=float(minval),
        lse_c=float(conf),
        offset=int(vshift - int(minidx)),
        mdist=mdist.numpy(),
        dists=dists.numpy(),
        num_windows=len(video_feat),
    )
