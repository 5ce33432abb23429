"""``gsbench metrics PRED GT --audio A.wav``: score one rendered clip against its ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from benchmark.cli._options import lmd_detector_option, lse_boxes_option


def _registered(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if every one is a registered metric (checked when the command line is parsed)."""
    if not names:
        return names
    from benchmark.metrics import all_metrics

    unknown = [n for n in names if n not in all_metrics()]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)} (choose from {', '.join(all_metrics())})")
    return names


def _summary(result) -> str:
    d = result.details
    if result.name.startswith("lmd") and "failed_either" in d:
        return (
            f"{d['frames'] - d['failed_either']}/{d['frames']} frames scored "
            f"(no face: pred {d['failed_pred']}, gt {d['failed_gt']})"
        )
    if result.name.startswith("lse") and "offset_frames" in d:
        return f"offset {d['offset_frames']} frames, {d['windows']} windows, {d['weights_origin']} weights"
    if "frames_scored" in d:
        return f"{d['frames_scored']} frames"
    return ""


@click.command("metrics")
@click.argument("pred", type=click.Path(path_type=Path))
@click.argument("gt", type=click.Path(path_type=Path))
@click.option("--audio", type=click.Path(path_type=Path), help="16-bit WAV of the clip (LSE-D/LSE-C).")
@click.option("--mask-dir", type=click.Path(path_type=Path), help="Folder of per-frame head masks.")
@click.option(
    "--fps", type=float, default=None, help="Frame rate for frame folders (default: the video's, else 25)."
)
@click.option(
    "--syncnet",
    "syncnet_name",
    default="syncnet-v2",
    show_default=True,
    help="SyncNet weights for LSE: syncnet-v2 (official) or a syncnet-gsbench-<sha8> trained here.",
)
@click.option(
    "--metric",
    "selected",
    multiple=True,
    callback=lambda ctx, param, value: _registered(value),
    help="Compute only these (repeatable): a registered metric (psnr, ssim, lpips, lmd, lse_d, lse_c, and "
    "any metric module added to benchmark/metrics). Default: all.",
)
@click.option(
    "--weights-dir",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Look for weights here first (repeatable), then the default search paths.",
)
@lse_boxes_option
@lmd_detector_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def metrics(
    pred: Path,
    gt: Path,
    audio: Path | None,
    mask_dir: Path | None,
    fps: float | None,
    syncnet_name: str,
    selected: tuple[str, ...],
    weights_dir: tuple[Path, ...],
    lse_boxes: str,
    lmd_detector: str,
    as_json: bool,
) -> None:
    """Score PRED against GT (videos or frame folders) with every benchmark metric.

    Prints PSNR, SSIM, LPIPS, LMD (mouth, plus all-68 lmd_face), LSE-D and LSE-C with the id of the
    weights that produced each; a metric whose weights are missing is shown as missing with the reason.
    """
    import numpy as np

    from benchmark.metrics import compute_metrics
    from benchmark.weights import WeightRegistry, default_search_paths
    from gsbench.errors import InputError
    from gsbench.media import read_mask_folder, read_video_or_frames, read_wav
    from gsbench.progress import status

    with status("reading frames"):
        pred_frames, pred_fps = read_video_or_frames(pred)
        gt_frames, gt_fps = read_video_or_frames(gt)
    if len(pred_frames) != len(gt_frames):
        raise InputError(
            f"{pred} has {len(pred_frames)} frames, {gt} has {len(gt_frames)}",
            fix="render exactly the ground truth's frames",
        )
    clip_fps = fps or pred_fps or gt_fps or 25.0
    masks = read_mask_folder(mask_dir) if mask_dir is not None else None
    waveform = (
        read_wav(audio, resample=True, fix="pass the test sequence's audio.wav")
        if audio is not None
        else None
    )
    registry = WeightRegistry(list(weights_dir) + default_search_paths(), syncnet=syncnet_name)
    with status("computing metrics"):
        results = compute_metrics(
            pred_frames.astype(np.float32) / 255.0,
            gt_frames.astype(np.float32) / 255.0,
            masks=masks,
            audio=waveform,
            fps=clip_fps,
            weights=registry,
            metrics=selected or None,
            lmd_detector=lmd_detector,
            lse_boxes=lse_boxes,
        )
    if as_json:
        payload = {name: r.to_json() for name, r in results.items()}
        click.echo(json.dumps(payload, indent=2, default=float, allow_nan=True))
        return

    from rich.table import Table

    from gsbench.metric_table import metric_info
    from gsbench.progress import print_table

    table = Table(title=f"{pred} vs {gt} ({len(pred_frames)} frames, {clip_fps:g} fps)")
    for column in ("metric", "value", "better", "weights", "notes"):
        table.add_column(column)
    for name, r in results.items():
        if r.status == "ok":
            value = "inf" if math.isinf(r.value) else f"{r.value:.4f}"
        else:
            value = "[red]missing[/red]"
        better = metric_info(name).direction
        table.add_row(name, value, better, r.weight_id or "-", r.reason if r.status != "ok" else _summary(r))
    print_table(table)
