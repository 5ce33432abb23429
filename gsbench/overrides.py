"""Configuration overrides from the command line: ``--set KEY=VALUE``, one parser for every command.

``gsbench ingest``, ``gsbench track`` and ``gsbench run`` take repeatable ``--set`` options. Each is
``dotted.key=value``; the value is read as a YAML scalar or flow list (``500``, ``1e-4``, ``true``,
``depth``, ``null``, ``[1, 2, 4]``), with YAML 1.2's number rules so that ``1e-4`` is a float (PyYAML's
YAML 1.1 would keep it a string). :func:`parse_overrides` turns the options into :class:`Override` s;
:func:`apply_overrides` applies flat dotted keys to a frozen dataclass config (nested dataclasses are
reached by dotted keys), checking every key and value against the config it changes. Each command
decides what the first parts of a key mean (a method and budget for ``run``, a section for ``ingest``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from gsbench.errors import ConfigError

OPTION = "--set"

_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# YAML 1.2 core schema floats (PyYAML implements YAML 1.1, where "1e-4" is a string)
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")

Config = TypeVar("Config")


@dataclasses.dataclass(frozen=True)
class Override:
    """One ``--set key=value``: ``key`` split at the dots, the parsed ``value``, and the option as typed."""

    key: tuple[str, ...]
    value: Any
    text: str

    @property
    def dotted(self) -> str:
        return ".".join(self.key)


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, also resolving YAML 1.2 floats such as ``1e-4`` (plain scalars only: a quoted
    ``'1e-4'`` stays a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return Loader


def parse_value(text: str) -> Any:
    """A YAML scalar or flow list: int, float, bool, None, str, or a list of those."""
    import yaml

    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return yaml.load(stripped, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return stripped  # e.g. "a: b" or an unbalanced bracket inside a plain string: keep the text


def parse_override(text: str, option: str = OPTION) -> Override:
    """``"a.b=1"`` -> ``Override(("a", "b"), 1, "a.b=1")``; a malformed option raises :class:`ConfigError`."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = tuple(key.split(".")) if key else ()
    if not sep or not parts or not all(_KEY_PART.match(part) for part in parts):
        raise ConfigError(
            f"{option} {text!r} is not KEY=VALUE with a dotted KEY",
            fix=f"write e.g. {option} hicode.quick.head.refine_steps=500",
        )
    value = parse_value(raw)
    nested = isinstance(value, list) and any(isinstance(item, list | dict) for item in value)
    if isinstance(value, dict) or nested:
        raise ConfigError(
            f"{option} {text!r}: the value is a mapping or nested list",
            fix=f"set one key at a time ({option} {key}.SUBKEY=VALUE) or give a flat list [a, b]",
        )
    return Override(parts, value, text)


def parse_overrides(texts: Iterable[str], option: str = OPTION) -> tuple[Override, ...]:
    """Every ``--set`` option, in order; the same key given twice raises :class:`ConfigError`."""
    overrides = tuple(parse_override(text, option) for text in texts)
    seen: dict[tuple[str, ...], str] = {}
    for override in overrides:
        if override.key in seen:
            raise ConfigError(
                f"{option} {override.dotted} is given twice ({seen[override.key]!r} and {override.text!r})",
                fix="keep one of them",
            )
        seen[override.key] = override.text
    return overrides


def as_flat_dict(overrides: Iterable[Override]) -> dict[str, Any]:
    """``{dotted key: value}``."""
    return {override.dotted: override.value for override in overrides}


def _leaf_types(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: type annotation}`` of every leaf field (``None`` where it cannot be resolved)."""
    try:
        hints = typing.get_type_hints(type(config))
    except Exception:  # noqa: BLE001 - an unresolvable annotation only loses the check of None defaults
        hints = {}
    types: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            types.update(_leaf_types(value, f"{prefix}{field.name}."))
        else:
            types[f"{prefix}{field.name}"] = hints.get(field.name)
    return types


def config_keys(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: current value}`` of every leaf field of a dataclass config (nested dataclasses
    flattened), in declaration order."""
    keys: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            keys.update(config_keys(value, f"{prefix}{field.name}."))
        else:
            keys[f"{prefix}{field.name}"] = value
    return keys


def unknown_key_error(unknown: Iterable[str], valid: Iterable[str], what: str) -> ConfigError:
    """The one error for keys a config does not have: names each, suggests near misses, lists the rest."""
    unknown, valid = sorted(unknown), list(valid)
    hints = []
    for key in unknown:
        # the same setting under its group (``variant`` -> ``deformation.variant``), else a near spelling
        leaf = key.rsplit(".", 1)[-1]
        close = [v for v in valid if v.rsplit(".", 1)[-1] == leaf] or difflib.get_close_matches(
            key, valid, n=1, cutoff=0.7
        )
        if close:
            hints.append(f"{key!r}: did you mean {' or '.join(repr(c) for c in close)}?")
    names = ", ".join(repr(key) for key in unknown)
    return ConfigError(
        f"unknown {what} key{'s' if len(unknown) > 1 else ''} {names}"
        + (f" ({'; '.join(hints)})" if hints else ""),
        fix=f"use one of: {', '.join(valid)}",
    )


