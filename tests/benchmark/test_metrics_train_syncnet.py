"""gsbench weights train-syncnet on a tiny dataset whose mouth opens with the audio energy."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.io import wavfile

from gsbench.io import write_json

FPS = 25
SR = 16000
SIZE = 128
SLOW_STEPS = 60


def _envelope(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame loudness in [0, 1]: syllables of 3-7 frames at random levels, pauses of 2-5 frames."""
    env = np.zeros(num_frames)
    t = int(rng.integers(0, 3))
    while t < num_frames:
        length = int(rng.integers(3, 8))
        env[t : t + length] = rng.uniform(0.3, 1.0)
        t += length + int(rng.integers(2, 6))
    return env


def _audio(env: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Voiced buzz (random pitch per syllable) whose amplitude follows ``env``, 16-bit range."""
    spf = SR // FPS
    samples = np.arange(len(env) * spf) / SR
    amp = np.repeat(env, spf)
    amp = np.convolve(amp, np.hanning(161) / np.hanning(161).sum(), mode="same")  # 10 ms ramps
    pitch = np.repeat(rng.uniform(110, 220, len(env)), spf)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    noise = rng.standard_normal(len(samples)) * 0.02
    return (amp * voice * 0.3 + noise) * 0.5


def _frame(opening: float) -> np.ndarray:
    img = np.full((SIZE, SIZE, 3), 90, np.uint8)
    cv2.ellipse(img, (64, 64), (40, 52), 0, 0, 360, (200, 160, 140), -1)
    for x in (48, 80):
        cv2.circle(img, (x, 50), 5, (30, 30, 30), -1)
    cv2.ellipse(img, (64, 90), (16, int(1 + 14 * opening)), 0, 0, 360, (60, 20, 30), -1)
    return img


def _face_landmarks(num_frames: int) -> np.ndarray:
    """478 points on the drawn face oval: only their bounding box is used for the crop."""
    angle = np.linspace(0, 2 * np.pi, 478, endpoint=False)
    ring = np.stack([64 + 40 * np.cos(angle), 64 + 52 * np.sin(angle)], axis=1).astype(np.float32)
    return np.repeat(ring[None], num_frames, axis=0)


def build_sync_dataset(root: Path, seed: int = 0, num_frames: int = 60) -> Path:
    """dataset.json + sequences/<seq>/{images/cam08/*.jpg, audio.wav, landmarks.npz} (DESIGN.md layout)."""
    rng = np.random.default_rng(seed)
    splits = {"train": [f"s01_t{i:02d}" for i in range(4)], "val": ["s01_t04"], "test": ["s01_t05"]}
    sequences = {}
    for seq in [s for ids in splits.values() for s in ids]:
        env = _envelope(num_frames, rng)
        folder = root / "sequences" / seq
        (folder / "images" / "cam08").mkdir(parents=True)
        for t, level in enumerate(env):
            cv2.imwrite(str(folder / "images" / "cam08" / f"{t:05d}.jpg"), _frame(level)[..., ::-1])
        audio = np.clip(_audio(env, rng), -1, 1)
        wavfile.write(folder / "audio.wav", SR, np.round(audio * 32767).astype(np.int16))
        np.savez(
            folder / "landmarks.npz",
            cam08=_face_landmarks(num_frames),
            cam08_detected=np.ones(num_frames, bool),
        )
        sequences[seq] = {"subject": "s01", "num_frames": num_frames, "duration_s": num_frames / FPS}
    write_json(
        root / "dataset.json",
        {
            "schema_version": 1,
            "name": "sync-tiny",
            "fps": float(FPS),
            "image_size": [SIZE, SIZE],
            "frontal_camera": "cam08",
            "cameras": ["cam08"],
            "subjects": ["s01"],
            "sequences": sequences,
            "splits": {"s01": splits},
            "split_seed": seed,
            "provenance": {},
        },
    )
    return root


def _train_cli(dataset: Path, out: Path, steps: int, batch_size: int = 4, width: str = "0.0625") -> Path:
    from benchmark.cli import main

    main(
        [
            "--quiet",
            "weights",
            "train-syncnet",
            str(dataset),
            "--steps",
            str(steps),
            "--batch-size",
            str(batch_size),
            "--width",
            width,
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    (path,) = sorted(out.glob("syncnet-gsbench-*.pt"))
    return path


def test_train_syncnet_stores_ours_under_its_sha256(tmp_path, capsys):
    from benchmark.metrics import syncnet
    from benchmark.weights import WeightRegistry
    from gsbench.io import sha256_file

    dataset = build_sync_dataset(tmp_path / "data", num_frames=30)
    path = _train_cli(dataset, tmp_path / "w", steps=2)
    assert "syncnet-gsbench-" in capsys.readouterr().out
    digest = sha256_file(path)
    assert path.name == f"syncnet-gsbench-{digest[:8]}.pt"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == digest and sidecar["origin"].startswith("ours")
    assert sidecar["train_sequences"] == ["s01_t00", "s01_t01", "s01_t02", "s01_t03"]  # never val/test
    assert sidecar["validation_check"][0]["sequence"] == "s01_t04"
    assert sidecar["config"]["steps"] == 2 and sidecar["config"]["width"] == 0.0625
    found = WeightRegistry([tmp_path / "w"]).find(path.stem)
    assert found.origin == "ours" and found.weight_id == f"{path.stem}:{digest[:12]}"
    assert syncnet.load_syncnet(path).width == 0.0625
    # same seed, same bytes
    again = _train_cli(dataset, tmp_path / "w2", steps=2)
    assert sha256_file(again) == digest


def test_train_syncnet_missing_landmarks_is_input_error(tmp_path):
    from benchmark.metrics.train_syncnet import TrainSyncNetConfig, train_syncnet
    from gsbench.errors import InputError

    dataset = build_sync_dataset(tmp_path / "data", num_frames=12)
    (dataset / "sequences" / "s01_t00" / "landmarks.npz").unlink()
    with pytest.raises(InputError, match="landmarks.npz"):
        train_syncnet(dataset, TrainSyncNetConfig(steps=1), tmp_path / "w")


@pytest.mark.slow
def test_trained_syncnet_prefers_in_sync_video(tmp_path):
    """Trained on the train split, on the unseen test sequence: in sync beats the video delayed 8 frames."""
    from benchmark.metrics import syncnet
    from benchmark.metrics.train_syncnet import load_clip, shifted_check

    dataset = build_sync_dataset(tmp_path / "data")
    path = _train_cli(dataset, tmp_path / "w", steps=SLOW_STEPS, batch_size=16)
    check = shifted_check(syncnet.load_syncnet(path), load_clip(dataset, "s01_t05"), shift=8)
    assert check["lse_d_sync"] < check["lse_d_shifted"]
    assert check["lse_c_sync"] > check["lse_c_shifted"]
