"""The ingest reports' figures: ``reports/sync.png`` and ``reports/calibration.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from capture_tools.calibrate import CameraCalibration


def plot_sync(path: Path, cameras: list[str], first_take: str, plot_data: dict, takes: dict) -> None:
    """``sync.png``: two panels (few axes keep matplotlib's tick layout cheap): the GCC-PHAT correlation
    around the peak of every camera of the first take, stacked and scaled to its peak, and the offsets
    per take."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsbench.io import atomic_path

    figure, (peaks, offsets) = plt.subplots(1, 2, figsize=(11, 0.3 * len(cameras) + 2.5))
    for row, camera in enumerate(cameras):
        if camera in plot_data:
            lags, corr = plot_data[camera]
            corr = np.asarray(corr, np.float64)
            scale = float(np.abs(corr).max()) or 1.0
            peaks.plot(np.asarray(lags) * 1000, row - 0.8 * corr / scale, lw=0.8)  # y axis runs down
    peaks.set_yticks(range(len(cameras)), cameras, fontsize=7)
    peaks.invert_yaxis()
    peaks.set_xlabel("lag (ms)", fontsize=8)
    peaks.set_title(f"GCC-PHAT correlation around the peak (take {first_take})", fontsize=9)
    for take_id, take in takes.items():
        offsets.plot(
            range(len(cameras)),
            [take["cameras"][c]["offset_frames"] for c in cameras],
            "o-",
            ms=2,
            lw=0.5,
            label=take_id,
        )
    offsets.set_xticks(range(len(cameras)), cameras, fontsize=6, rotation=90)
    offsets.set_ylabel("offset (frames)", fontsize=8)
    offsets.set_title("offset per camera, one line per take", fontsize=9)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.92, wspace=0.2)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def plot_calibration(path: Path, calibrations: dict[str, CameraCalibration]) -> None:
    """``calibration.png``: the rig in the world frame and each camera's reprojection RMS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsbench.io import atomic_path

    figure = plt.figure(figsize=(11, 4.5))
    axis = figure.add_subplot(1, 2, 1, projection="3d")
    for camera, c in calibrations.items():
        cam_to_world = np.linalg.inv(c.world_to_cam)
        centre = cam_to_world[:3, 3]
        forward = cam_to_world[:3, 2] * 0.15
        axis.scatter(*centre, s=8)
        axis.plot(*np.stack([centre, centre + forward]).T, lw=1)
        axis.text(*centre, camera, fontsize=6)
    axis.scatter(0, 0, 0, marker="x", c="k")
    axis.set_xlabel("x (m)")
    axis.set_ylabel("y (m)")
    axis.set_zlabel("z (m)")
    axis.set_title("rig (world frame: y up, frontal camera on +z)", fontsize=9)
    bars = figure.add_subplot(1, 2, 2)
    names = list(calibrations)
    bars.bar(range(len(names)), [calibrations[n].rms_px for n in names])
    bars.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    bars.set_ylabel("reprojection RMS (px)")
    bars.set_title("per-camera reprojection error after bundle adjustment", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
