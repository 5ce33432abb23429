"""Parts of the synthetic rig checked on their own: speech, coarticulation, posing, lens rays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from capture_tools.synth.motion import ExpressionMap, Performance, PerformanceStyle
from capture_tools.synth.rig import build_rig
from capture_tools.synth.speech import PHONEMES, SAMPLE_RATE, Speaker, random_sentence, synthesize


def _sentence(seed: int = 3, duration: float = 3.0):
    rng = np.random.default_rng(seed)
    speaker = Speaker()
    timeline = random_sentence(rng, speaker, duration)
    return timeline, synthesize(timeline, speaker, rng, duration)


def test_speech_timeline_matches_the_audio():
    timeline, audio = _sentence()
    assert len(audio) == 3 * SAMPLE_RATE and audio.dtype == np.float32
    assert timeline[0].start_s == 0.0 and abs(timeline[-1].end_s - 3.0) < 1e-9
    assert all(a.end_s == b.start_s for a, b in zip(timeline[:-1], timeline[1:], strict=True))
    assert {p.symbol for p in timeline} <= set(PHONEMES)

    def rms(a, b):
        segment = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(segment.astype(np.float64) ** 2))) if len(segment) else np.nan

    vowels = [rms(p.start_s, p.end_s) for p in timeline if p.phoneme.kind == "vowel"]
    closures = [rms(*p.closure_s) for p in timeline if p.symbol in ("p", "b")]
    silences = [rms(p.start_s + 0.03, p.end_s - 0.03) for p in timeline if p.symbol == "sil"]
    assert closures and vowels
    # stop closures are (near) silent, vowels are loud
    assert np.nanmax(closures) < 0.2 * np.median(vowels)
    assert np.nanmax(silences) < 0.05 * np.median(vowels)


def test_voice_pitch_follows_the_speaker():
    def pitch(speaker: Speaker) -> float:
        rng = np.random.default_rng(0)
        timeline = random_sentence(rng, speaker, 2.0)
        audio = synthesize(timeline, speaker, rng, 2.0).astype(np.float64)
        vowel = max((p for p in timeline if p.phoneme.kind == "vowel"), key=lambda p: p.end_s - p.start_s)
        segment = audio[int(vowel.start_s * SAMPLE_RATE) : int(vowel.end_s * SAMPLE_RATE)]
        correlation = np.correlate(segment, segment, "full")[len(segment) - 1 :]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        return SAMPLE_RATE / (lo + int(np.argmax(correlation[lo:hi])))

    low, high = pitch(Speaker(f0_hz=100.0)), pitch(Speaker(f0_hz=210.0, formant_scale=1.15))
    # the contour rises up to ~1.3x the mean on accented vowels; the ratio of the voices holds
    assert 90 < low < 145 and 1.8 < high / low < 2.4


def test_same_seed_same_audio():
    assert np.array_equal(_sentence(5)[1], _sentence(5)[1])
    assert not np.array_equal(_sentence(5)[1], _sentence(6)[1])


def test_coarticulation_closes_lips_on_bilabials_and_rounds_on_rounded_vowels():
    timeline, _ = _sentence(11, 4.0)
    names = ("lip_pucker", "smile_left", "smile_right", "lip_press", "blink_left", "blink_right")
    expression_map = ExpressionMap.for_names(names, len(names))
    performance = Performance(
        timeline, np.random.default_rng(0), PerformanceStyle(), expression_map, np.zeros(3)
    )
    for p in timeline:
        times = np.linspace(p.start_s, p.end_s, 7)[1:-1]
        articulation = performance.articulation(times)
        if p.closure_s is not None:
            inside = np.linspace(*p.closure_s, 5)
            assert performance.articulation(inside)["jaw"].max() < 0.03
            assert performance.articulation(inside)["close"].min() > 0.8
        elif p.symbol == "uw":
            assert articulation["round"].max() > 0.6
        elif p.symbol == "aa":
            assert articulation["jaw"].max() > 0.15
    params = performance.flame_params(np.linspace(0, 4, 101))
    assert params["expr"].shape == (101, len(names)) and params["eyes_pose"].shape == (101, 6)
    assert np.all(np.abs(params["rotation"]) < np.radians(10))


def test_subject_poser_equals_flame_layer():
    from capture_tools.synth.posing import SubjectPoser
    from tracking.flame import FlameLayer
    from tracking.head import build_default_head

    head = build_default_head(seed=0)
    rng = np.random.default_rng(1)
    shape = rng.normal(0, 0.5, head.num_shape)
    params = {
        "expr": rng.normal(0, 0.5, (3, head.num_expr)),
        "rotation": rng.normal(0, 0.2, (3, 3)),
        "neck_pose": rng.normal(0, 0.1, (3, 3)),
        "jaw_pose": rng.normal(0, 0.1, (3, 3)),
        "eyes_pose": rng.normal(0, 0.1, (3, 6)),
        "translation": rng.normal(0, 0.1, (3, 3)),
    }
    vertices, landmarks = SubjectPoser(head, shape)(**params)
    layer = FlameLayer(head, dtype=torch.float64)
    for i in range(3):
        with torch.no_grad():
            reference = layer(
                shape=torch.as_tensor(shape), **{k: torch.as_tensor(v[i : i + 1]) for k, v in params.items()}
            )
        assert np.abs(reference.vertices[0].numpy() - vertices[i]).max() < 1e-5
        assert np.abs(reference.landmarks[0].numpy() - landmarks[i]).max() < 1e-5


def test_pixel_rays_invert_the_lens_distortion():
    cameras, frontal = build_rig(np.random.default_rng(0), 16, 96, 80, 25.0)
    assert frontal == "cam08" and len({c.id for c in cameras}) == 16
    azimuths = [c.azimuth_deg for c in cameras]
    assert min(azimuths) <= -60 and max(azimuths) >= 60
    for camera in cameras[:3]:
        assert camera.dist[0] != 0.0
        origin, directions = camera.pixel_rays()
        points = origin + 0.8 * directions.reshape(-1, 3)  # any depth along the ray
        pixels = camera.project(points)
        u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
        assert np.abs(pixels - np.stack([u, v], -1).reshape(-1, 2)).max() < 1e-4


@pytest.fixture(scope="module")
def posed_heads():
    """(head, views, vertices [C, V, 3], expr [C, E]): a head with the jaw closed to wide open (mouth
    interior and teeth) seen by 6 distorted 96 x 96 cameras of the rig (both rows and the sides)."""
    from capture_tools.synth.posing import SubjectPoser
    from capture_tools.synth.render import CameraView
    from tracking.head import build_default_head

    head = build_default_head(seed=0)
    cameras, _ = build_rig(np.random.default_rng(2), 16, 96, 96, 25.0)
    cameras = cameras[::3]
    rng = np.random.default_rng(0)
    views = []
    for camera in cameras:
        origin, directions = camera.pixel_rays()
        plate = rng.random((96, 96, 3)).astype(np.float32)
        views.append(CameraView(camera, origin, directions.astype(np.float32), plate))
    count = len(cameras)
    zeros = np.zeros((count, 3))
    jaw = np.zeros((count, 3))
    jaw[:, 0] = np.linspace(0.0, 0.3, count)
    _, neutral = SubjectPoser(head, np.zeros(head.num_shape))(
        np.zeros((1, head.num_expr)), zeros[:1], zeros[:1], zeros[:1], np.zeros((1, 6)), zeros[:1]
    )
    expr = rng.normal(0, 0.3, (count, head.num_expr))  # about half the wrinkle maps active per view
    vertices, _ = SubjectPoser(head, rng.normal(0, 0.5, head.num_shape))(
        expr,
        rng.normal(0, 0.05, (count, 3)),
        zeros,
        jaw,
        np.zeros((count, 6)),
        np.repeat(-neutral[0].mean(0, keepdims=True), count, 0),
    )
    return head, views, vertices, expr


def _compiled_or_skip():
    from capture_tools.synth._kernel import load_kernel

    if load_kernel() is None:
        pytest.skip("the synth C++ kernel cannot be built here (no compiler)")


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_rasterized_hits_equal_open3d_ray_casting(posed_heads, backend):
    """The session's z-buffer on the image planes (compiled kernel and numpy reference) finds the same
    first hits as open3d's ray caster over all faces (no culling), through distorted lenses."""
    from capture_tools.synth.render import HeadRenderer, raycast_hits

    if backend == "compiled":
        _compiled_or_skip()
    head, views, vertices, _ = posed_heads
    count = len(views)
    renderer = HeadRenderer(head, views, backend=backend)
    fast = renderer.hits(vertices)
    reference = raycast_hits(views, vertices, renderer.faces)
    fast_face = np.full(count * 96 * 96, -1)
    fast_face[fast.pixel] = fast.face
    ref_face = np.full(count * 96 * 96, -1)
    ref_face[reference.pixel] = reference.face
    assert len(reference.pixel) > 0.2 * len(ref_face)
    # coverage differs only where a ray grazes a silhouette edge within float rounding
    assert np.mean((fast_face >= 0) != (ref_face >= 0)) < 1e-3
    both = np.intersect1d(fast.pixel, reference.pixel)
    same = fast_face[both] == ref_face[both]
    assert same.mean() > 0.995  # the rest: rays through a shared edge or a depth tie
    fast_bary = fast.bary[np.searchsorted(fast.pixel, both)][same]
    ref_bary = reference.bary[np.searchsorted(reference.pixel, both)][same]
    # the reference casts in float32 against copies translated up to 8 * (views - 1) m from the origin:
    # a few micrometres of rounding, ~1e-3 of a 1.5 mm triangle
    error = np.abs(fast_bary - ref_bary).max(1)
    assert np.median(error) < 1e-3 and np.percentile(error, 99) < 1e-2


