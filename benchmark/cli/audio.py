"""``gsbench audio encoders|import-features|cache``: speech encoders and a dataset's audio features."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.group("audio")
def audio() -> None:
    """Speech encoders (wav2vec 2.0, HuBERT, DeepSpeech, offline) and a dataset's audio features."""


@audio.command("encoders")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Dataset folder: also report its imported features (DeepSpeech).",
)
def encoders(data: Path | None) -> None:
    """Which audio encoders are usable here, their ids, and what to do for the others."""
    from benchmark.weights import WeightRegistry
    from gsbench.progress import print_table

    cache = None
    if data is not None:
        from benchmark.audio_features import dataset_feature_cache
        from benchmark.dataset import load_dataset

        cache = dataset_feature_cache(load_dataset(data, check_files=False))
    print_table(encoder_table(WeightRegistry(), cache))


def encoder_table(weights, cache=None):
    """A rich table of :func:`avatars.audio.encoder_status` for every encoder."""
    from rich.table import Table

    from avatars.audio import ENCODER_NAMES, PRETRAINED_ENCODERS, encoder_status

    table = Table(title="audio encoders")
    for column in ("encoder", "status", "id / reason", "fix"):
        table.add_column(column, overflow="fold")
    for name in ENCODER_NAMES:
        status = encoder_status(name, weights, cache)
        if name == "deepspeech-0.1.0" and cache is None and status.state == "absent":
            detail = f"imported per dataset (see --data DATASET); without it methods use {status.fallback}"
            fix = "gsbench audio import-features DATASET --encoder deepspeech-0.1.0 FOLDER"
        else:
            detail, fix = status.detail, status.fix
        colour = {"usable": "green", "absent": "yellow", "broken": "red"}[status.state]
        kind = "" if name in PRETRAINED_ENCODERS else " (offline)"
        table.add_row(f"{name}{kind}", f"[{colour}]{status.state}[/{colour}]", detail, fix)
    return table


@audio.command("import-features")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--encoder", default="deepspeech-0.1.0", show_default=True, help="Encoder the features are of.")
@click.option(
    "--sequence",
    default=None,
    help="Sequence id SOURCE belongs to; without it SOURCE is a folder of <seq>.npy or <seq>/aud_ds.npy.",
)
def import_features_cmd(dataset: Path, source: Path, encoder: str, sequence: str | None) -> None:
    """Import precomputed features (ER-NeRF aud_ds.npy [T,16,29] or [K,29] at 50 Hz) into DATASET."""
    from benchmark.audio_features import import_features, import_features_folder
    from benchmark.dataset import load_dataset

    loaded = load_dataset(dataset, check_files=False)
    if sequence is not None:
        target = import_features(loaded, encoder, sequence, source)
        click.echo(f"imported {encoder} for {sequence}: {target}")
        return
    imported, missing = import_features_folder(loaded, encoder, source)
    click.echo(f"imported {encoder} for {len(imported)} sequences into {loaded.root / 'sequences'}")
    if missing:
        click.echo(
            f"{len(missing)} sequences still lack {encoder} features ({', '.join(missing[:8])}"
            f"{', ...' if len(missing) > 8 else ''}): methods refuse a partial import until they are added",
            err=True,
        )


@audio.command("cache")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--encoder",
    "names",
    multiple=True,
    help="Encoder to compute (repeatable; default: every usable one).",
)
def cache_cmd(dataset: Path, names: tuple[str, ...]) -> None:
    """Compute (or read) the native-rate features of every sequence into DATASET's feature cache."""
    from avatars.audio import ENCODER_NAMES, encoder_status, open_encoder
    from benchmark.audio_features import dataset_feature_cache
    from benchmark.dataset import load_dataset
    from benchmark.weights import WeightRegistry

    loaded = load_dataset(dataset, check_files=False)
    cache = dataset_feature_cache(loaded)
    weights = WeightRegistry()
    names = names or tuple(n for n in ENCODER_NAMES if encoder_status(n, weights, cache).state == "usable")
    for name in names:
        encoder = open_encoder(name, weights, cache=cache)
        hits, misses, start = cache.hits, cache.misses, time.perf_counter()
        for sequence in sorted(loaded.sequences):
            encoder.features(loaded.load_audio(sequence), cache=cache)
        click.echo(
            f"{encoder.id}: {len(loaded.sequences)} sequences, {cache.misses - misses} computed, "
            f"{cache.hits - hits} read, {time.perf_counter() - start:.2f} s"
        )
