"""Backgrounds: the rig's clean plates into the dataset, undistorted and resized as the frames are."""

from __future__ import annotations

from capture_tools import frames as fr
from capture_tools.ingest import Context, Stage, clear_dir, need
from capture_tools.stages.common import background_plate_sha256, camera_intrinsics, read_plate, undistorter


def inputs(ctx: Context) -> dict:
    calibration = need(ctx, "calibrate")
    probe = need(ctx, "probe")
    return {
        "image_size": need(ctx, "frames")["image_size"],
        "cameras": camera_intrinsics(calibration),
        "background": background_plate_sha256(probe),
    }


def outputs_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.out / "backgrounds" / f"{c}.png").is_file() for c in result["cameras"])


def run(ctx: Context) -> dict:
    """The rig's clean plates into the dataset as ``backgrounds/<cam>.png``, undistorted and resized
    exactly as the frames are (same maps, same filters), so that the harness can composite a method's
    head over what the camera saw behind the head (benchmark.protocols)."""
    rig = ctx.rig
    calibration = ctx.results["calibrate"]["cameras"]
    size = tuple(ctx.results["frames"]["image_size"])
    folder = ctx.out / "backgrounds"
    clear_dir(folder)
    written, without = [], []
    for camera in rig.camera_ids:
        path = rig.background_plate(camera)
        if path is None:
            without.append(camera)
            continue
        plate = read_plate(camera, path, calibration[camera])
        fr.write_png(folder / f"{camera}.png", undistorter(calibration[camera], size)(plate))
        written.append(camera)
    return {"cameras": written, "without_plate": without}


STAGE = Stage("backgrounds", run, inputs, lambda p: {}, outputs_exist, outputs=("backgrounds/{camera}.png",))
