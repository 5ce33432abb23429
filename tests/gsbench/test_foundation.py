"""The package skeleton: CLI error handling, atomic writes, ffmpeg discovery, doctor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from benchmark import cli as cli_module
from gsbench import __version__, io
from gsbench.errors import ConfigError, GsbenchError, InputError
from gsbench.ffmpeg import ffmpeg_exe


def test_error_message_names_path_and_fix(tmp_path: Path) -> None:
    error = ConfigError("missing key 'fps'", path=tmp_path / "rig.yaml", fix="add fps: 25")
    assert isinstance(error, InputError) and isinstance(error, GsbenchError)
    assert str(error) == f"{tmp_path / 'rig.yaml'}: missing key 'fps' (fix: add fps: 25)"


def test_cli_prints_one_line_for_user_errors(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    @click.command()
    def broken() -> None:
        raise ConfigError("bad value", path="rig.yaml", fix="use a number")

    monkeypatch.setitem(cli_module.COMMANDS, "broken", ("tests_gsbench_broken:broken", "a broken command"))
    module = type(sys)("tests_gsbench_broken")
    module.broken = broken
    monkeypatch.setitem(sys.modules, "tests_gsbench_broken", module)
    with pytest.raises(SystemExit) as excinfo:
        cli_module.main(["broken"])
    assert excinfo.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: rig.yaml: bad value (fix: use a number)"
    assert "Traceback" not in err


def test_cli_version_and_help_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in result.stdout
    result = subprocess.run([sys.executable, "-m", "benchmark", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name, (_, short_help) in cli_module.COMMANDS.items():
        assert name in result.stdout and short_help[:30] in " ".join(result.stdout.split())


def test_cli_help_imports_no_subcommand() -> None:
    """The command list comes from the COMMANDS table: `gsbench --help` imports no subcommand module
    (they pull in torch, open3d, mediapipe); every table entry names a real click command."""
    code = (
        "import sys; from benchmark.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('benchmark.cli.')))\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *_, modules, torch_loaded = result.stdout.strip().splitlines()
    assert modules == "[]" and torch_loaded == "False"
    for name in cli_module.COMMANDS:
        assert isinstance(cli_module.load_command(name), click.Command)


def test_unknown_command_exits_nonzero() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmark", "no-such"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "No such command" in result.stderr


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_save_npz_round_trip_and_hash(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    io.save_npz(tmp_path / "a.npz", expr=array)
    with np.load(tmp_path / "a.npz") as data:
        np.testing.assert_array_equal(data["expr"], array)
    io.write_bytes(tmp_path / "b.bin", b"abc")
    assert io.sha256_file(tmp_path / "b.bin") == io.sha256_bytes(b"abc")
    assert io.sha256_bytes(b"abc").startswith("ba7816bf")


def test_ffmpeg_binary_runs() -> None:
    result = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True)
    assert result.returncode == 0 and "ffmpeg version" in result.stdout


def test_doctor_finds_required_pieces() -> None:
    from gsbench.doctor import run_checks

    checks = {check.name: check for check in run_checks()}
    for name in ("python: torch", "python: cv2", "binary: ffmpeg", "python: mediapipe"):
        assert checks[name].ok, checks[name].detail
    missing_module = __import__("gsbench.doctor", fromlist=["_module_check"])._module_check(
        "no_such_module_xyz", "test"
    )
    assert not missing_module.ok and missing_module.fix
