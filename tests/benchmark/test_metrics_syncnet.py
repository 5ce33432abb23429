"""Our SyncNet and LSE-D/LSE-C against a transcription of syncnet_python's SyncNetInstance.evaluate."""

from __future__ import annotations

import glob
import math
import os

import cv2
import numpy as np
import pytest
import python_speech_features
import torch
from scipy.io import wavfile

from benchmark.metrics import syncnet
from gsbench.media import read_wav

# official syncnet_v2.model layout (joonson/syncnet_python SyncNetModel.S): key -> shape; the file was
# saved before PyTorch 0.4.1 and holds no BatchNorm num_batches_tracked counters
OFFICIAL_SHAPES = {
    "netcnnaud.0.weight": (64, 1, 3, 3),
    "netcnnaud.4.weight": (192, 64, 3, 3),
    "netcnnaud.8.weight": (384, 192, 3, 3),
    "netcnnaud.11.weight": (256, 384, 3, 3),
    "netcnnaud.14.weight": (256, 256, 3, 3),
    "netcnnaud.18.weight": (512, 256, 5, 4),
    "netcnnaud.19.running_var": (512,),
    "netfcaud.0.weight": (512, 512),
    "netfcaud.1.weight": (512,),
    "netfcaud.3.weight": (1024, 512),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7),
    "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.8.weight": (256, 256, 1, 3, 3),
    "netcnnlip.11.weight": (256, 256, 1, 3, 3),
    "netcnnlip.14.weight": (256, 256, 1, 3, 3),
    "netcnnlip.18.weight": (512, 256, 1, 6, 6),
    "netcnnlip.19.running_mean": (512,),
    "netfclip.3.weight": (1024, 512),
    "netfclip.3.bias": (1024,),
}


def _random_syncnet(width: float, seed: int, embedding_dim: int = 1024) -> syncnet.SyncNet:
    torch.manual_seed(seed)
    model = syncnet.SyncNet(width=width, embedding_dim=embedding_dim)
    # non-trivial BatchNorm statistics so eval mode is exercised
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_state_dict_keys_match_official_layout():
    state = syncnet.SyncNet().state_dict()
    for key, shape in OFFICIAL_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    towers = {k.split(".")[0] for k in state}
    assert towers == {"netcnnaud", "netfcaud", "netcnnlip", "netfclip"}
    # official keys: per tower 6 conv (weight, bias) + 6 BatchNorm (weight, bias, mean, var);
    # fc: 2 linear + 1 BN. Our module adds one counter per BatchNorm (14), which the file lacks.
    official = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(official) == 2 * (6 * 2 + 6 * 4) + 2 * (2 * 2 + 4)
    assert len(state) - len(official) == 2 * 6 + 2 * 1


def test_pre_041_checkpoint_without_batch_counters_loads(tmp_path):
    """The official syncnet_v2.model: a legacy (non-zip) pickle without num_batches_tracked."""
    import zipfile

    model = _random_syncnet(1.0, 4)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 88
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)  # the pre-1.6 pickle format, as the official file
    assert syncnet.check_syncnet_state_dict(path) is None
    loaded = syncnet.load_syncnet(path)
    assert len(loaded.default_filled_keys) == 14
    assert all(k.endswith("num_batches_tracked") for k in loaded.default_filled_keys)
    audio = torch.randn(2, 1, 13, 20)
    video = torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_aud(audio), model.forward_aud(audio))
        torch.testing.assert_close(loaded.forward_lip(video), model.forward_lip(video))
    # a file missing a real tensor is still refused
    del state["netcnnlip.19.running_var"]
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert "netcnnlip.19.running_var" in syncnet.check_syncnet_state_dict(path)


