"""The board says how its numbers were made (issue 20.7): SSIM convention, LMD detector and resolution,
LSE face crop and averaging (frame-weighted and mean of per-video scores, both offered, each named); the
plot never puts our SyncNet's LSE on the axis of the papers' official LSE."""

from __future__ import annotations

from benchmark.results import mean_metrics
from gsbench.io import write_json
from leaderboards.publish import COLUMNS, load_reference, plotted_reference, publish, render_markdown

SSIM_DETAILS = {
    "window": "gaussian 11x11 sigma 1.5",
    "border": "valid (= skimage mean)",
    "channels": "mean of the R, G, B SSIM maps",
}
LMD_DETAILS = {"detector": "mediapipe-facemesh-478", "resolution": "64x48", "units": "pixels"}
LSE_DETAILS = {"face_crop": "MediaPipe landmark box, syncnet_python crop rule (not S3FD)"}


def _entry(value: float, details: dict, direction: str = "lower") -> dict:
    return {"value": value, "status": "ok", "reason": "", "weight_id": None, "direction": direction,
            "details": dict(details)}  # fmt: skip


def test_lse_frame_weighted_and_per_video_means():
    per_sequence = {
        "short": {"lse_c": _entry(2.0, LSE_DETAILS, "higher"), "lmd": _entry(1.0, LMD_DETAILS)},
        "long": {"lse_c": _entry(6.0, LSE_DETAILS, "higher"), "lmd": _entry(3.0, LMD_DETAILS)},
    }
    means = mean_metrics(per_sequence, {"short": 10, "long": 30})
    assert means["lse_c"]["value"] == (2.0 * 10 + 6.0 * 30) / 40  # 5.0: every frame counts once
    assert means["lse_c_video"]["value"] == (2.0 + 6.0) / 2  # 4.0: every video counts once
    assert means["lse_c"]["details"]["weighting"] == "frames"
    assert means["lse_c_video"]["details"]["weighting"] == "videos"
    assert means["lse_c_video"]["direction"] == "higher"
    assert means["lmd"]["details"]["detector"] == "mediapipe-facemesh-478"  # conventions kept in means
    assert means["lmd"]["details"]["resolution"] == "64x48"
    assert "lmd_video" not in means
    per_sequence["long"]["lse_c"] = {**per_sequence["long"]["lse_c"], "status": "missing", "value": None}
    means = mean_metrics(per_sequence, {"short": 10, "long": 30})
    assert means["lse_c_video"]["status"] == "missing" and means["lse_c_video"]["value"] is None


def _results(runs, method: str, subject: str, lse_c: float, syncnet: str = "syncnet-v2") -> None:
    metrics = {
        "psnr": _entry(25.0, {}, "higher"),
        "ssim": _entry(0.9, SSIM_DETAILS, "higher"),
        "lmd": _entry(2.0, LMD_DETAILS),
        "lse_c": _entry(lse_c, LSE_DETAILS, "higher"),
        "lse_d": _entry(8.0, LSE_DETAILS),
        "lse_c_video": _entry(lse_c + 1, LSE_DETAILS, "higher"),
    }
    write_json(
        runs / "ds" / "mono-front" / method / subject / "results.json",
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": "ok",
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": ["a"]},
            "protocol": "mono-front",
            "method": method,
            "subject": subject,
            "method_info": {"oracle": False},
            "metrics": metrics,
            "weights": {"lse_c": f"{syncnet}:0123", "lse_d": f"{syncnet}:0123"},
        },
    )


def test_board_states_its_conventions(tmp_path):
    runs = tmp_path / "runs"
    _results(runs, "m", "a", 5.0)
    (board,) = publish(runs, tmp_path / "out", plot=False)
    assert "lse_c_video ↑" in COLUMNS and "conventions" in COLUMNS
    row = next(r for r in board.rows if r["row_type"] == "subject")
    assert row["lse_c_video ↑"] == "6.0000" and row["lse_c ↑"] == "5.0000"
    assert row["conventions"] == (
        "ssim=gaussian 11x11 sigma 1.5, mean of the R, G, B SSIM maps, valid (= skimage mean); "
        "lmd=mediapipe-facemesh-478 @ 64x48; lse=MediaPipe landmark box, syncnet_python crop rule (not S3FD)"
    )
    text = render_markdown(board, reference=False)
    assert "Gaussian window 11x11, sigma 1.5" in text and "valid region" in text
    assert "- This board: lmd=mediapipe-facemesh-478 @ 64x48" in text
    assert "`lse_d`/`lse_c` are frame-weighted" in text and "mean of per-video scores" in text


def test_plot_keeps_our_syncnet_off_the_papers_lse_axis():
    assert load_reference("mono-front")  # the papers report LSE-C for mono-front-like settings
    official = [{"weight_ids": "lse_c=syncnet-v2:0123"}]
    ours = [{"weight_ids": "lse_c=syncnet-gsbench-76c3e1d7:76c3"}]
    shown = plotted_reference("mono-front", official, "lse_c", "psnr")
    assert shown and all(r["lse_c ↑"] and r["psnr ↑"] for r in shown)
    assert plotted_reference("mono-front", ours, "lse_c", "psnr") is None
    assert plotted_reference("mono-front", ours, "lmd", "psnr") is not None  # LMD has no SyncNet in it
