"""Sync: every camera's offset to its take's master audio (:func:`capture_tools.take_sync.sync_take`),
one take per job; ``reports/sync.json`` + ``sync.png``."""

from __future__ import annotations

import dataclasses

from capture_tools.ingest import Context, Stage, need, run_jobs
from capture_tools.plots import plot_sync
from capture_tools.stages.common import rig_summary
from capture_tools.take_sync import sync_take


def inputs(ctx: Context) -> dict:
    probe = need(ctx, "probe")
    inputs = {
        "rig": {k: v for k, v in rig_summary(ctx).items() if k not in ("calibration", "background")},
        "videos": {k: v for k, v in probe["videos"].items() if k.startswith("takes/")},
        "audio": probe["audio"],
    }
    if ctx.rig.sync_mode != "audio":  # only then: earlier datasets keep their keys
        inputs["hardware"] = {"mode": ctx.rig.sync_mode, "audio_offset_s": ctx.rig.audio_offset_s}
    return inputs


def run(ctx: Context) -> dict:
    rig = ctx.rig
    videos = ctx.results["probe"]["videos"]
    jobs = [
        {
            "rig": rig,
            "params": ctx.params.sync,
            "take": take.id,
            "videos": {c: videos[f"takes/{take.id}/{c}"] for c in rig.camera_ids},
            "plot": take.id == rig.takes[0].id,
        }
        for take in rig.takes
    ]
    out: dict[str, dict] = {}
    plot_data = {}
    for take_id, take_result, take_plot in run_jobs(ctx, _sync_job, jobs, "sync: takes"):
        out[take_id] = take_result
        plot_data.update(take_plot)
    out = {take.id: out[take.id] for take in rig.takes}
    plot_sync(ctx.reports / "sync.png", rig.camera_ids, rig.takes[0].id, plot_data, out)
    return {"takes": out, "convention": "offset_s = master time of the camera's frame 0"}


def _sync_job(job: dict) -> tuple[str, dict, dict]:
    """One take (a worker process's job)."""
    result, correlation = sync_take(job["rig"], job["params"], job["take"], job["videos"], job["plot"])
    return job["take"], result, correlation


STAGE = Stage("sync", run, inputs, lambda p: dataclasses.asdict(p.sync), outputs=("reports/sync.png",))