def test_official_style_file_loads_and_outputs_match(tmp_path):
    model = _random_syncnet(1.0, 0)
    path = tmp_path / "syncnet_v2.model"
    torch.save(model.state_dict(), path)  # a plain state dict, as the official file
    assert syncnet.check_syncnet_state_dict(path) is None
    loaded = syncnet.load_syncnet(path)
    audio = torch.randn(2, 1, 13, 20)
    video = torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        assert loaded.forward_aud(audio).shape == (2, 1024)
        torch.testing.assert_close(loaded.forward_aud(audio), model.forward_aud(audio))
        torch.testing.assert_close(loaded.forward_lip(video), model.forward_lip(video))


def test_bad_files_are_rejected(tmp_path):
    narrow = tmp_path / "narrow.model"
    torch.save(_random_syncnet(0.25, 0).state_dict(), narrow)  # plain dict of the wrong shapes
    assert "shape" in syncnet.check_syncnet_state_dict(narrow)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00" * 100)
    assert syncnet.check_syncnet_state_dict(junk) is not None
    ours = tmp_path / "ours.pt"
    syncnet.save_syncnet(_random_syncnet(0.25, 0, 64), ours)
    assert syncnet.check_syncnet_state_dict(ours) is None
    assert syncnet.load_syncnet(ours).width == 0.25


def _reference_evaluate(model, frame_dir, wav_path, vshift=15, batch_size=20):
    """SyncNetInstance.evaluate (joonson/syncnet_python), transcribed with its own loops and names."""
    images = [cv2.imread(f) for f in sorted(glob.glob(os.path.join(frame_dir, "*.jpg")))]
    im = np.stack(images, axis=3)
    im = np.expand_dims(im, axis=0)
    im = np.transpose(im, (0, 3, 4, 1, 2))
    imtv = torch.from_numpy(im.astype(float)).float()
    sample_rate, audio = wavfile.read(wav_path)
    mfcc = zip(*python_speech_features.mfcc(audio, sample_rate), strict=True)
    mfcc = np.stack([np.array(i) for i in mfcc])
    cc = np.expand_dims(np.expand_dims(mfcc, axis=0), axis=0)
    cct = torch.from_numpy(cc.astype(float)).float()
    min_length = min(len(images), math.floor(len(audio) / 640))
    lastframe = min_length - 5
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for i in range(0, lastframe, batch_size):
            im_batch = [
                imtv[:, :, vframe : vframe + 5, :, :] for vframe in range(i, min(lastframe, i + batch_size))
            ]
            im_feat.append(model.forward_lip(torch.cat(im_batch, 0)))
            cc_batch = [
                cct[:, :, :, vframe * 4 : vframe * 4 + 20]
                for vframe in range(i, min(lastframe, i + batch_size))
            ]
            cc_feat.append(model.forward_aud(torch.cat(cc_batch, 0)))
    im_feat, cc_feat = torch.cat(im_feat, 0), torch.cat(cc_feat, 0)
    win_size = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(cc_feat, (0, 0, vshift, vshift))
    dists = [
        torch.nn.functional.pairwise_distance(
            im_feat[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :]
        )
        for i in range(len(im_feat))
    ]
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    return vshift - minidx, torch.median(mdist) - minval, minval


@pytest.mark.parametrize("width,num_frames", [(0.25, 31), pytest.param(1.0, 12, marks=pytest.mark.slow)])
def test_lse_equals_reference_on_identical_weights(tmp_path, width, num_frames):
    rng = np.random.default_rng(3)
    model = _random_syncnet(width, 1)
    crops = rng.integers(0, 256, (num_frames, 224, 224, 3), dtype=np.uint8)
    for t, crop in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"{t:06d}.jpg"), crop[..., ::-1])
    samples = (rng.standard_normal(num_frames * 640 + 123) * 3000).astype(np.int16)
    wavfile.write(tmp_path / "audio.wav", 16000, samples)

    offset, conf, minval = _reference_evaluate(model, str(tmp_path), str(tmp_path / "audio.wav"))
    decoded = np.stack([cv2.imread(str(tmp_path / f"{t:06d}.jpg"))[..., ::-1] for t in range(num_frames)])
    ours = syncnet.lse_from_crops(
        model, decoded, read_wav(tmp_path / "audio.wav", resample=True), batch_size=7
    )
    assert ours.num_windows == num_frames - 5
    assert ours.offset == int(offset)
    np.testing.assert_allclose(ours.lse_d, float(minval), rtol=1e-5)
    np.testing.assert_allclose(ours.lse_c, float(conf), rtol=1e-4, atol=1e-5)


