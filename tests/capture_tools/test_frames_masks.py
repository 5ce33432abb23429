import cv2
import numpy as np

from capture_tools.calibrate import undistorted_size_K
from capture_tools.frames import Undistorter, num_sequence_frames, resample, sample_plan
from capture_tools.masks import plate_mask


def test_nearest_plan_picks_the_frame_closest_in_master_time():
    # camera frame i is at master time offset + i / fps
    plan = sample_plan(5, 25.0, offset_s=0.3 / 25, fps_camera=25.0, num_frames=10, interpolation="nearest")
    assert plan.lower.tolist() == [0, 1, 2, 3, 4]  # positions -0.3, 0.7, 1.7 ... -> nearest 0 (clamped), 1, 2
    plan = sample_plan(4, 25.0, offset_s=-0.6 / 25, fps_camera=25.0, num_frames=10, interpolation="nearest")
    assert plan.lower.tolist() == [1, 2, 3, 4]
    assert plan.clamped == 0


def test_linear_plan_blends_the_bracketing_frames():
    plan = sample_plan(3, 25.0, offset_s=-0.25 / 25, fps_camera=25.0, num_frames=10, interpolation="linear")
    assert plan.lower.tolist() == [0, 1, 2] and np.allclose(plan.weight_upper, 0.25)
    frames = np.stack([np.full((2, 2, 3), 40 * i, np.uint8) for i in range(10)])
    out = resample(frames, plan)
    assert out[1, 0, 0, 0] == 50  # 0.75 * 40 + 0.25 * 80


def test_sequence_length_stops_at_the_first_camera_or_audio_end():
    count = num_sequence_frames(
        25.0, 2.0, {"a": 0.01, "b": -0.02}, {"a": 50, "b": 50}, {"a": 25.0, "b": 25.0}
    )
    assert count == 50  # camera b ends at 1.98 s: frames 0..49 (t <= 1.96)
    assert num_sequence_frames(25.0, 1.0, {"a": 0.0}, {"a": 50}, {"a": 25.0}) == 25


def test_undistort_and_resize_match_the_scaled_intrinsics():
    K = np.array([[180.0, 0, 97.0], [0, 182.0, 94.0], [0, 0, 1]])
    dist = np.array([-0.2, 0.05, 0.001, -0.001, 0.0])
    width = height = 192
    point = np.array([[[0.31, -0.22]]])  # normalized camera coordinates of a scene point
    distorted = cv2.projectPoints(np.array([[*point[0, 0], 1.0]]), np.zeros(3), np.zeros(3), K, dist)[0][0, 0]
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(
        image,
        (int(round(distorted[0] * 16)), int(round(distorted[1] * 16))),
        3 * 16,
        (255, 255, 255),
        -1,
        cv2.LINE_AA,
        shift=4,
    )
    out = Undistorter(K, dist, width, height, (96, 96))(image)
    K_out = undistorted_size_K(K, width, height, 96, 96)
    expected = (K_out @ np.array([*point[0, 0], 1.0]))[:2]
    moments = cv2.moments(out[..., 0].astype(np.float32))
    centroid = np.array([moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]])
    assert np.linalg.norm(centroid - expected) < 0.3


def test_plate_mask_recovers_a_disc():
    rng = np.random.default_rng(0)
    plate = cv2.resize(
        rng.uniform(40, 200, (8, 8, 3)).astype(np.uint8), (128, 128), interpolation=cv2.INTER_CUBIC
    )
    frame = plate.copy()
    cv2.circle(frame, (60, 70), 30, (250, 240, 230), -1)
    truth = np.zeros((128, 128), np.uint8)
    cv2.circle(truth, (60, 70), 30, 1, -1)
    noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
    mask = plate_mask(noisy, plate)
    iou = (mask & (truth > 0)).sum() / (mask | (truth > 0)).sum()
    assert iou > 0.95


def test_landmark_wire_parse_equals_attribute_access():
    from mediapipe.framework.formats import landmark_pb2

    from tracking.landmarks import _normalized_xy

    rng = np.random.default_rng(5)
    landmarks = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in rng.uniform(-0.2, 1.2, (478, 3)):
        landmarks.landmark.add(x=x, y=y, z=z)
    expected = np.array([(lm.x, lm.y) for lm in landmarks.landmark], np.float32)
    assert np.array_equal(_normalized_xy(landmarks), expected)
    landmarks.landmark[7].visibility = 0.9  # another wire layout: the attribute path
    landmarks.landmark[9].x = 0.0
    expected = np.array([(lm.x, lm.y) for lm in landmarks.landmark], np.float32)
    assert np.array_equal(_normalized_xy(landmarks), expected)
