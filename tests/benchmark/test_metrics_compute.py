"""compute_metrics and `gsbench metrics` end to end on a drawn face, with weights made in the test."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import cv2
import numpy as np
import pytest
import torch
import torchvision
from scipy.io import wavfile

from benchmark.cli import main
from benchmark.metrics import compute_metrics, syncnet
from benchmark.weights import REGISTRY, WeightRegistry
from gsbench.errors import InputError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.io import sha256_file

NUM = 12


def _face(t: int, size: int = 192) -> np.ndarray:
    img = np.full((size, size, 3), 200, np.uint8)
    s, c = size / 256, size // 2
    cv2.ellipse(img, (c, c), (int(70 * s), int(95 * s)), 0, 0, 360, (180, 140, 120), -1)
    for dx in (-28, 28):
        cv2.ellipse(
            img, (c + int(dx * s), c - int(20 * s)), (int(14 * s), int(7 * s)), 0, 0, 360, (255, 255, 255), -1
        )
        cv2.circle(img, (c + int(dx * s), c - int(20 * s)), int(5 * s), (40, 30, 20), -1)
        cv2.line(
            img,
            (c + int((dx - 15) * s), c - int(38 * s)),
            (c + int((dx + 15) * s), c - int(40 * s)),
            (60, 40, 30),
            3,
        )
    cv2.line(img, (c, c - int(10 * s)), (c - int(6 * s), c + int(18 * s)), (140, 100, 90), 2)
    opening = 0.5 + 0.5 * np.sin(t / 2)
    cv2.ellipse(
        img, (c, c + int(45 * s)), (int(24 * s), int(4 * s + opening * 14 * s)), 0, 0, 360, (120, 40, 50), -1
    )
    return img


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(0)
    gt = np.stack([_face(t) for t in range(NUM)])
    pred = np.clip(gt.astype(np.int16) + rng.integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
    pred[3] = 0  # a frame without a face in the prediction
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, 30:170, 40:150] = True
    for name, frames in (("pred", pred), ("gt", gt)):
        (root / name).mkdir()
        for t, frame in enumerate(frames):
            cv2.imwrite(str(root / name / f"{t:05d}.png"), frame[..., ::-1])
    (root / "masks").mkdir()
    for t, mask in enumerate(masks):
        cv2.imwrite(str(root / "masks" / f"{t:05d}.png"), mask.astype(np.uint8) * 255)
    audio = (rng.standard_normal(NUM * 640) * 2000).astype(np.int16)
    wavfile.write(root / "audio.wav", 16000, audio)
    weights = root / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(syncnet.SyncNet().state_dict(), weights / "syncnet_v2.model")  # random, official layout
    torch.save(torchvision.models.alexnet().state_dict(), weights / "alexnet-owt-7be5be79.pth")  # random
    ours = weights / "ours.pt"
    syncnet.save_syncnet(syncnet.SyncNet(width=0.0625, embedding_dim=64), ours)
    ours_name = f"syncnet-gsbench-{sha256_file(ours)[:8]}"
    ours.rename(weights / f"{ours_name}.pt")
    return {
        "ours": ours_name,
        "root": root,
        "pred": pred,
        "gt": gt,
        "masks": masks,
        "audio": audio,
        "weights": weights,
    }


def _pinned_registry(weights):
    path = weights / "alexnet-owt-7be5be79.pth"
    spec = dataclasses.replace(
        REGISTRY["lpips-alexnet"], expected_sha256=sha256_file(path), sha256_prefix=None
    )
    return WeightRegistry([weights], specs={"lpips-alexnet": spec})


def test_compute_metrics_all(clip):
    pred, gt = clip["pred"].astype(np.float32) / 255, clip["gt"].astype(np.float32) / 255
    results = compute_metrics(
        pred,
        gt,
        masks=clip["masks"],
        audio=clip["audio"].astype(np.float32) / 32768,
        fps=25.0,
        weights=_pinned_registry(clip["weights"]),
    )
    assert set(results) == {
        "psnr",
        "ssim",
        "lpips",
        "lmd",
        "lmd_face",
        "lse_d",
        "lse_c",
        "psnr_masked",
        "ssim_masked",
        "lpips_masked",
        "psnr_mouth",
        "ssim_mouth",
        "lpips_mouth",
    }
    assert all(r.status == "ok" for r in results.values()), {k: r.reason for k, r in results.items()}
    assert (
        results["lpips"].weight_id
        == f"lpips-alexnet:{sha256_file(clip['weights'] / 'alexnet-owt-7be5be79.pth')[:12]}"
    )
    assert (
        results["lse_d"].weight_id.startswith("syncnet-v2:")
        and results["lse_c"].details["weights_origin"] == "official"
    )
    assert results["lse_d"].details["frames_without_face"] == 1
    lmd_details = results["lmd"].details
    assert lmd_details["failed_pred"] == 1 and lmd_details["failed_gt"] == 0 and lmd_details["frames"] == NUM
    assert lmd_details["resolution"] == "192x192" and lmd_details["detector"] == "mediapipe-facemesh-478"
    assert results["ssim"].details["channels"] == "mean of the R, G, B SSIM maps"
    assert np.isnan(lmd_details["per_frame"][3])
    assert 0 <= results["lmd"].value < 5  # noise only: landmarks stay within a few pixels
    assert len(results["psnr"].details["per_frame"]) == NUM
    # PSNR and masked PSNR by hand: MSE over H, W and the 3 channels (masked: over the mask pixels)
    error2 = (pred.astype(np.float64) - gt.astype(np.float64)) ** 2
    psnr = -10 * np.log10(error2.reshape(NUM, -1).mean(axis=1))
    psnr_masked = -10 * np.log10(np.array([e[m].mean() for e, m in zip(error2, clip["masks"], strict=True)]))
    np.testing.assert_allclose(results["psnr"].details["per_frame"], psnr, atol=1e-9)
    assert results["psnr"].value == pytest.approx(psnr.mean(), abs=1e-9)
    assert results["psnr_masked"].value == pytest.approx(psnr_masked.mean(), abs=1e-9)


def test_identical_clip_scores(clip):
    gt = clip["gt"].astype(np.float32) / 255
    results = compute_metrics(
        gt, gt, weights=_pinned_registry(clip["weights"]), metrics=["psnr", "ssim", "lpips", "lmd"]
    )
    assert np.isinf(results["psnr"].value) and results["ssim"].value == pytest.approx(1.0)
    assert results["lpips"].value == 0.0 and results["lmd"].value == 0.0 and results["lmd_face"].value == 0.0
    assert "lse_d" not in results


def test_missing_weights_are_reported_never_substituted(clip, tmp_path):
    gt = clip["gt"].astype(np.float32) / 255
    results = compute_metrics(
        gt,
        gt,
        audio=np.zeros(NUM * 640, np.float32),
        weights=WeightRegistry([tmp_path]),
        metrics=["lpips", "lse_d"],
    )
    for name in ("lpips", "lse_d", "lse_c"):
        assert results[name].status == "missing" and results[name].value is None
        assert "not found" in results[name].reason
    # the random AlexNet is not torchvision's file: the registry refuses it
    unpinned = compute_metrics(gt, gt, weights=WeightRegistry([clip["weights"]]), metrics=["lpips"])
    assert unpinned["lpips"].status == "missing" and "7be5be79" in unpinned["lpips"].reason
    no_audio = compute_metrics(gt, gt, weights=WeightRegistry([clip["weights"]]), metrics=["lse_c"])
    assert no_audio["lse_d"].status == "missing" and no_audio["lse_d"].reason == "no audio given"


def test_shape_mismatch_is_input_error(clip):
    gt = clip["gt"].astype(np.float32) / 255
    with pytest.raises(InputError, match="differ in shape"):
        compute_metrics(gt[:-1], gt, metrics=["psnr"])


def _decode(path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def _mp4(frames_dir, out):
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-framerate",
            "25",
            "-i",
            str(frames_dir / "%05d.png"),
            "-c:v",
            "libx264",
            "-crf",
            "10",
            "-pix_fmt",
            "yuv444p",
            str(out),
        ],
        check=True,
    )


def test_cli_on_mp4_and_folders(clip, monkeypatch, capsys):
    root = clip["root"]
    monkeypatch.setenv("GSBENCH_WEIGHTS", str(clip["weights"]))
    monkeypatch.setenv("COLUMNS", "200")
    _mp4(root / "pred", root / "pred.mp4")
    _mp4(root / "gt", root / "gt.mp4")
    main(
        [
            "--quiet",
            "metrics",
            str(root / "pred.mp4"),
            str(root / "gt.mp4"),
            "--audio",
            str(root / "audio.wav"),
            "--json",
            "--syncnet",
            clip["ours"],
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert {"psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c"} <= set(out)
    assert out["lpips"]["status"] == "missing"  # random AlexNet refused by the registry
    assert out["lse_c"]["status"] == "ok" and out["lse_c"]["weight_id"].startswith(clip["ours"] + ":")
    assert out["lse_c"]["details"]["weights_origin"] == "ours"
    # PSNR of the decoded videos (imageio-ffmpeg's reader, not gsbench.media), per frame then mean
    decoded = [_decode(root / f"{name}.mp4").astype(np.float64) / 255 for name in ("pred", "gt")]
    per_frame = -10 * np.log10(((decoded[0] - decoded[1]) ** 2).reshape(NUM, -1).mean(axis=1))
    assert out["psnr"]["status"] == "ok"
    assert out["psnr"]["value"] == pytest.approx(per_frame.mean(), abs=1e-4)

    main(
        [
            "--quiet",
            "metrics",
            str(root / "pred"),
            str(root / "gt"),
            "--mask-dir",
            str(root / "masks"),
            "--audio",
            str(root / "audio.wav"),
            "--syncnet",
            clip["ours"],
        ]
    )
    table = capsys.readouterr().out
    for name in ("psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c", "psnr_masked", "syncnet-gsbench-"):
        assert name in table
    assert "missing" in table

    with pytest.raises(SystemExit):
        main(["metrics", str(root / "pred"), str(root / "nope")])
    assert "not a video file or a folder" in capsys.readouterr().err
