"""The stage registry (capture_tools/stages/): the built-in stages in ingest's order, one module each, and
the outputs each declares are the files it writes."""

import importlib
import re

import pytest
from session_factory import write_session

from capture_tools import stages as stages_package
from capture_tools.frames import FrameParams
from capture_tools.ingest import IngestParams, Stage, all_stages, ingest, parse_stages, stage_names

# DESIGN.md / docs/interfaces.md: probe -> sync -> calibrate -> frames -> masks -> backgrounds -> landmarks
# -> track
INGEST_ORDER = ["probe", "sync", "calibrate", "frames", "masks", "backgrounds", "landmarks", "track"]
NO_TRACK = [name for name in INGEST_ORDER if name != "track"]  # the factory session has no face to track


def test_registry_lists_the_stages_in_ingest_order_one_module_each():
    assert stage_names() == INGEST_ORDER
    assert parse_stages("frames-") == INGEST_ORDER[3:]
    for name, stage in all_stages().items():
        module = importlib.import_module(f"capture_tools.stages.{name}")
        assert isinstance(stage, Stage) and module.STAGE is stage and stage.name == name
        assert stage.outputs or name == "probe", f"{name} declares no outputs"  # probe: its report only
    assert list(stages_package.ORDER) == INGEST_ORDER


def _expand(pattern: str, sequences: dict[str, int], cameras: list[str], written: set[str]) -> set[str]:
    """The files a declared output names on this dataset (``*``: those written that match)."""
    if "*" in pattern:
        regex = re.compile(re.escape(pattern).replace(r"\*", "[^/]+"))
        return {path for path in written if regex.fullmatch(path)}
    paths = set()
    for sequence, num_frames in sequences.items():
        for camera in cameras:
            for frame in range(num_frames):
                paths.add(pattern.format(sequence=sequence, camera=camera, frame=frame))
    return paths


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    session = tmp_path_factory.mktemp("session")
    write_session(session, take_seconds=0.6)
    out = tmp_path_factory.mktemp("dataset")
    summary = ingest(session, out, IngestParams(frames=FrameParams(size=(64, 64))), stages=NO_TRACK)
    return out, summary


def test_each_stage_writes_exactly_the_outputs_it_declares(ingested):
    """Every file of the dataset (besides dataset.json, cameras.json and ingest's state) is a declared
    output or the report of a stage that ran, and every declared output of those stages was written."""
    import json

    out, summary = ingested
    assert summary.ran == NO_TRACK  # in registry order
    meta = json.loads((out / "dataset.json").read_text())
    sequences = {seq: info["num_frames"] for seq, info in meta["sequences"].items()}
    assert len(sequences) == 2 and all(n > 0 for n in sequences.values())
    written = {
        str(path.relative_to(out))
        for path in out.rglob("*")
        if path.is_file() and not str(path.relative_to(out)).startswith(".ingest/")
    }
    expected = {"dataset.json", "cameras.json"}
    registry = all_stages()
    for name in summary.ran:
        stage = registry[name]
        expected.add(f"reports/{stage.report_name}.json")
        for output in stage.outputs:
            files = _expand(output, sequences, meta["cameras"], written)
            missing = sorted(files - written)[:3]
            assert files and not missing, f"{name} declares {output}, not written: {missing}"
            expected |= files
    assert written == expected, f"undeclared: {sorted(written - expected)[:5]}"
