"""Offset detection (how SyncNet is judged) on a stand-in network whose embeddings are exact: the AV
offset convention and the accuracy bookkeeping are checked against shifts made by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.metrics import syncnet, syncnet_eval

T = 40


class ExactCodes(torch.nn.Module):
    """Video window v -> the 5 frame codes c[v..v+4]; audio window v -> the same codes read from the MFCC
    columns 4v, 4v+4, ..., 4v+16: the distance is 0 exactly at the true alignment."""

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:  # [N, 3, 5, 224, 224]
        return video[:, 0, :, 0, 0]

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:  # [N, 1, 13, 20]
        return mfcc[:, 0, 0, ::4]


@pytest.fixture
def clip(monkeypatch):
    codes = np.random.default_rng(0).integers(1, 255, T)
    crops = np.broadcast_to(codes[:, None, None, None], (T, 224, 224, 3)).astype(np.uint8)
    mfcc = np.zeros((13, 4 * T + 20), np.float32)
    mfcc[0, : 4 * T] = np.repeat(codes, 4)  # column m belongs to video frame m // 4 (100 Hz vs 25 fps)
    monkeypatch.setattr(syncnet, "mfcc_features", lambda audio, sample_rate=16000: mfcc)
    return "c", crops, np.zeros(T * 640, np.float32)


def test_shift_video_by_hand():
    frames = np.arange(6)
    np.testing.assert_array_equal(syncnet_eval.shift_video(frames, 2), [0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(syncnet_eval.shift_video(frames, -2), [2, 3, 4, 5, 5, 5])


def test_delayed_video_gives_its_delay_as_av_offset(clip):
    found = syncnet_eval.offset_detection(ExactCodes(), [clip], shifts=(-6, -1, 0, 3, 7))
    assert [t["offset"] for t in found["trials"]] == [-6, -1, 0, 3, 7]
    assert found["accuracy"] == 1.0 and found["per_shift"][7] == 1.0
    assert found["trials"][2]["lse_d"] == pytest.approx(0.0, abs=1e-5)  # exact embeddings in sync


def test_wrong_offsets_count_as_misses(clip, monkeypatch):
    real = syncnet.lse_from_crops

    def off_by_two(model, crops, audio, vshift=15, batch_size=20):
        result = real(model, crops, audio, vshift, batch_size)
        result.offset += 2
        return result

    monkeypatch.setattr(syncnet, "lse_from_crops", off_by_two)
    assert syncnet_eval.offset_detection(ExactCodes(), [clip], shifts=(0, 4))["accuracy"] == 0.0
    assert syncnet_eval.offset_detection(ExactCodes(), [clip], shifts=(0, 4), tolerance=2)["accuracy"] == 1.0
