"""Synchronize the cameras of one recording to its clock: a take's cameras to the master audio
(GCC-PHAT of camera-mic tracks, visual events, or a hardware trigger), a calibration take's cameras to
the frontal camera. The signal processing is in :mod:`capture_tools.sync`; this module decodes the
files rig.yaml names and applies it per camera."""

from __future__ import annotations

import numpy as np

from capture_tools import sync as sy
from capture_tools.rig import RigSpec
from gsbench import media
from gsbench.errors import StageError


def sync_take(
    rig: RigSpec, params: sy.SyncParams, take_id: str, videos: dict[str, dict], keep_correlation: bool = False
) -> tuple[dict, dict]:
    """One take's camera offsets to its master audio (``offset_s``: master time of the camera's frame 0):
    GCC-PHAT of every camera-mic track against the master, visual events for the cameras without one,
    or the hardware trigger (rig.yaml ``sync: hardware``). ``videos``: the probe entry of each camera.

    Returns ``(take result, {camera: (lags_s, correlation)})``, the second filled only when
    ``keep_correlation`` (the sync plot shows the first take's)."""
    fs = 16000
    master = media.read_audio(rig.take_audio(take_id), fs)
    if rig.sync_mode == "hardware":
        return hardware_sync(rig, params, videos, take_id, master, fs), {}
    with_audio = [c for c in rig.camera_ids if videos[c]["has_audio"]]
    no_audio = [c for c in rig.camera_ids if not videos[c]["has_audio"]]
    tracks = media.read_audio_many([rig.take_video(take_id, c) for c in with_audio], fs)
    master_spectra: dict[int, np.ndarray] = {}
    cameras: dict[str, dict] = {}
    plot_data = {}
    for camera, track_audio in zip(with_audio, tracks, strict=True):
        path = rig.take_video(take_id, camera)
        result = sy.gcc_phat(track_audio, master, fs, params, master_spectra)
        sy.require_confidence(result, params, f"camera {camera}, take {take_id}", str(path))
        cameras[camera] = {
            "offset_s": result.offset_s,
            "offset_frames": result.offset_s * videos[camera]["fps"],
            "method": "audio",
            "confidence": result.confidence,
            "peak": result.peak,
        }
        if keep_correlation:
            plot_data[camera] = (result.lags_s, result.correlation)
    if no_audio:
        visual_sync(rig, params, videos, take_id, no_audio, cameras, master, fs)
    take_result = {
        "audio_duration_s": len(master) / fs,
        "cameras": {c: cameras[c] for c in rig.camera_ids},
    }
    return take_result, plot_data


def visual_event(
    rig: RigSpec, params: sy.SyncParams, info: dict, take_id: str, camera: str
) -> sy.VisualEvent | None:
    """The brightness step (a flash) in one camera's video of a take (``info``: its probe entry)."""
    frames = media.read_frames(rig.take_video(take_id, camera), info["width"], info["height"])
    return sy.find_visual_event(sy.frame_brightness(frames), info["fps"], params)


def hardware_sync(
    rig: RigSpec, params: sy.SyncParams, videos: dict[str, dict], take_id: str, master: np.ndarray, fs: int
) -> dict:
    """``sync: hardware``: every camera's frame 0 is one instant; the master audio's offset to it is
    rig.yaml's ``audio_offset_s``, else a clap: the master's strongest onset against the median time
    of the brightness step (a flash at the clap) over the cameras that show one."""
    if rig.audio_offset_s is not None:
        offset, method, extra = rig.audio_offset_s, "hardware (given offset)", {}
    else:
        times = []
        for camera in rig.camera_ids:
            found = visual_event(rig, params, videos[camera], take_id, camera)
            if found is not None:
                times.append(found.time_s)
        if not times:
            raise StageError(
                f"take {take_id}: sync: hardware without audio_offset_s needs a flash at the clap "
                "(a brightness step) in the cameras; none found",
                path=rig.take_audio(take_id),
                fix="set sync.audio_offset_s in rig.yaml (master time of the cameras' frame 0)",
            )
        offset = sy.master_onset_s(master, fs) - float(np.median(times))
        method = "hardware (clap)"
        extra = {"event_cameras": len(times), "event_spread_s": float(np.ptp(times))}
    cameras = {
        c: {
            "offset_s": offset,
            "offset_frames": offset * videos[c]["fps"],
            "method": method,
            "confidence": 1.0,
            **extra,
        }
        for c in rig.camera_ids
    }
    return {"audio_duration_s": len(master) / fs, "cameras": cameras}


def visual_sync(
    rig: RigSpec,
    params: sy.SyncParams,
    videos: dict[str, dict],
    take_id: str,
    cameras_without_audio: list[str],
    cameras: dict[str, dict],
    master: np.ndarray,
    fs: int,
) -> None:
    """Offsets of ``cameras_without_audio`` (added to ``cameras``) from a brightness step (a flash) seen
    by the camera, against the same event in up to three audio-synced cameras (their median master
    time), else against the master audio's strongest onset."""

    def event(camera: str) -> sy.VisualEvent | None:
        return visual_event(rig, params, videos[camera], take_id, camera)

    references = []
    for camera in [c for c in rig.camera_ids if c in cameras][:3]:
        found = event(camera)
        if found is not None:
            references.append(found.time_s + cameras[camera]["offset_s"])
    master_event = float(np.median(references)) if references else sy.master_onset_s(master, fs)
    for camera in cameras_without_audio:
        found = event(camera)
        path = rig.take_video(take_id, camera)
        if found is None:
            raise StageError(
                f"camera {camera}, take {take_id}: no camera-mic track and no visual event "
                "(flash or brightness step) to synchronize on",
                path=path,
                fix="record the camera's audio, or fire a flash visible to all cameras during the take",
            )
        offset = master_event - found.time_s
        cameras[camera] = {
            "offset_s": offset,
            "offset_frames": offset * videos[camera]["fps"],
            "method": "visual",
            "confidence": float(min(1.0, found.snr / (4 * params.min_event_snr))),
            "event_step": found.step,
            "event_reference": "audio-synced cameras" if references else "master audio onset",
        }


def calibration_offsets(
    rig: RigSpec, videos: dict[str, dict], params: sy.SyncParams
) -> tuple[dict[str, float], str]:
    """The calibration take's clock is the frontal camera's: the other cameras are placed on it by
    GCC-PHAT of their mic tracks (claps) when every camera has one, else taken as simultaneous.
    ``videos``: the probe entry of each ``calibration/<cam>``. Returns ``(offset_s per camera, method)``."""
    fs = 16000
    offsets = {c: 0.0 for c in rig.camera_ids}
    if not all(videos[f"calibration/{c}"]["has_audio"] for c in rig.camera_ids):
        return offsets, "assumed simultaneous (no mic tracks)"
    # one ffmpeg run decodes every mic track; the frontal track's spectrum is computed once
    tracks = media.read_audio_many([rig.calibration_video(c) for c in rig.camera_ids], fs)
    audio = dict(zip(rig.camera_ids, tracks, strict=True))
    reference_spectra: dict[int, np.ndarray] = {}
    for camera in rig.camera_ids:
        if camera == rig.frontal_camera:
            continue
        result = sy.gcc_phat(audio[camera], audio[rig.frontal_camera], fs, params, reference_spectra)
        sy.require_confidence(
            result, params, f"camera {camera}, calibration take", str(rig.calibration_video(camera))
        )
        offsets[camera] = result.offset_s
    return offsets, "GCC-PHAT of the camera-mic tracks against the frontal camera's"
