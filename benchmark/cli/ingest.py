"""``gsbench ingest SESSION -o DATASET``: sync, calibrate, frames, masks, landmarks, FLAME tracking."""

from __future__ import annotations

import dataclasses
import os

import click

from benchmark.cli._options import set_option
from gsbench.errors import InputError


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise InputError(
            f"--size {text!r} is not WIDTHxHEIGHT or SIZE (>= 16 px)", fix="e.g. --size 256 or 512x384"
        )
    return values[0], values[1]


@click.command()
@click.argument("session", nargs=-1, required=True, type=click.Path(file_okay=True, dir_okay=True))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option(
    "--stages",
    default=None,
    help="Stages to run: comma list and/or ranges, e.g. 'probe,sync', 'frames-', '-calibrate'.",
)
@click.option("--force", is_flag=True, help="Re-run the selected stages even when up to date.")
@click.option("--fps", type=float, default=None, help="Dataset frame rate (default: the rig's).")
@click.option("--size", default=None, help="Output image size WIDTHxHEIGHT or SIZE (default: the raw size).")
@click.option("--jpeg-quality", type=click.IntRange(50, 100), default=95, show_default=True)
@click.option(
    "--interpolation",
    type=click.Choice(["nearest", "linear"]),
    default="nearest",
    show_default=True,
    help="Frame placement on the master timeline.",
)
@click.option("--sync-min-confidence", type=float, default=None, help="GCC-PHAT confidence threshold (0..1).")
@click.option("--split-seed", type=int, default=0, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes for frames/masks/landmarks (default: CPU count, at most 4).",
)
@click.option(
    "--crop",
    type=click.IntRange(16, 4096),
    default=None,
    help="Video input: square face crop of this size (px) following the smoothed face track.",
)
@click.option(
    "--focal",
    type=float,
    default=None,
    help="Video input: focal length in px at the output size (default: estimated by tracking).",
)
@click.option(
    "--split",
    type=click.Choice(["last-eleventh", "sequences"]),
    default="last-eleventh",
    show_default=True,
    help="Video input: test = the last 1/11 of the frames (ER-NeRF/GeneFace), or seeded by sequence.",
)
@click.option("--no-track", is_flag=True, help="Video input: skip FLAME tracking.")
@set_option(
    "sync.min_confidence=0.3",
    "KEY is SECTION.FIELD of capture_tools.ingest.IngestParams (frames, sync, calibration, masks; tracking: "
    "the track stage's tracking.fit.TrackingConfig, as in gsbench track) or a top-level field (split_seed, "
    "workers); for video input a field of capture_tools.monocular.MonocularParams; applied after the other "
    "options",
)
def ingest(
    session: tuple[str, ...],
    out: str,
    stages: str | None,
    force: bool,
    fps: float | None,
    size: str | None,
    jpeg_quality: int,
    interpolation: str,
    sync_min_confidence: float | None,
    split_seed: int,
    workers: int | None,
    crop: int | None,
    focal: float | None,
    split: str,
    no_track: bool,
    overrides: tuple[str, ...],
) -> None:
    """Turn a raw rig SESSION into a dataset: probe, sync, calibrate, frames, masks, landmarks, track.

    SESSION may instead be one or more talking-head videos (or folders of videos), one subject each:
    a monocular dataset (25 fps, 16 kHz, sequences cut at pauses, head masks, background plate,
    landmarks, monocular FLAME tracking with the focal length estimated; capture_tools/monocular.py).
    """
    from capture_tools.monocular import is_video_input
    from gsbench.overrides import apply_overrides, as_flat_dict, parse_overrides

    parsed = parse_overrides(overrides)
    tracking = [override for override in parsed if override.key[0] == "tracking"]
    settings = as_flat_dict(parsed)
    if is_video_input(list(session)):
        from capture_tools.monocular import MonocularParams, ingest_videos

        if fps is not None and fps <= 0:
            raise InputError(f"--fps must be > 0, got {fps}")
        params = MonocularParams(
            fps=fps or 25.0,
            crop=crop,
            size=_parse_size(size),
            jpeg_quality=jpeg_quality,
            split=split,
            split_seed=split_seed,
            focal=focal,
            track=not no_track,
        )
        if tracking:
            raise InputError(
                f"--set {tracking[0].dotted}: video ingest tracks with the monocular defaults",
                fix=f"ingest with --no-track, then gsbench track {out} "
                + " ".join(f"--set {override.text}" for override in tracking),
            )
        params = apply_overrides(params, settings, what="ingest (video)")
        report = ingest_videos(list(session), out, params)
        tracking = report.get("tracking")
        click.echo(
            f"ingest: {out} ({len(report['subjects'])} video(s), {report['seconds']:.1f} s"
            + (f"; focal {tracking['focal_px']:.1f} px" if tracking else "")
            + ")"
        )
        return
    if len(session) > 1:
        raise InputError("a rig session is one folder", fix="pass one session folder, or video files")
    if crop is not None or focal is not None or no_track:
        raise InputError("--crop, --focal and --no-track apply to video input only")
    session = session[0]
    from capture_tools.frames import FrameParams
    from capture_tools.ingest import IngestParams, parse_stages
    from capture_tools.ingest import ingest as run_ingest
    from capture_tools.sync import SyncParams

    if fps is not None and fps <= 0:
        raise InputError(f"--fps must be > 0, got {fps}")
    sync = SyncParams()
    if sync_min_confidence is not None:
        sync = dataclasses.replace(sync, min_confidence=sync_min_confidence)
    params = IngestParams(
        frames=FrameParams(
            fps=fps, size=_parse_size(size), jpeg_quality=jpeg_quality, interpolation=interpolation
        ),
        sync=sync,
        split_seed=split_seed,
        workers=workers if workers is not None else min(4, os.cpu_count() or 1),
    )
    if tracking:
        from tracking.fit import TrackingConfig

        params = dataclasses.replace(params, tracking=TrackingConfig())
    params = apply_overrides(params, settings, what="ingest")
    summary = run_ingest(session, out, params, stages=parse_stages(stages), force=force)
    timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.seconds.items())
    click.echo(
        f"ingest: {summary.out} (ran: {', '.join(summary.ran) or 'nothing'}"
        f"{'; ' + timing if timing else ''}; up to date: {', '.join(summary.skipped) or 'none'})"
    )
