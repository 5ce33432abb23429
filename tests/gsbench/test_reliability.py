"""Issue 21 (common base): file modes follow the umask, locks, temporaries, warnings said once,
training progress, and tables that are not wrapped when piped."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from gsbench import io
from gsbench.errors import BusyError
from gsbench.progress import print_table, training_progress, warn, warn_once


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    previous = os.umask(0o022)
    os.umask(previous)
    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_and_staging_folders_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    io.write_json(tmp_path / "results.json", {"a": 1})
    io.save_npz(tmp_path / "flame.npz", expr=__import__("numpy").zeros(3))
    for name in ("results.json", "flame.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask  # mkstemp alone: 0600
    folder = io.staging_dir(tmp_path, "checkpoint")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask and io.TEMP_MARKER in folder.name


def test_folder_lock_names_the_holder_and_is_released(tmp_path):
    lock = tmp_path / "job" / ".lock"
    with io.folder_lock(lock, "job x"):
        with pytest.raises(BusyError, match=f"job x is already running, PID {os.getpid()}"):
            with io.folder_lock(lock, "job x"):
                pass
    with io.folder_lock(lock, "job x"):  # released on exit
        pass


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "results.json", tmp_path / "checkpoint" / "model.pt", tmp_path / ".lock"]
    for path in keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    stale = [
        tmp_path / f".results.json{io.TEMP_MARKER}ab.json",
        tmp_path / "sub" / f".a.jpg{io.TEMP_MARKER}1.jpg",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    (tmp_path / f".checkpoint{io.TEMP_MARKER}zz" / "inner").mkdir(parents=True)
    removed = io.remove_stale_temporaries(tmp_path)
    assert len(removed) == 3
    assert all(p.exists() for p in keep) and not [p for p in tmp_path.rglob("*") if io.TEMP_MARKER in p.name]


def test_load_npz_names_a_truncated_file(tmp_path):
    import numpy as np

    from gsbench.errors import InputError

    path = tmp_path / "flame.npz"
    io.save_npz(path, expr=np.arange(1000.0))
    assert np.array_equal(io.load_npz(path)["expr"], np.arange(1000.0))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="truncated or corrupt") as error:
        io.load_npz(path)
    assert str(path) in str(error.value)


def test_warnings_show_under_quiet_and_warn_once_says_it_once(monkeypatch, capsys):
    monkeypatch.setenv("GSBENCH_QUIET", "1")
    warn("the plate is missing")
    for _ in range(3):
        warn_once("weights xyz-4711 missing, term skipped")
    err = capsys.readouterr().err
    assert "warning: the plate is missing" in err and err.count("xyz-4711") == 1


def test_missing_perceptual_weights_are_warned_about_once_per_run(tmp_path, capsys):
    from avatars.gaussian_speech_avatar import load_perceptual_terms
    from benchmark.weights import WeightRegistry

    registry = WeightRegistry(search_paths=[tmp_path])
    for _ in range(3):  # three jobs of one run
        terms = load_perceptual_terms(registry)
        assert set(terms.disabled) == {"global", "patch"}  # still recorded each time
    err = capsys.readouterr().err
    assert (
        err.count("global perceptual loss skipped") == 1 and err.count("patch perceptual loss skipped") == 1
    )


def test_training_progress_logs_step_loss_and_eta(caplog, monkeypatch):
    monkeypatch.setenv("GSBENCH_QUIET", "1")
    with caplog.at_level(logging.INFO, logger="gsbench.training"):
        with training_progress(10, "fit", log_every_s=0.0) as progress:
            for step in range(1, 11):
                progress.update(step, loss=1.0 / step)
    lines = [r.getMessage() for r in caplog.records if r.name == "gsbench.training"]
    assert len(lines) == 10 and lines[-1].startswith("fit: step 10/10, loss 0.1,") and "ETA 0 s" in lines[-1]
    assert "step 5/10, loss 0.2," in lines[4]


def test_training_progress_is_silent_under_quiet_and_logs_periodically(caplog, monkeypatch, capsys):
    monkeypatch.setenv("GSBENCH_QUIET", "1")
    with caplog.at_level(logging.INFO, logger="gsbench.training"):
        with training_progress(1000, "fit", log_every_s=3600.0) as progress:
            for step in range(1, 1001):
                progress.update(step, loss=0.5)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "gsbench.training"]
    assert len(lines) == 1 and "step 1000/1000" in lines[0]  # only the last step within the period


def test_tables_are_plain_rows_when_piped(tmp_path):
    from rich.table import Table

    table = Table(title="methods")
    for column in ("name", "description"):
        table.add_column(column, overflow="fold")
    long = "a description far longer than eighty columns " * 4
    table.add_row("[red]alpha[/]", long)
    table.add_row("beta", "short")
    with open(tmp_path / "out.txt", "w") as handle:
        print_table(table, file=handle)
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert lines == ["methods", "name\tdescription", f"alpha\t{long.strip()}", "beta\tshort"]


def test_gsbench_methods_piped_prints_one_line_per_method(capsys):
    from avatars.methods import BUILTIN_METHODS
    from benchmark.cli import main

    main(["methods"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("\t") for line in lines[2:]]
    assert lines[1].split("\t")[0] == "name" and len(rows) >= len(BUILTIN_METHODS)
    assert all(len(row) == 6 for row in rows) and set(BUILTIN_METHODS) <= {row[0] for row in rows}
