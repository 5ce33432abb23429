"""``results.json``: one file per job, the only input of the leaderboards.

Schema ``gsbench.results`` version 1 (keys in order)::

    schema, schema_version
    status            "ok" | "failed"
    error             null | one line (the exception); the traceback is in log.txt
    dataset           {name, root, hash, subjects}
    protocol, method, subject, budget, seed
    method_info       {oracle, paper, protocols, pretrained_networks, trained_as, ...method.info()}
    config_hash       sha256 of config.json's canonical JSON (the resolved job + method config)
    compositing       benchmark.protocols.compositing_record: {version, mode, track, rule, formulas,
                      plate_sha256}; each sequence also names its rule
    metrics           {name: MetricEntry} frame-weighted mean over the test sequences
    sequences         {sequence: {num_frames, driven_by, predictions_sha256, video, comparison,
                                  metrics: {name: MetricEntry}}}
    weights           {metric name: weight id} of every pretrained network that produced a metric
    timing            {train_seconds, render_seconds, frames_rendered, render_fps, checkpoint_from,
                       audio_features: {seconds, computed, read} (the dataset's feature cache)}
    num_gaussians     int | null
    device            the rasterizer backend the renders ran on: "cuda:0 (gsplat 1.5.3)", "cpu (gsbench C++)"
                      or "cpu (gsbench torch)" (avatars.render.backend.backend_label)
    gsbench_version, git_commit, python, libraries {name: version}, platform, finished_at
    train_stats       the method's TrainStats (iterations, num_gaussians, extra)

``MetricEntry`` = ``{value: float | null, status: "ok" | "missing" | "skipped", reason, weight_id,
direction: "higher" | "lower", details}``. ``missing``: a weight file or dependency was absent (the
reason says which); ``skipped``: the protocol has no ground truth for it (cross-id image metrics).
The mean of a metric is ``ok`` only when it is ``ok`` on every sequence; it is weighted by each
sequence's number of frames, i.e. the mean over all test frames. LSE-D and LSE-C are also given as the
plain mean of the per-video scores (``lse_d_video``, ``lse_c_video``: Wav2Lip's / syncnet_python's
averaging, every test video counts once). Means keep the definition details all sequences share
(SSIM window and border, LMD detector and resolution, LSE face crop).
"""

from __future__ import annotations

import json
from typing import Any

from gsbench.metric_table import METRICS, MetricInfo, metric_info  # noqa: F401 (re-exported)

SCHEMA = "gsbench.results"
SCHEMA_VERSION = 1


def metric_entry(result: Any) -> dict[str, Any]:
    """A ``benchmark.metrics.MetricResult`` (or an equivalent dict) as a results.json entry."""
    if isinstance(result, dict):
        get = result.get
    else:

        def get(key, default=None):
            return getattr(result, key, default)

    name = get("name")
    value = get("value")
    return {
        "value": None if value is None else float(value),
        "status": get("status", "ok"),
        "reason": get("reason", "") or "",
        "weight_id": get("weight_id"),
        "direction": metric_info(name).direction,
        "details": _jsonable(get("details", {}) or {}),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def mean_metrics(per_sequence: dict[str, dict[str, dict]], frames: dict[str, int]) -> dict[str, dict]:
    """Frame-weighted mean of each metric over sequences; not ``ok`` if any sequence is not."""
    names = list(dict.fromkeys(n for metrics in per_sequence.values() for n in metrics))
    means = {}
    for name in names:
        entries = {seq: metrics.get(name) for seq, metrics in per_sequence.items()}
        bad = {seq: e for seq, e in entries.items() if e is None or e["status"] != "ok" or e["value"] is None}
        weight_ids = sorted({e["weight_id"] for e in entries.values() if e and e.get("weight_id")})
        direction = metric_info(name).direction
        if bad:
            seq, entry = next(iter(bad.items()))
            status = entry["status"] if entry else "missing"
            reason = entry["reason"] if entry else "not computed"
            reasons = {(e["reason"] if e else "not computed") for e in bad.values()}
            means[name] = {
                "value": None,
                "status": status,
                "direction": direction,
                "reason": reason
                if len(bad) == len(entries) and len(reasons) == 1
                else f"{len(bad)}/{len(entries)} sequences not ok (e.g. {seq}: {reason})",
                "weight_id": ",".join(weight_ids) or None,
                "details": {},
            }
            if name in PER_VIDEO:
                means[PER_VIDEO[name]] = dict(means[name])
            continue
        total = sum(frames[seq] for seq in entries)
        value = sum(entries[seq]["value"] * frames[seq] for seq in entries) / total
        means[name] = {
            "value": value,
            "status": "ok",
            "reason": "",
            "direction": direction,
            "weight_id": ",".join(weight_ids) or None,
            "details": {"weighting": "frames", "num_frames": total, **_shared_conventions(entries.values())},
        }
        if name in PER_VIDEO:
            # Wav2Lip's and syncnet_python's averaging: every test video counts once, whatever its length
            means[PER_VIDEO[name]] = {
                **means[name],
                "value": sum(e["value"] for e in entries.values()) / len(entries),
                "details": {**means[name]["details"], "weighting": "videos", "num_videos": len(entries)},
            }
    return means


PER_VIDEO = {"lse_d": "lse_d_video", "lse_c": "lse_c_video"}  # frame-weighted name -> per-video mean
CONVENTION_KEYS = ("window", "border", "channels", "detector", "subset", "units", "resolution", "face_crop")


def _shared_conventions(entries) -> dict[str, Any]:
    """The definition details (SSIM window, LMD detector and resolution, LSE face crop) every sequence
    shares, kept in the mean so that a results.json row says how its numbers were made."""
    entries = list(entries)
    shared = {}
    for key in CONVENTION_KEYS:
        values = {json.dumps(e.get("details", {}).get(key)) for e in entries}
        if len(values) == 1 and entries[0].get("details", {}).get(key) is not None:
            shared[key] = entries[0]["details"][key]
    return shared
