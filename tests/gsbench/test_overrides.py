"""``--set KEY=VALUE``: the one parser of ingest, track and run, and its application to dataclass configs."""

from __future__ import annotations

import dataclasses

import pytest

from gsbench.errors import ConfigError
from gsbench.overrides import (
    Override,
    apply_overrides,
    as_flat_dict,
    config_keys,
    parse_override,
    parse_overrides,
    parse_value,
)


@dataclasses.dataclass(frozen=True)
class Head:
    refine_steps: int = 100
    lr: float = 1e-3
    densify: bool = True


@dataclasses.dataclass(frozen=True)
class Config:
    head: Head = Head()
    init: str = "depth"
    scales: tuple[int, ...] = (1, 2, 3, 4)
    size: tuple[int, int] | None = None
    fps: float | None = None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500", 500),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e-4", 1e-4),  # YAML 1.1 (PyYAML) would keep this a string
        ("2E3", 2000.0),
        ("true", True),
        ("no", False),
        ("null", None),
        ("depth", "depth"),
        ("'500'", "500"),
        ("[1, 2, 4]", [1, 2, 4]),
        ("[1e-3, x]", [1e-3, "x"]),
        ("", ""),
        ("[1, 2", "[1, 2"),  # not valid YAML: kept as the text
    ],
)
def test_values_are_yaml_scalars_and_lists(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_key_is_split_at_the_dots_and_the_text_is_kept():
    override = parse_override("hicode.quick.head.refine_steps=500")
    assert override == Override(
        ("hicode", "quick", "head", "refine_steps"), 500, "hicode.quick.head.refine_steps=500"
    )
    assert override.dotted == "hicode.quick.head.refine_steps"
    assert parse_override("audio-plane.lr==x").value == "=x"  # the first '=' separates


@pytest.mark.parametrize("text", ["steps", "=3", "a..b=1", ".a=1", "a.=1", "a b=1", "1a=2"])
def test_malformed_options_are_refused_with_an_example(text):
    with pytest.raises(ConfigError, match=r"is not KEY=VALUE.*fix: write e\.g\. --set"):
        parse_override(text)


def test_mappings_and_nested_lists_are_refused():
    with pytest.raises(ConfigError, match="mapping or nested list"):
        parse_override("a={b: 1}")
    with pytest.raises(ConfigError, match="mapping or nested list"):
        parse_override("a=[[1], [2]]")


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="a.b is given twice"):
        parse_overrides(["a.b=1", "c=2", "a.b=3"])
    assert as_flat_dict(parse_overrides(["a.b=1", "c=x"])) == {"a.b": 1, "c": "x"}


def test_config_keys_flattens_nested_dataclasses():
    assert config_keys(Config()) == {
        "head.refine_steps": 100,
        "head.lr": 1e-3,
        "head.densify": True,
        "init": "depth",
        "scales": (1, 2, 3, 4),
        "size": None,
        "fps": None,
    }


def test_apply_replaces_nested_fields_and_coerces_to_the_field_type():
    config = Config()
    changed = apply_overrides(
        config,
        {"head.refine_steps": 500, "head.lr": 1, "head.densify": 0, "scales": [1, 2], "size": [256, 192]},
    )
    assert changed == Config(
        head=Head(refine_steps=500, lr=1.0, densify=False), scales=(1, 2), size=(256, 192)
    )
    assert type(changed.head.lr) is float and type(changed.scales) is tuple and type(changed.size) is tuple
    assert config == Config()  # frozen input untouched
    assert apply_overrides(config, {}) is config
    assert apply_overrides(config, {"init": 7, "fps": 30, "size": None}) == Config(init="7", fps=30.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"head.refine_steps": "many"}, "'head.refine_steps' expects an integer, got 'many'"),
        ({"head.refine_steps": 2.5}, "expects an integer"),
        ({"head.refine_steps": True}, "expects an integer"),
        ({"head.densify": "maybe"}, "'head.densify' expects true or false"),
        ({"head.densify": 2}, "expects true or false"),
        ({"head.lr": "fast"}, "'head.lr' expects a number"),
        ({"scales": 3}, r"'scales' expects a list such as \[a, b\]"),
        ({"scales": [1, "x"]}, "expects an integer"),
        ({"size": [1, 2, 3]}, r"'size' expects tuple\[int, int\] \| null"),
        ({"fps": "x"}, r"'fps' expects float \| null"),
    ],
)
def test_values_that_do_not_fit_the_field_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), overrides, what="demo")


def test_unknown_keys_are_named_with_near_misses_and_the_valid_keys_listed():
    with pytest.raises(ConfigError) as error:
        apply_overrides(Config(), {"head.refine_step": 5, "bogus": 1}, what="demo")
    text = str(error.value)
    assert text.startswith("unknown demo keys 'bogus', 'head.refine_step'")
    assert "'head.refine_step': did you mean 'head.refine_steps'?" in text
    assert text.endswith(
        "(fix: use one of: head.refine_steps, head.lr, head.densify, init, scales, size, fps)"
    )


def test_a_setting_named_without_its_group_is_pointed_to_it():
    with pytest.raises(
        ConfigError, match=r"unknown demo key 'densify' \('densify': did you mean 'head.densify'\?\)"
    ):
        apply_overrides(Config(), {"densify": False}, what="demo")


def test_a_group_is_not_a_setting():
    with pytest.raises(ConfigError, match=r"'head' is a group of settings.*set one of: head.refine_steps"):
        apply_overrides(Config(), {"head": 3}, what="demo")


@dataclasses.dataclass(frozen=True)
class Checked:
    variant: str = "full"

    def __post_init__(self):
        if self.variant not in ("full", "none"):
            raise ValueError(f"unknown variant {self.variant!r}")


def test_a_config_that_checks_itself_refuses_with_a_config_error():
    assert apply_overrides(Checked(), {"variant": "none"}) == Checked("none")
    with pytest.raises(ConfigError, match=r"^demo: variant='bogus' refused: unknown variant 'bogus'$"):
        apply_overrides(Checked(), {"variant": "bogus"}, what="demo")