def coerce(value: Any, current: Any, key: str, what: str, hint: Any = None) -> Any:
    """``value`` as the type of the field's ``current`` value: bool (also 0/1), int, float (also an int
    or a number written as a string), str (numbers are written back as text), tuple/list (from a list);
    a field whose default is None is checked against its annotation ``hint`` when there is one (e.g.
    ``tuple[int, int] | None``), else takes any value. Anything else raises :class:`ConfigError`."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(
            f"{what} key {key!r} expects {expected}, got {value!r}",
            fix=f"e.g. {key}={_example(current)}",
        )

    if current is None:
        return _coerce_by_hint(value, hint, key, what)
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad("true or false")
    if isinstance(current, int):
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if isinstance(current, float):
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad("a number") from None
        raise bad("a number")
    if isinstance(current, str):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad("a string")
    if isinstance(current, tuple | list):
        if not isinstance(value, list | tuple):
            raise bad("a list such as [a, b]")
        items = list(value)
        if current:
            items = [coerce(item, current[0], key, what) for item in items]
        return type(current)(items)
    if dataclasses.is_dataclass(current):
        sub = ", ".join(f"{key}.{k}" for k in config_keys(current))
        raise ConfigError(f"{what} key {key!r} is a group of settings, not one", fix=f"set one of: {sub}")
    if isinstance(value, type(current)):
        return value
    raise bad(type(current).__name__)


_SAMPLES = {bool: False, int: 0, float: 0.0, str: "", tuple: (), list: []}


def _coerce_by_hint(value: Any, hint: Any, key: str, what: str) -> Any:
    """A value for a field whose default is None: None, or a value of one of the annotation's types."""
    if value is None:
        return None
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union
        else (hint,)
    )
    samples = []
    for option in options:
        origin = typing.get_origin(option) or option
        if origin in _SAMPLES:
            samples.append((_SAMPLES[origin], typing.get_args(option)))
    if not samples:  # no annotation we can check against: keep the value as given
        return value
    for sample, args in samples:
        try:
            result = coerce(value, sample, key, what)
        except ConfigError:
            continue
        if isinstance(result, tuple) and args and args[-1] is not Ellipsis:
            if len(result) != len(args):
                continue
            result = tuple(
                coerce(item, _SAMPLES.get(arg, None), key, what)
                for item, arg in zip(result, args, strict=True)
            )
        return result
    raise ConfigError(
        f"{what} key {key!r} expects {_describe(hint)}, got {value!r}",
        fix=f"give {key} a value of that type, or null",
    )


def _describe(hint: Any) -> str:
    return re.sub(r"\b(NoneType|None)\b", "null", str(hint).replace("typing.", ""))


def _example(current: Any) -> str:
    if isinstance(current, bool):
        return "true"
    if isinstance(current, tuple | list):
        return "[" + ", ".join(str(item) for item in current) + "]"
    return str(current)


def apply_overrides(config: Config, overrides: Mapping[str, Any], what: str = "config") -> Config:
    """``config`` (a frozen dataclass) with ``overrides`` (``{dotted key: value}``) applied.

    Every key must name a leaf field (nested dataclasses through dotted keys) and every value must fit
    the field (:func:`coerce`); otherwise one :class:`ConfigError` names the bad keys and lists the
    valid ones. ``what`` names the config in the message (e.g. ``"hicode"`` or ``"tracking"``)."""
    if not overrides:
        return config
    valid = config_keys(config)
    hints = _leaf_types(config)
    unknown = [key for key in overrides if key not in valid]
    if unknown:
        groups = {key for key in unknown if any(v.startswith(key + ".") for v in valid)}
        if groups and len(groups) == len(unknown):
            key = sorted(groups)[0]
            sub = ", ".join(v for v in valid if v.startswith(key + "."))
            raise ConfigError(f"{what} key {key!r} is a group of settings, not one", fix=f"set one of: {sub}")
        raise unknown_key_error(unknown, valid, what)
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = coerce(value, valid[key], key, what, hints.get(key))
    try:
        return _replace(config, nested)
    except (ValueError, TypeError) as error:  # the config's own checks (__post_init__)
        keys = ", ".join(f"{key}={value!r}" for key, value in overrides.items())
        raise ConfigError(f"{what}: {keys} refused: {error}") from error


def _replace(config: Any, changes: dict[str, Any]) -> Any:
    values = {
        name: _replace(getattr(config, name), change) if isinstance(change, dict) else change
        for name, change in changes.items()
    }
    return dataclasses.replace(config, **values)
