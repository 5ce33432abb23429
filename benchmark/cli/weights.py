"""``gsbench weights list|status|add|train-syncnet``: the pretrained-weight registry."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("weights")
def weights() -> None:
    """Pretrained networks the metrics and methods use, looked up by name and checked by sha256."""


@weights.command("list")
def list_() -> None:
    """Declared names, their files (folder: trailing /), sources, checksums and users; which audio
    encoders are usable."""
    from rich.table import Table

    from benchmark.weights import WeightRegistry, method_users
    from gsbench.progress import print_table

    registry = WeightRegistry()
    users = method_users()
    table = Table(title="registered weights (declared by the metrics, methods and encoders that use them)")
    for column in ("name", "file", "origin", "sha256", "used by", "source"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        spec = registry.spec(name)
        digest = spec.expected_sha256 or (
            f"{spec.sha256_prefix}... (prefix)"
            if spec.sha256_prefix
            else f"unpublished: {spec.checksum_note}"
        )
        used_by = "; ".join(
            filter(None, [spec.used_by, ", ".join(f"method {m}" for m in users.get(name, []))])
        )
        table.add_row(
            name,
            f"{spec.filename}{'/' if spec.kind == 'folder' else ''}",
            spec.origin,
            digest,
            used_by,
            spec.url or "gsbench weights train-syncnet",
        )
    print_table(table)
    from benchmark.cli.audio import encoder_table

    print_table(encoder_table(registry))


@weights.command("status")
def status() -> None:
    """Which registered files are present and valid, with their ids; where they were looked for."""
    from rich.table import Table

    from benchmark.weights import WeightRegistry
    from gsbench.progress import print_table

    registry = WeightRegistry()
    table = Table(title="weights status")
    for column in ("name", "status", "id", "path / reason"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        state, resolved, reason = registry.status(name)
        colour = {"ok": "green", "missing": "yellow", "invalid": "red"}[state]
        table.add_row(
            name,
            f"[{colour}]{state}[/{colour}]",
            resolved.weight_id if resolved else "-",
            str(resolved.path) if resolved else reason,
        )
    print_table(table)
    click.echo("searched: " + ", ".join(str(p) for p in registry.search_paths))


@weights.command("find")
@click.argument("name")
def find(name: str) -> None:
    """Print the verified file of NAME and its id; exit non-zero (with the reason) when it is missing."""
    from benchmark.weights import WeightRegistry

    resolved = WeightRegistry().find(name)
    click.echo(f"{resolved.path}\t{resolved.weight_id}")


@weights.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to store it in (default ~/.cache/gsbench/weights).",
)
def add(name: str, file: Path, dest: Path | None) -> None:
    """Verify FILE as the registered weight NAME and copy it (atomically) into the registry folder.

    For the audio encoders (wav2vec2-base-960h, hubert-large-ls960-ft) FILE is a Hugging Face model
    folder (config.json + model.safetensors or pytorch_model.bin); its weight file's sha256 is recorded."""
    from benchmark.weights import WeightRegistry

    resolved = WeightRegistry().add(name, file, dest)
    click.echo(f"added {resolved.name}: {resolved.path} (id {resolved.weight_id})")


@weights.command("train-syncnet")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--steps", type=int, default=None, help="Optimizer steps (default 1500).")
@click.option("--batch-size", type=int, default=None, help="Pairs per step (default 16).")
@click.option("--width", type=float, default=None, help="Channel width vs the official net (default 0.25).")
@click.option("--camera", default=None, help="Camera to train on (default: the dataset's frontal camera).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to store it in (default ~/.cache/gsbench/weights).",
)
def train_syncnet_cmd(
    dataset: Path,
    steps: int | None,
    batch_size: int | None,
    width: float | None,
    camera: str | None,
    seed: int,
    out: Path | None,
) -> None:
    """Train OUR SyncNet on DATASET's train split (stored as syncnet-gsbench-<sha8>, never as syncnet-v2)."""
    import dataclasses

    from benchmark.metrics.train_syncnet import TrainSyncNetConfig, train_syncnet

    overrides = {
        k: v for k, v in {"steps": steps, "batch_size": batch_size, "width": width}.items() if v is not None
    }
    config = dataclasses.replace(TrainSyncNetConfig(), camera=camera, seed=seed, **overrides)
    resolved = train_syncnet(dataset, config, out)
    click.echo(
        f"trained {resolved.name}: {resolved.path} (id {resolved.weight_id}); "
        f"use it with: gsbench metrics ... --syncnet {resolved.name}"
    )