def test_mfcc_matches_wav_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    samples = (rng.standard_normal(16000) * 2000).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 16000, samples)
    float_audio = read_wav(tmp_path / "a.wav", resample=True)
    np.testing.assert_array_equal(syncnet.audio_to_int16(float_audio), samples)
    mfcc = syncnet.mfcc_features(float_audio)
    assert mfcc.shape == (13, 99)  # 25 ms windows every 10 ms over 1 s
    np.testing.assert_allclose(mfcc, np.asarray(python_speech_features.mfcc(samples, 16000)).T)


def test_crop_rule_matches_run_pipeline():
    """crop_faces reproduces run_pipeline.crop_video's crop for a given box."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cx, cy, bs, cs = 70.0, 50.0, 30.0, 0.4
    bsi = int(bs * (1 + 2 * cs))
    padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = cy + bsi, cx + bsi
    face = padded[
        int(my - bs) : int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)) : int(mx + bs * (1 + cs))
    ]
    expected = cv2.resize(face, (224, 224))
    got = syncnet.crop_faces(frame[None], np.array([[cx, cy, bs]]))[0]
    np.testing.assert_array_equal(got, expected)


def test_face_track_from_landmarks_fills_missing_and_smooths():
    num = 20
    points = np.zeros((num, 478, 2), np.float32)
    points[:, :, 0] = np.linspace(40, 100, 478)  # box x 40..100, y 30..110 -> centre (70, 70), half 40
    points[:, :, 1] = np.linspace(30, 110, 478)
    detected = np.ones(num, bool)
    detected[[0, 7]] = False
    points[~detected] = np.nan
    points[12] += 50  # a single outlier frame is removed by the temporal median filter
    track = syncnet.face_boxes_from_landmarks(points, detected)
    np.testing.assert_allclose(track[12], [70, 70, 40])
    np.testing.assert_allclose(track[0], [70, 70, 40])
    np.testing.assert_allclose(track[7], [70, 70, 40])


def test_resample_to_25fps():
    frames = np.arange(50)  # 2 s at 25 fps
    np.testing.assert_array_equal(syncnet.resample_frames_to_25fps(frames, 25.0), frames)
    # ffmpeg's CFR sync at 30 -> 25 fps: frame i lands at 5i/6 ticks; drop only when it trails by 1.1
    # ticks, i.e. 5i/6 - (i - drops) + 5/6 < -1.1 -> the first drop is frame 12, then every 6th
    at30 = syncnet.resample_frames_to_25fps(np.arange(60), 30.0)
    np.testing.assert_array_equal(at30, [i for i in range(60) if i < 12 or i % 6 != 0])


def _ffmpeg_r25_source_index(tmp_path, num_frames: int, rate: str) -> np.ndarray:
    """Run the real ``ffmpeg -i in -r 25 out.avi`` on a lossless clip whose frame i is the flat colour
    (i % 256, i // 256, 77), and read back which input frame each output frame is."""
    import subprocess

    from gsbench.ffmpeg import ffmpeg_exe

    index = np.arange(num_frames)
    frames = np.zeros((num_frames, 16, 16, 3), np.uint8)
    frames[..., 0] = (index % 256)[:, None, None]
    frames[..., 1] = (index // 256)[:, None, None]
    frames[..., 2] = 77
    src, out = tmp_path / f"in_{num_frames}.avi", tmp_path / f"out_{num_frames}.avi"
    quiet = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "16x16", "-r", rate, "-i", "-"]
    subprocess.run([*quiet, *raw, "-c:v", "ffv1", str(src)], input=frames.tobytes(), check=True)
    subprocess.run([*quiet, "-i", str(src), "-r", "25", "-c:v", "ffv1", str(out)], check=True)
    decoded = subprocess.run(
        [*quiet, "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True
    ).stdout
    decoded = np.frombuffer(decoded, np.uint8).reshape(-1, 16, 16, 3)
    assert (decoded[..., 2] == 77).all()  # lossless: the index channels are exact
    return decoded[:, 8, 8, 0].astype(int) + 256 * decoded[:, 8, 8, 1].astype(int)


@pytest.mark.parametrize(
    "rate,num_frames",
    [("30", 30), ("30", 61), ("30000/1001", 100), ("50", 33), ("24", 30), ("10", 12), ("60", 7)],
)
def test_resample_to_25fps_matches_real_ffmpeg(tmp_path, rate, num_frames):
    from fractions import Fraction

    expected = _ffmpeg_r25_source_index(tmp_path, num_frames, rate)
    ours = syncnet.resample_frames_to_25fps(np.arange(num_frames), float(Fraction(rate)))
    np.testing.assert_array_equal(ours, expected)


def test_layout_equals_pypi_syncnet_python_model():
    """The official SyncNetModel.S (PyPI syncnet-python, a test dependency): same keys and shapes, and a
    state dict of ours loads into it and gives the same embeddings."""
    syncnet_model = pytest.importorskip("syncnet_python.SyncNetModel")
    official = syncnet_model.S(num_layers_in_fc_layers=1024).eval()
    ours = _random_syncnet(1.0, 5)
    assert {k: tuple(v.shape) for k, v in official.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ours.state_dict().items()
    }
    official.load_state_dict(ours.state_dict())
    audio, video = torch.randn(2, 1, 13, 20), torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        torch.testing.assert_close(official.forward_aud(audio), ours.forward_aud(audio))
        torch.testing.assert_close(official.forward_lip(video), ours.forward_lip(video))


def test_pypi_syncnet_python_agrees_when_installed(tmp_path):
    """Against the PyPI package syncnet-python (0.2.3) when installed; skipped otherwise.

    Its ``SyncNetInstance.py`` is loaded from the installed files directly: the package's ``__init__``
    also imports its S3FD pipeline (pandas, scenedetect), which LSE does not need.
    """
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    found = importlib.util.find_spec("syncnet_python")
    if found is None or not found.submodule_search_locations:
        pytest.skip("PyPI package syncnet-python is not installed")
    file = Path(list(found.submodule_search_locations)[0]) / "SyncNetInstance.py"
    spec = importlib.util.spec_from_file_location("_pypi_syncnet_instance", file)
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)

    rng = np.random.default_rng(6)
    model = _random_syncnet(1.0, 2)
    crops = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    for t, crop in enumerate(crops):
        cv2.imwrite(str(tmp_path / f"{t:06d}.jpg"), crop[..., ::-1])
    samples = (rng.standard_normal(12 * 640) * 3000).astype(np.int16)
    wavfile.write(tmp_path / "audio.wav", 16000, samples)
    instance = package.SyncNetInstance(model, device="cpu")
    offset, conf, _ = instance.evaluate(SimpleNamespace(tmp_dir=str(tmp_path), batch_size=20, vshift=15))
    decoded = np.stack([cv2.imread(str(tmp_path / f"{t:06d}.jpg"))[..., ::-1] for t in range(12)])
    ours = syncnet.lse_from_crops(model, decoded, read_wav(tmp_path / "audio.wav", resample=True))
    assert ours.offset == int(offset)
    np.testing.assert_allclose(ours.lse_c, float(conf), rtol=1e-4, atol=1e-5)
