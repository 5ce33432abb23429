"""The retrieval baseline and the offline 50 Hz audio features."""

from __future__ import annotations

import numpy as np
import pytest

from avatars import audio_features
from avatars.methods.base import Camera, RenderRequest
from avatars.methods.retrieval import RetrievalMethod, shift_image
from gsbench.errors import MethodError

FPS = 25.0
SIZE = (16, 20)  # (height, width)


def test_log_mel_rate_and_peak_band():
    t = np.arange(16000) / 16000.0
    tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    features = audio_features.log_mel(tone)
    assert features.shape == (50, 80)  # 1 s at 50 Hz
    assert audio_features.log_mel(np.append(tone, 0.0)).shape[0] == 51  # ceil(N / 320)
    config = audio_features.LogMelConfig()
    bank = audio_features.mel_filterbank(16000, config.n_fft, config.n_mels, config.f_min, config.f_max)
    bin_1k = round(1000.0 / (16000 / config.n_fft))
    assert features[25].argmax() == bank[:, bin_1k].argmax()
    assert audio_features.mfcc(tone).shape == (50, 13)


def test_frame_windows_align_video_and_audio_frames():
    features = np.arange(100)[:, None].astype(np.float32)  # feature k has value k
    windows = audio_features.frame_windows(features, num_video_frames=10, fps=25.0, window=4)
    assert windows.shape == (10, 4, 1)
    np.testing.assert_array_equal(windows[3, :, 0], [4, 5, 6, 7])  # frame 3 at 0.12 s -> feature 6 centred
    np.testing.assert_array_equal(windows[0, :, 0], [0, 0, 0, 1])  # edge repeated


def test_shift_image():
    image = np.arange(12.0).reshape(3, 4)
    shifted = shift_image(image, 1, -1)
    np.testing.assert_array_equal(shifted[1:, :3], image[:2, 1:])
    assert (shifted[0] == 0).all() and (shifted[:, 3] == 0).all()


class FakeTrainView:
    """In-memory TrainData: random speech-like audio per sequence, frame t of sequence s is uniform grey."""

    protocol = "mono-front"
    subject = "s01"
    fps = FPS
    image_size = SIZE

    def __init__(self, num_sequences: int = 3, num_frames: int = 20, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.camera = Camera(
            "cam01", np.array([[20.0, 0, 10], [0, 20.0, 8], [0, 0, 1]]), np.eye(4), SIZE[1], SIZE[0]
        )
        self.cameras = {"cam01": self.camera}
        self.sequences = tuple(f"seq{i}" for i in range(num_sequences))
        self.frames = num_frames
        self.audio = {
            s: rng.standard_normal(num_frames * 640).astype(np.float32) * rng.random(num_frames).repeat(640)
            for s in self.sequences
        }
        self.translation = np.tile([0.0, 0.0, 1.0], (num_frames, 1))

    def num_frames(self, sequence):
        return self.frames

    def load_audio(self, sequence):
        return self.audio[sequence]

    def load_images(self, sequence, camera):
        index = self.sequences.index(sequence)
        values = (index * self.frames + np.arange(self.frames)).astype(np.uint8)
        return np.broadcast_to(values[:, None, None, None], (self.frames, *SIZE, 3)).copy()

    def load_masks(self, sequence, camera):
        return np.ones((self.frames, *SIZE), bool)

    def load_flame(self, sequence):
        return {"translation": self.translation}


def _request(view: FakeTrainView, audio: np.ndarray, num_frames: int) -> RenderRequest:
    return RenderRequest(
        "mono-front",
        "test",
        audio,
        16000,
        FPS,
        num_frames,
        np.zeros((num_frames, 3)),
        np.tile([0.0, 0.0, 1.0], (num_frames, 1)),
        view.camera,
    )


def test_retrieval_returns_the_training_frames_of_identical_audio(tmp_path):
    view = FakeTrainView()
    method = RetrievalMethod(seed=0)
    method.train(view, "smoke", tmp_path)
    request = _request(view, view.audio["seq1"], view.frames)
    nearest = method.nearest_training_frames(request)
    np.testing.assert_array_equal(nearest, view.frames + np.arange(view.frames))  # seq1's rows of the table
    output = method.render(request)
    output.validate(request)
    expected = view.load_images("seq1", "cam01").astype(np.float32) / 255.0
    np.testing.assert_array_equal(output.rgb, expected)
    assert (output.alpha == 1).all()


def test_retrieval_follows_the_head_translation(tmp_path):
    view = FakeTrainView()
    method = RetrievalMethod(seed=0)
    method.train(view, "smoke", tmp_path)
    request = _request(view, view.audio["seq0"], view.frames)
    moved = RenderRequest(**{**request.__dict__, "translation": request.translation + [0.1, 0.0, 0.0]})
    alpha = method.render(moved).alpha
    assert (alpha[:, :, :2] == 0).all() and (alpha[:, :, 2:] == 1).all()  # 0.1 m at 1 m, f = 20 px -> 2 px


def test_save_load_round_trip(tmp_path):
    view = FakeTrainView()
    method = RetrievalMethod(seed=0)
    method.train(view, "quick", tmp_path)
    (tmp_path / "ckpt").mkdir()
    method.save(tmp_path / "ckpt")
    restored = RetrievalMethod(seed=0)
    restored.load(tmp_path / "ckpt")
    rng = np.random.default_rng(1)
    request = _request(view, rng.standard_normal(16 * 640).astype(np.float32), 16)
    np.testing.assert_array_equal(method.render(request).rgb, restored.render(request).rgb)
    assert restored.info() == method.info()


def test_retrieval_refuses_unseen_camera_and_untrained_use(tmp_path):
    view = FakeTrainView()
    method = RetrievalMethod(seed=0)
    request = _request(view, view.audio["seq0"], view.frames)
    with pytest.raises(MethodError, match="before train"):
        method.render(request)
    method.train(view, "smoke", tmp_path)
    other = Camera("cam05", view.camera.K, np.eye(4), SIZE[1], SIZE[0])
    with pytest.raises(MethodError, match="no training frames of camera 'cam05'"):
        method.render(RenderRequest(**{**request.__dict__, "camera": other}))
