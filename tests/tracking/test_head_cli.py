"""``gsbench head export`` writes a readable mesh, the model .npz and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from benchmark.cli import main
from tracking.head.export import export_head, write_ply
from tracking.head_model import HeadModel


def test_export_obj_round_trip(default_head: HeadModel, tmp_path: Path) -> None:
    paths = export_head(default_head, tmp_path / "out", fmt="obj", sheet=False)
    names = {p.name for p in paths}
    assert {"gsbench-head.obj", "gsbench-head.mtl", "gsbench-head_albedo.png", "gsbench-head.npz"} <= names
    lines = (tmp_path / "out" / "gsbench-head.obj").read_text().splitlines()
    vertices = np.array([[float(t) for t in line.split()[1:]] for line in lines if line.startswith("v ")])
    faces = [line for line in lines if line.startswith("f ")]
    np.testing.assert_allclose(vertices, default_head.v_template, atol=2e-6)
    assert len(faces) == len(default_head.faces)
    mesh = trimesh.load(tmp_path / "out" / "gsbench-head.obj", force="mesh")  # a standard reader takes it
    assert len(mesh.faces) == len(default_head.faces)
    loaded = HeadModel.load(tmp_path / "out" / "gsbench-head.npz")
    np.testing.assert_array_equal(loaded.exprdirs, default_head.exprdirs)
    assert loaded.expr_names == default_head.expr_names
    np.testing.assert_array_equal(loaded.wrinkle_maps["brow_raise"], default_head.wrinkle_maps["brow_raise"])


def test_export_ply(default_head: HeadModel, tmp_path: Path) -> None:
    ply = write_ply(default_head, tmp_path, "head")[0]
    mesh = trimesh.load(ply, process=False)
    assert len(mesh.vertices) == default_head.num_vertices
    np.testing.assert_allclose(mesh.vertices, default_head.v_template, atol=1e-6)
    colours = np.asarray(mesh.visual.vertex_colors)[:, :3]
    assert colours.std() > 10  # textured, not one flat colour


def test_cli_rejects_bad_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["head", "export", str(tmp_path / "x"), "--format", "stl"])
    assert exit_info.value.code != 0


@pytest.mark.slow
def test_cli_export_with_contact_sheet(tmp_path: Path) -> None:
    main(["--quiet", "head", "export", str(tmp_path / "out"), "--format", "ply"])  # returns on success
    sheet = cv2.imread(str(tmp_path / "out" / "gsbench-head_contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 5 * 256 and sheet.shape[1] >= 5 * 256
    assert (tmp_path / "out" / "gsbench-head.ply").stat().st_size > 100_000
