"""The metric table: every metric's name, direction, label, format and leaderboard column, as declared.

A metric module declares its metric once (``benchmark.metrics.registry.register_metric``); the
declaration's :class:`MetricInfo` entries land here. ``benchmark`` (compute, results files, the runner's
summary, the ``gsbench metrics`` table) and ``leaderboards`` (which reads result files and imports nothing
of ``benchmark``) read this table, so a metric's direction, label and column are defined once, in its
module.

Declarations are read on first use: every module of :data:`DECLARING_PACKAGES` (the built-in metrics,
``benchmark/metrics/``) is imported, then the ``gsbench.metrics`` entry-point group (third-party metric
modules). That lookup by package name is the only reference of this base module to an upper layer.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Iterator, Mapping

DECLARING_PACKAGES = ("benchmark.metrics",)  # every module in them is imported to read its declarations
ENTRY_POINT_GROUP = "gsbench.metrics"


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """How one result name reads: direction, label, format, where its leaderboard column goes."""

    name: str
    direction: str  # "higher" | "lower" is better
    label: str
    sync: bool = False  # computed from the video + audio alone (no ground-truth frames needed)
    digits: int = 4  # decimals in the leaderboard CSV and markdown
    column: int = 1000  # position of its leaderboard column (and of the table); ties: by name
    leaderboard: bool = True  # has a leaderboard column
    ranks: tuple[str, ...] = ()  # protocols whose leaderboard is ranked by this metric
    convention: str = ""  # one markdown line for the leaderboard's "Conventions" (how it is computed)

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower'")

    @property
    def arrow(self) -> str:
        return "↑" if self.direction == "higher" else "↓"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def format(self, value: float | None) -> str:
        return "" if value is None else f"{value:.{self.digits}f}"


_INFOS: dict[str, MetricInfo] = {}
_loaded = False


def register_info(info: MetricInfo) -> MetricInfo:
    """Add ``info`` to the table (the same declaration again is a no-op; another one under a name
    already taken is an error, so two modules cannot silently disagree on a direction)."""
    known = _INFOS.get(info.name)
    if known is not None and known != info:
        raise ValueError(f"metric {info.name!r} is declared twice, differently: {known} and {info}")
    _INFOS[info.name] = info
    return info


def unregister_info(name: str) -> None:
    """Remove ``name`` (tests that register a metric of their own clean up with this)."""
    _INFOS.pop(name, None)


def load_declarations() -> None:
    """Import the declaring modules once (see the module docstring)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in DECLARING_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError:  # the base layer used without the benchmark package
            continue
        for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def registered() -> list[MetricInfo]:
    """Every declared metric, in leaderboard column order."""
    load_declarations()
    return sorted(_INFOS.values(), key=lambda info: (info.column, info.name))


class _Table(Mapping):
    """``name -> MetricInfo`` of every declared metric, in column order (reads the declarations first)."""

    def __getitem__(self, name: str) -> MetricInfo:
        load_declarations()
        return _INFOS[name]

    def __iter__(self) -> Iterator[str]:
        return iter([info.name for info in registered()])

    def __len__(self) -> int:
        load_declarations()
        return len(_INFOS)


METRICS: Mapping[str, MetricInfo] = _Table()


def metric_info(name: str) -> MetricInfo:
    """Direction and label of a metric; ``<name>_masked`` of a known metric inherits its direction;
    unknown names (a metric no module declares) default to 'higher' and say so in the label."""
    if name not in _INFOS:
        load_declarations()
    if name in _INFOS:
        return _INFOS[name]
    base = name.removesuffix("_masked")
    if base in _INFOS:
        return dataclasses.replace(
            _INFOS[base], name=name, label=f"{_INFOS[base].label} head", ranks=(), convention=""
        )
    return MetricInfo(name, "higher", f"{name} (direction unknown)")


def leaderboard_metrics() -> tuple[str, ...]:
    """The metrics with a leaderboard column, in column order."""
    return tuple(info.name for info in registered() if info.leaderboard)


def rank_by() -> dict[str, str]:
    """protocol -> the metric its leaderboard is ranked by (declared by the metric: ``ranks``)."""
    out: dict[str, str] = {}
    for info in registered():
        for protocol in info.ranks:
            if protocol in out:
                raise ValueError(
                    f"protocol {protocol!r} is ranked by both {out[protocol]!r} and {info.name!r}"
                )
            out[protocol] = info.name
    return out
