from pathlib import Path

import pytest
import yaml

from capture_tools.rig import load_rig
from gsbench.errors import ConfigError, InputError

RIG = {
    "schema_version": 1,
    "name": "s",
    "fps": 25,
    "frontal_camera": "cam01",
    "audio": {"sample_rate": 16000, "master": "audio.wav"},
    "cameras": [{"id": "cam00", "video": "cam00.mp4"}, {"id": "cam01", "video": "cam01.mp4"}],
    "takes": [{"id": "s01_t00", "subject": "s01"}],
    "calibration": {
        "folder": "calibration",
        "board": {
            "type": "charuco",
            "squares_x": 7,
            "squares_y": 5,
            "square_length_m": 0.04,
            "marker_length_m": 0.03,
            "dictionary": "DICT_5X5_100",
        },
    },
    "background": "background",
}


def write(tmp_path: Path, data) -> Path:
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return tmp_path


def test_valid_rig_round_trips(tmp_path):
    rig = load_rig(write(tmp_path, RIG))
    assert rig.camera_ids == ["cam00", "cam01"]
    assert rig.fps == 25.0 and isinstance(rig.fps, float)
    assert rig.take_video("s01_t00", "cam01") == tmp_path.resolve() / "takes/s01_t00/cam01.mp4"
    assert rig.calibration.board.squares_x == 7


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda r: r.pop("fps"), "'fps'"),
        (lambda r: r.update(fps="fast"), "'fps'"),
        (lambda r: r.update(frontal_camera="cam99"), "'frontal_camera'"),
        (lambda r: r["cameras"][1].pop("video"), "'cameras[1].video'"),
        (lambda r: r["calibration"]["board"].update(dictionary="DICT_9X9"), "'calibration.board.dictionary'"),
        (lambda r: r.update(fsp=25), "'fsp'"),
        (lambda r: r["audio"].update(sample_rate=-1), "'audio.sample_rate'"),
        (lambda r: r["takes"].append({"id": "s01_t00", "subject": "s01"}), "'takes'"),
    ],
)
def test_bad_keys_name_key_and_file(tmp_path, mutate, key):
    import copy

    data = copy.deepcopy(RIG)
    mutate(data)
    with pytest.raises(ConfigError) as error:
        load_rig(write(tmp_path, data))
    assert key in str(error.value)
    assert str(tmp_path / "rig.yaml") in str(error.value)


def test_unparsable_yaml_and_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rig(write(tmp_path, "fps: [1, 2\n"))
    with pytest.raises(InputError, match="no rig.yaml in the session folder"):
        load_rig(tmp_path / "empty")


def _intrinsics(cameras=("cam00", "cam01")) -> dict:
    """Cameras of a calibration report (reports/calibration.json of an earlier ingest)."""
    return {
        camera: {
            "K": [[700.0 + index, 0.0, 131.5], [0.0, 701.0, 124.25], [0.0, 0.0, 1.0]],
            "dist": [-0.3, -0.15, 0.001, -0.002, 0.01],
            "world_to_cam": [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 2.0], [0, 0, 0, 1.0]],
            "width": 256,
            "height": 256,
        }
        for index, camera in enumerate(cameras)
    }


def test_intrinsics_key_reads_a_calibration_report_or_a_camera_mapping(tmp_path):
    import json

    earlier = tmp_path / "earlier" / "reports"
    earlier.mkdir(parents=True)
    (earlier / "calibration.json").write_text(
        json.dumps({"stage": "calibrate", "result": {"cameras": _intrinsics()}})
    )
    session = tmp_path / "session"
    session.mkdir()
    rig = load_rig(write(session, dict(RIG, intrinsics="../earlier/reports/calibration.json")))
    assert rig.intrinsics.path == (earlier / "calibration.json").resolve()
    assert len(rig.intrinsics.sha256) == 64
    assert rig.intrinsics.cameras["cam01"].K == ((701.0, 0.0, 131.5), (0.0, 701.0, 124.25), (0.0, 0.0, 1.0))
    assert rig.intrinsics.cameras["cam01"].dist == (-0.3, -0.15, 0.001, -0.002, 0.01)
    assert (rig.intrinsics.cameras["cam00"].width, rig.intrinsics.cameras["cam00"].height) == (256, 256)
    # a plain camera mapping (an absolute path), without extrinsics: they are not read
    cameras = _intrinsics()
    for entry in cameras.values():
        del entry["world_to_cam"]
    (tmp_path / "cameras.json").write_text(json.dumps(cameras))
    rig = load_rig(write(session, dict(RIG, intrinsics=str(tmp_path / "cameras.json"))))
    assert rig.intrinsics.cameras["cam00"].K[0][0] == 700.0
    assert load_rig(write(session, RIG)).intrinsics is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ({"cam00": _intrinsics()["cam00"]}, "camera cam01 of the rig is missing"),
        # a dataset's cameras.json: undistorted frames, no dist
        (
            {c: {k: v for k, v in e.items() if k != "dist"} for c, e in _intrinsics().items()},
            "camera cam00: no 'dist'",
        ),
        (
            {c: dict(e, K=[[700.0, 0.0, 128.0], [0.0, 700.0, 128.0]]) for c, e in _intrinsics().items()},
            "K must be",
        ),
        (
            {c: dict(e, K=[[700.0, 2.0, 128], [0, 700, 128], [0, 0, 1]]) for c, e in _intrinsics().items()},
            "K must be",
        ),
        ({c: dict(e, dist=[-0.3, 0.1]) for c, e in _intrinsics().items()}, "dist must be 5 numbers"),
        ({c: dict(e, width="256") for c, e in _intrinsics().items()}, "width and height"),
        ([1, 2], "expected a mapping of camera ids"),
    ],
)
def test_bad_intrinsics_file_names_the_file_and_camera(tmp_path, content, message):
    import json

    if content is not None:
        (tmp_path / "cal.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as error:
        load_rig(write(tmp_path, dict(RIG, intrinsics="cal.json")))
    assert message in str(error.value)
    named = tmp_path / "rig.yaml" if content is None else (tmp_path / "cal.json").resolve()
    assert str(named) in str(error.value)
    per_camera = not isinstance(content, (str, list, type(None)))
    assert ("camera cam0" in str(error.value)) == per_camera


def test_intrinsics_key_must_be_a_path(tmp_path):
    with pytest.raises(ConfigError, match="key 'intrinsics': expected str"):
        load_rig(write(tmp_path, dict(RIG, intrinsics=3)))
