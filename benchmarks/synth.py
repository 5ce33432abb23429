"""Targets of ``gsbench synth`` (issue 3), printed as figures:

1. generation time of a preset (goal for ``default``: <= 3 min on a 2-core machine);
2. MediaPipe FaceMesh detection rate on the cameras within +-45 deg of the frontal one (goal >= 95 %);
3. audio-video agreement in the frontal camera: lip closures seen by FaceMesh in the frontal mp4
   (inner-lip gap / mouth width below a threshold) vs the bilabial closures (m b p) of the phoneme
   timeline, within one frame: precision and recall (:func:`lip_closure_scores`).

Usage: ``python benchmarks/synth.py [--preset default] [--out DIR] [--skip-generate] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# run as a script, this folder is sys.path[0] and its tracking.py would shadow the tracking package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np

from capture_tools.synth import generate_session  # noqa: E402
from gsbench.media import read_video  # noqa: E402

# MediaPipe FaceMesh indices: inner lip midpoints and the mouth corners
_UPPER_INNER, _LOWER_INNER, _LEFT_CORNER, _RIGHT_CORNER = 13, 14, 61, 291


def _facemesh_track(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(detected [T] bool, inner-lip gap / mouth width [T], NaN where undetected) in video mode."""
    import mediapipe as mp

    detected = np.zeros(len(frames), bool)
    gap = np.full(len(frames), np.nan)
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5
    ) as mesh:
        for k, frame in enumerate(frames):
            result = mesh.process(frame)
            if not result.multi_face_landmarks:
                continue
            detected[k] = True
            points = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark])
            width = np.linalg.norm(points[_LEFT_CORNER] - points[_RIGHT_CORNER])
            gap[k] = np.linalg.norm(points[_UPPER_INNER] - points[_LOWER_INNER]) / max(width, 1e-6)
    return detected, gap


