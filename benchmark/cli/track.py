"""``gsbench track``: multi-view FLAME tracking of an ingested dataset (also run by ``gsbench ingest``)."""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.cli._options import set_option


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--head-model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="FLAME .pkl/.npz or a gsbench-head .npz (default: the built-in gsbench-head).",
)
@click.option(
    "--landmark-embedding",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="68-point landmark embedding for --head-model (default: looked for beside it).",
)
@click.option("--subject", "subjects", multiple=True, help="Track only these subjects (repeatable).")
@click.option("--landmarks-only", is_flag=True, help="Stop after stage 1 (68 iBUG landmarks).")
@click.option("--force", is_flag=True, help="Refit even when the inputs are unchanged.")
@click.option("--no-plots", is_flag=True, help="Skip the overlay and error PNGs.")
@set_option(
    "dense_iterations=200",
    "KEY is a field of tracking.fit.TrackingConfig (also written tracking.KEY, as in gsbench ingest)",
)
@click.option(
    "--focal",
    type=float,
    default=None,
    help="One-camera (video) dataset: focal length in px (default: estimated).",
)
def track(
    dataset: Path,
    head_model: Path | None,
    landmark_embedding: Path | None,
    subjects: tuple[str, ...],
    landmarks_only: bool,
    force: bool,
    no_plots: bool,
    overrides: tuple[str, ...],
    focal: float | None,
) -> None:
    """Fit FLAME to DATASET's landmarks: writes sequences/*/flame.npz and reports/tracking.json.

    A one-camera dataset (``gsbench ingest VIDEO``) is tracked monocularly, the focal length estimated
    unless --focal is given (tracking/fit/monocular.py)."""
    import dataclasses

    from gsbench.errors import ConfigError
    from gsbench.overrides import apply_overrides, parse_overrides
    from tracking.fit import TrackingConfig, track_dataset

    values = tracking_overrides(parse_overrides(overrides))
    from tracking.fit.dataset_io import read_dataset

    if len(read_dataset(dataset).camera_ids) == 1:
        from gsbench.errors import InputError
        from tracking.fit.monocular import MONOCULAR_CONFIG, track_monocular

        if subjects or landmark_embedding is not None:
            raise InputError("--subject and --landmark-embedding apply to multi-view datasets only")
        config = apply_overrides(
            dataclasses.replace(MONOCULAR_CONFIG, dense=not landmarks_only), values, what="tracking"
        )
        report = track_monocular(dataset, focal, head_model, config, plots=not no_plots)
        click.echo(f"focal length {report['focal_px']:.1f} px")
    elif focal is not None:
        raise ConfigError("--focal applies to one-camera (video) datasets only")
    else:
        report = track_dataset(
            dataset,
            head_model,
            apply_overrides(TrackingConfig(dense=not landmarks_only), values, what="tracking"),
            landmark_embedding=landmark_embedding,
            subjects=list(subjects) or None,
            force=force,
            plots=not no_plots,
        )
    for subject, entry in sorted(report["subjects"].items()):
        reprojection = entry.get("reprojection") or {}
        median = reprojection.get("median_px")
        text = f"{median:.2f} px median reprojection" if median is not None else "no result"
        click.echo(f"{subject}: {len(entry.get('sequences', []))} sequences, {text}")
    click.echo(str(Path(dataset) / "reports" / "tracking.json"))


def tracking_overrides(overrides) -> dict[str, object]:
    """``{TrackingConfig field: value}`` of ``--set KEY=VALUE`` / ``--set tracking.KEY=VALUE``."""
    return {
        ".".join(o.key[1:] if o.key[0] == "tracking" and len(o.key) > 1 else o.key): o.value
        for o in overrides
    }
