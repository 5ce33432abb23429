"""``gsbench track``: multi-view FLAME tracking of an ingested dataset (also run by ``gsbench ingest``)."""

from __future__ import annotations

from pathlib import Path

import click


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
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a TrackingConfig field, e.g. --set dense_iterations=200.",
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
    from tracking.fit import TrackingConfig, track_dataset

    fields = {field.name: field for field in dataclasses.fields(TrackingConfig)}
    values: dict[str, object] = {"dense": not landmarks_only}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"bad --set {item!r}", fix=f"use KEY=VALUE with KEY one of {sorted(fields)}")
        default = getattr(TrackingConfig(), key)
        try:
            if isinstance(default, bool):
                values[key] = text.lower() in ("1", "true", "yes")
            else:
                values[key] = type(default)(text)
        except ValueError:
            raise ConfigError(f"--set {key}: {text!r} is not a {type(default).__name__}") from None
    from tracking.fit.dataset_io import read_dataset

    if len(read_dataset(dataset).camera_ids) == 1:
        from gsbench.errors import InputError
        from tracking.fit.monocular import MONOCULAR_CONFIG, track_monocular

        if subjects or landmark_embedding is not None:
            raise InputError("--subject and --landmark-embedding apply to multi-view datasets only")
        config = dataclasses.replace(MONOCULAR_CONFIG, **values)
        report = track_monocular(dataset, focal, head_model, config, plots=not no_plots)
        click.echo(f"focal length {report['focal_px']:.1f} px")
    elif focal is not None:
        raise ConfigError("--focal applies to one-camera (video) datasets only")
    else:
        report = track_dataset(
            dataset,
            head_model,
            TrackingConfig.from_overrides(values),
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
