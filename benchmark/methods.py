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
import importlib
import importlib.metadata

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
from gsbench.errors import MethodError

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
