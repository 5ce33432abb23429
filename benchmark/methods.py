"""Method interface (re-exported from :mod:`avatars.methods.base`) and the method registry.

Methods come from two places, both ``name -> "module:Class"``:

* ``avatars.methods.BUILTIN_METHODS`` (ours);
* the ``gsbench.methods`` entry-point group (third parties), e.g. in a plug-in's pyproject.toml::

      [project.entry-points."gsbench.methods"]
      my-method = "my_package.method:MyMethod"

A plug-in cannot shadow a built-in name (it is reported as a conflict). Classes are imported only
when a method is used or listed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
from collections.abc import Iterable
from typing import Any

from avatars.methods import BUILTIN_METHODS
from avatars.methods.base import (  # noqa: F401  (re-exported: the interface methods implement)
    BUDGETS,
    Camera,
    Method,
    RenderOutput,
    RenderRequest,
    TrainData,
    TrainStats,
    check_budget,
)
from gsbench.errors import ConfigError, GsbenchError, MethodError
from gsbench.overrides import OPTION, Override

ENTRY_POINT_GROUP = "gsbench.methods"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str  # "module:Class"
    source: str  # "builtin" or "entry point <distribution>"

    def load(self) -> type[Method]:
        module_name, _, attribute = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise MethodError(
                f"method {self.name!r} ({self.source}) cannot be imported from {self.target!r}: {error}",
                fix="reinstall the package that provides it",
            ) from error
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise MethodError(
                f"{self.target} ({self.source}) is not a subclass of avatars.methods.base.Method",
                fix="derive the method class from avatars.methods.base.Method",
            )
        if getattr(cls, "name", None) != self.name:
            raise MethodError(
                f"{self.target} declares name {getattr(cls, 'name', None)!r} but is registered as "
                f"{self.name!r}",
                fix="make the registered name and the class's `name` equal",
            )
        return cls


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def registry() -> dict[str, MethodSpec]:
    """Every known method by name: built-ins first, then entry points."""
    specs = {name: MethodSpec(name, target, "builtin") for name, target in BUILTIN_METHODS.items()}
    for entry in _entry_points():
        dist = entry.dist.name if getattr(entry, "dist", None) is not None else "unknown distribution"
        if entry.name in specs:
            raise MethodError(
                f"entry point {entry.name!r} of {dist} ({ENTRY_POINT_GROUP}) conflicts with "
                f"{specs[entry.name].source} method {entry.name!r}",
                fix=f"rename the method in {dist}'s entry points",
            )
        specs[entry.name] = MethodSpec(entry.name, entry.value, f"entry point ({dist})")
    return specs


def get_method(name: str) -> type[Method]:
    specs = registry()
    if name not in specs:
        raise MethodError(
            f"unknown method {name!r}", fix=f"use one of: {', '.join(sorted(specs))} (see `gsbench methods`)"
        )
    return specs[name].load()


def resolve_methods(selection: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"all"``, ``"a,b"`` or a list -> method names in registry order (all known names checked)."""
    specs = registry()
    if isinstance(selection, str):
        names = (
            list(specs)
            if selection.strip() == "all"
            else [n.strip() for n in selection.split(",") if n.strip()]
        )
    else:
        names = list(selection)
    unknown = [n for n in names if n not in specs]
    if unknown or not names:
        raise MethodError(
            f"unknown method(s) {unknown or selection!r}",
            fix=f"use 'all' or a comma-separated list of: {', '.join(specs)}",
        )
    return list(dict.fromkeys(names))


def split_method_overrides(
    overrides: Iterable[Override], option: str = OPTION
) -> dict[str, dict[str | None, dict[str, Any]]]:
    """``--set METHOD.KEY=VALUE`` / ``--set METHOD.BUDGET.KEY=VALUE`` -> ``{method: {budget | None:
    {dotted key: value}}}`` (``None``: every budget). The method must be registered and a key must follow
    it; the keys themselves are checked by :func:`check_method_overrides`."""
    specs = registry()
    split: dict[str, dict[str | None, dict[str, Any]]] = {}
    for override in overrides:
        method, *rest = override.key
        if method not in specs:
            close = difflib.get_close_matches(method, list(specs), n=1)
            raise ConfigError(
                f"{option} {override.text!r}: unknown method {method!r}"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                fix=f"write {option} METHOD[.BUDGET].KEY=VALUE with METHOD one of: {', '.join(specs)}",
            )
        budget = rest[0] if rest and rest[0] in BUDGETS else None
        key = rest[1:] if budget else rest
        if not key:
            raise ConfigError(
                f"{option} {override.text!r} names no setting of {method}",
                fix=f"write {option} {'.'.join(override.key)}.KEY=VALUE "
                f"(the keys: gsbench run --method {method} --list-settings)",
            )
        split.setdefault(method, {}).setdefault(budget, {})[".".join(key)] = override.value
    return split


def overrides_for(split: dict[str, dict[str | None, dict[str, Any]]], method: str, budget: str) -> dict:
    """The overrides one job of ``method`` at ``budget`` gets: the every-budget ones, then the budget's
    own (which win)."""
    per_budget = split.get(method, {})
    return {**per_budget.get(None, {}), **per_budget.get(budget, {})}


def check_method_overrides(split: dict[str, dict[str | None, dict[str, Any]]], option: str = OPTION) -> None:
    """Build each named method with its overrides for every budget they apply to and resolve its config,
    so that an unknown key or a bad value fails before any job starts (one :class:`ConfigError` that
    names the method, the key and the valid keys)."""
    for name, per_budget in split.items():
        cls = get_method(name)
        budgets = BUDGETS if None in per_budget else tuple(b for b in BUDGETS if b in per_budget)
        for budget in budgets:
            overrides = overrides_for(split, name, budget)
            try:
                cls(overrides=overrides).config(budget)
            except TypeError as error:
                if "overrides" not in str(error):
                    raise
                raise ConfigError(
                    f"{option}: method {name!r} ({cls.__module__}) takes no settings from the command line",
                    fix="derive it from avatars.methods.base.Method and pass overrides= to its __init__",
                ) from error
            except GsbenchError as error:
                where = f"{name}.{budget}" if budget in per_budget else name
                raise ConfigError(f"{option} {where}.*: {error}") from error


def method_settings(name: str, budget: str) -> dict[str, Any]:
    """``{dotted key: default}`` of every setting ``--set NAME[.BUDGET].KEY=VALUE`` can change."""
    return dict(get_method(name).override_keys(check_budget(budget)))


def describe_methods() -> list[dict[str, object]]:
    """One row per method for ``gsbench methods``; a method that fails to import is listed with the error."""
    rows = []
    for name, spec in registry().items():
        try:
            cls = spec.load()
        except MethodError as error:
            rows.append({"name": name, "source": spec.source, "error": str(error)})
            continue
        rows.append(
            {
                "name": name,
                "source": spec.source,
                "protocols": list(cls.protocols),
                "oracle": cls.oracle,
                "pretrained_networks": list(cls.pretrained_networks),
                "paper": cls.paper,
                "description": cls.description,
            }
        )
    return rows
