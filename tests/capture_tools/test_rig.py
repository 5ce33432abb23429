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
