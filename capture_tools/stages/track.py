"""Track: multi-view FLAME tracking of every subject (:func:`tracking.fit.track_dataset`) on the dataset
so far; ``sequences/<seq>/flame.npz`` and the tracker's ``reports/tracking.json``. Its own stage record is
``reports/track_stage.json``."""

from __future__ import annotations

import dataclasses

from capture_tools.ingest import Context, IngestParams, Stage, need


def inputs(ctx: Context) -> dict:
    return {
        "landmarks": need(ctx, "landmarks"),
        "calibrate": need(ctx, "calibrate"),
        "frames": need(ctx, "frames"),
        "split_seed": ctx.params.split_seed,
    }


def run(ctx: Context) -> dict:
    """Track, and return the summary of the tracker's report that later keys see."""
    from tracking.fit import track_dataset

    tracking = ctx.params.tracking
    report = track_dataset(ctx.out) if tracking is None else track_dataset(ctx.out, config=tracking)
    return {
        "head_model": report["head_model"],
        "head_model_sha256": report["head_model_sha256"],
        "median_reprojection_px": {
            subject: entry["reprojection"]["median_px"]
            for subject, entry in sorted(report["subjects"].items())
            if "reprojection" in entry
        },
        "sequences": sorted(report["sequences"]),
    }


def params(p: IngestParams) -> dict:
    """The tracker's settings when ``--set tracking.KEY=VALUE`` gave some (else none: the old key)."""
    return {} if p.tracking is None else {"tracking": dataclasses.asdict(p.tracking)}


def outputs_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.sequence_dir(seq) / "flame.npz").is_file() for seq in result.get("sequences", []))


STAGE = Stage(
    "track",
    run,
    inputs,
    params,
    outputs_exist,
    report="track_stage",
    needs_dataset_files=True,
    outputs=("sequences/{sequence}/flame.npz", "reports/tracking.json", "reports/tracking/*"),
)