def lip_closure_scores(
    closed: np.ndarray,  # [T] bool: the detector sees closed lips in frame k
    times: np.ndarray,  # [T] master time of each frame (s)
    phonemes: dict,  # ground_truth/takes/<take>/phonemes.json
    fps: float,
) -> dict[str, float | int | dict[str, int]]:
    """Closed-lip frames vs the bilabial closures of the phoneme timeline, within one frame.

    true positive frame: a closed frame during speech (not in a silence) within one frame of a
    bilabial closure; precision = true positives / closed frames during speech. A bilabial closure is
    recalled when some frame within one frame of it is closed; recall = recalled / closures. f/v
    (lower lip against the upper teeth, lips apart) are not closures: a closed frame there counts as a
    false positive, and the false positives are also tallied by the phoneme under them.
    """
    windows = [(a - 1.0 / fps, b + 1.0 / fps) for a, b in phonemes["bilabial_closures_s"]]
    near = np.zeros(len(times), bool)
    closures, recalled = 0, 0
    for a, b in windows:
        inside = (times >= a) & (times <= b)
        if not np.any(inside):  # outside the video
            continue
        near |= inside
        closures += 1
        recalled += bool(np.any(closed & inside))
    speech = np.zeros(len(times), bool)
    under = np.full(len(times), "", object)
    for p in phonemes["phonemes"]:
        during = (times >= p["start_s"]) & (times < p["end_s"])
        under[during] = p["phoneme"]
        if p["kind"] != "silence":
            speech |= during
    false_by_phoneme: dict[str, int] = {}
    for symbol in under[closed & speech & ~near]:
        false_by_phoneme[symbol] = false_by_phoneme.get(symbol, 0) + 1
    return {
        "closed_speech_frames": int(np.sum(closed & speech)),
        "true_positive_frames": int(np.sum(closed & speech & near)),
        "closures": closures,
        "recalled": recalled,
        "false_by_phoneme": false_by_phoneme,
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (worker processes, ffmpeg):
    what the generation costs, independent of the machine's load (unlike its wall time)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _angle_to_frontal(cameras: dict, camera_id: str, frontal: str) -> float:
    def centre(c):
        world_to_cam = np.asarray(c["world_to_cam"])
        return -world_to_cam[:3, :3].T @ world_to_cam[:3, 3]

    a, b = centre(cameras[camera_id]), centre(cameras[frontal])
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="session folder (default: a temporary one)")
    parser.add_argument("--skip-generate", action="store_true", help="measure an existing session in --out")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--closure-threshold",
        type=float,
        default=0.06,
        help="inner-lip gap / mouth width below which the lips count as closed",
    )
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="gsbench-synth-bench-")) / "session"
    if not args.skip_generate:
        load = os.getloadavg()[0]
        cpu_started = _cpu_seconds()
        started = time.perf_counter()
        summary = generate_session(out, preset=args.preset, seed=args.seed, workers=args.workers)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_started
        print(
            f"generation ({args.preset}, seed {args.seed}, {len(summary.takes)} takes x "
            f"{len(summary.cameras)} cameras, {summary.num_frames} camera frames): {seconds:.1f} s "
            f"(goal for default: <= 180 s); {cpu:.1f} CPU-s in all processes (workers, ffmpeg), "
            f"load average {load:.1f} at the start on {os.cpu_count()} CPUs"
        )

    gt = out / "ground_truth"
    session = json.loads((gt / "session.json").read_text())
    cameras = json.loads((gt / "cameras.json").read_text())
    frontal = session["frontal_camera"]
    fps = session["preset"]["fps"]
    near = [c for c in cameras if _angle_to_frontal(cameras, c, frontal) <= 45.0]

    detections, total = 0, 0
    per_camera: dict[str, list[int]] = {c: [0, 0] for c in near}
    lips = {"closed_speech_frames": 0, "true_positive_frames": 0, "closures": 0, "recalled": 0}
    false_by_phoneme: dict[str, int] = {}
    for take in session["takes"]:
        phonemes = json.loads((gt / "takes" / take / "phonemes.json").read_text())
        for camera_id in near:
            frames = read_video(out / "takes" / take / f"{camera_id}.mp4")[0]
            detected, gap = _facemesh_track(frames)
            detections += int(detected.sum())
            total += len(frames)
            per_camera[camera_id][0] += int(detected.sum())
            per_camera[camera_id][1] += len(frames)
            if camera_id != frontal:
                continue
            times = np.arange(len(frames)) / fps + cameras[camera_id]["time_offset_s"]
            closed = detected & (gap < args.closure_threshold)
            scores = lip_closure_scores(closed, times, phonemes, fps)
            for key in lips:
                lips[key] += scores[key]
            for symbol, count in scores["false_by_phoneme"].items():
                false_by_phoneme[symbol] = false_by_phoneme.get(symbol, 0) + count

    rate = detections / max(total, 1)
    print(
        f"FaceMesh detection rate, {len(near)} cameras within 45 deg of {frontal}: {100 * rate:.1f} % "
        f"({detections}/{total} frames; goal >= 95 %)"
    )
    for camera_id, (hit, count) in per_camera.items():
        print(
            f"  {camera_id} ({cameras[camera_id]['azimuth_deg']:+.0f} az, "
            f"{cameras[camera_id]['elevation_deg']:+.0f} el): {100 * hit / max(count, 1):.1f} %"
        )
    precision = lips["true_positive_frames"] / max(lips["closed_speech_frames"], 1)
    recall = lips["recalled"] / max(lips["closures"], 1)
    print(
        f"lip closures, frontal {frontal} video (FaceMesh inner-lip gap / mouth width < "
        f"{args.closure_threshold}) vs bilabial closures (m b p) of the phoneme timeline, within one frame: "
        f"precision {100 * precision:.1f} % ({lips['true_positive_frames']}/{lips['closed_speech_frames']} "
        f"closed frames during speech), recall {100 * recall:.1f} % ({lips['recalled']}/{lips['closures']} "
        f"closures)"
    )
    worst = sorted(false_by_phoneme.items(), key=lambda item: -item[1])
    print(
        "  closed frames away from a bilabial, by phoneme: "
        + (", ".join(f"{s} {n}" for s, n in worst) or "none")
    )


if __name__ == "__main__":
    main()