def test_compiled_kernel_equals_numpy_renderer(posed_heads):
    """The C++ kernel does the numpy renderer's float32 operations pixel by pixel: identical hits
    (faces and barycentrics), images equal up to the last bits of exp/log (the texture lookups, which
    replicate cv2.remap's fixed-point bilinear, are exact: one 8-bit step would show as > 1e-6)."""
    from capture_tools.synth.render import HeadRenderer

    _compiled_or_skip()
    head, views, vertices, expr = posed_heads
    tint = np.array([1.0, 0.9, 0.8])
    compiled = HeadRenderer(head, views, tint=tint, backend="compiled")
    reference = HeadRenderer(head, views, tint=tint, backend="numpy")
    fast, slow = compiled.hits(vertices), reference.hits(vertices)
    assert len(slow.pixel) > 0.2 * len(views) * 96 * 96
    np.testing.assert_array_equal(fast.pixel, slow.pixel)
    np.testing.assert_array_equal(fast.face, slow.face)
    np.testing.assert_array_equal(fast.bary, slow.bary)
    for expression in (expr, None):
        images, masks = compiled.render(vertices, expression)
        expected, expected_masks = reference.render(vertices, expression)
        np.testing.assert_array_equal(masks, expected_masks)
        assert np.abs(images - expected).max() < 1e-6
        assert np.array_equal(images[~masks], expected[~masks])  # the plates, untouched


def test_compiled_camera_response_equals_numpy():
    from capture_tools.synth.render import SensorNoise, camera_response

    _compiled_or_skip()
    cameras, _ = build_rig(np.random.default_rng(0), 3, 40, 30, 25.0)
    rng = np.random.default_rng(1)
    linear = (rng.random((30, 40, 3)) * 1.3 - 0.1).astype(np.float32)  # beyond both ends of the table
    for camera in cameras:
        noise = SensorNoise(np.random.default_rng(2), linear.shape).draw()
        for draws in (noise, None):
            np.testing.assert_array_equal(
                camera_response(linear, camera, draws, backend="compiled"),
                camera_response(linear, camera, draws, backend="numpy"),
            )
