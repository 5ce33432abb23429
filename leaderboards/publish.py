"""Results files -> leaderboard CSV, markdown table and plot, per dataset and protocol.

Generated from ``results.json`` files only (never edited by hand); the schema is documented in
``leaderboards/SCHEMA.md``. Publishing merges with the CSV already there: rows are keyed by
(dataset, protocol, row_type, method, subject); a newly published row replaces the row with its key,
rows from elsewhere are kept, and mean rows and ranks are recomputed from the merged subject rows.
So publishing the same runs twice writes the same bytes.

Ranking: mean rows of non-oracle methods with status ``ok`` are ranked by one primary metric per
protocol (``gsbench.metric_table.rank_by``: the metric whose declaration lists the protocol in its
``ranks``); oracle rows (methods that see test expressions) and paper-reported reference rows are shown
but never ranked. The metric columns, their order, directions and formats are the metrics' declarations
(``benchmark/metrics/``, read through ``gsbench.metric_table``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable
from pathlib import Path

from gsbench.errors import ConfigError
from gsbench.io import sha256_file, write_bytes, write_text
from gsbench.metric_table import METRICS, leaderboard_metrics, metric_info, rank_by, registered
from gsbench.progress import warn

SCHEMA_VERSION = 2  # 2: lip-box columns (*_mouth), per-video LSE columns
RESULTS_SCHEMA = ("gsbench.results", 1)  # what benchmark.runner writes (see benchmark/results.py)
OWN_COMPOSITOR = "own-compositor"  # benchmark.protocols' second rule: its rows are never ranked
COMPOSITING_LEGEND = {  # rule ids of results.json ``compositing.rule`` (benchmark/protocols.py)
    "head-over-plate": "head over the camera's clean plate inside the ground-truth head mask, "
    "ground-truth frame outside",
    "head-over-black": "no clean plate: head over black inside the ground-truth head mask, ground-truth "
    "frame outside",
    "cross-id-over-plate": "cross-id: head over the evaluation camera's clean plate (no ground truth of "
    "the driven subject)",
    "cross-id-over-black": "cross-id without a clean plate: head over black",
    OWN_COMPOSITOR: "the method's own compositor returns the whole frame (separate track, never ranked "
    "with the shared rule)",
}
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def metric_column(name: str) -> str:
    return f"{name} {metric_info(name).arrow}"


def find_results(runs_dir: str | Path) -> list[Path]:
    """Every ``<runs>/<dataset>/<protocol>/<method>/<subject>/results.json``, sorted."""
    runs_dir = Path(runs_dir)
    return sorted(runs_dir.glob("*/*/*/*/results.json")) if runs_dir.is_dir() else []


def load_results(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"cannot read results ({error})", path=path, fix="re-run that job with `gsbench run --force`"
        ) from error
    if not isinstance(data, dict) or (data.get("schema"), data.get("schema_version")) != RESULTS_SCHEMA:
        raise ConfigError(
            f"not a {RESULTS_SCHEMA[0]} v{RESULTS_SCHEMA[1]} file",
            path=path,
            fix="re-run that job with this gsbench (`gsbench run --force`)",
        )
    for key in ("status", "dataset", "protocol", "method", "subject", "metrics"):
        if key not in data:
            raise ConfigError(
                f"results lack {key!r}", path=path, fix="re-run that job with `gsbench run --force`"
            )
    return data


KEY_COLUMNS = ("dataset", "protocol", "row_type", "method", "subject")
# provenance columns: a mean row joins its subjects' distinct values
PROVENANCE_COLUMNS = (
    "audio_encoder",
    "weight_ids",
    "compositing",
    "conventions",
    "device",
    "gsbench_version",
    "git_commit",
    "dataset_hash",
    "config_hash",
    "results_sha256",
)


def columns() -> tuple[str, ...]:
    """The CSV columns: one per declared leaderboard metric (``gsbench.metric_table``), in column order."""
    return (
        "schema_version",
        "dataset",
        "protocol",
        "row_type",
        "rank",
        "rank_by",
        "method",
        "subject",
        "oracle",
        "status",
        "budget",
        *(metric_column(m) for m in leaderboard_metrics()),
        "train_s",
        "render_fps",
        "num_gaussians",
        *PROVENANCE_COLUMNS,
    )


def __getattr__(name: str):
    """``COLUMNS``, ``LEADERBOARD_METRICS`` and ``RANK_BY``: the declared metrics when asked for."""
    if name == "COLUMNS":
        return columns()
    if name == "LEADERBOARD_METRICS":
        return leaderboard_metrics()
    if name == "RANK_BY":
        return rank_by()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def conventions(metrics: dict) -> str:
    """How the row's numbers were made, from the metrics' details in results.json: the SSIM window and
    border, the LMD detector and resolution, the LSE face crop (a key absent from the details is left out)."""

    def detail(name: str, key: str) -> str:
        entry = metrics.get(name) or {}
        return str((entry.get("details") or {}).get(key) or "")

    parts = []
    if detail("ssim", "window"):
        parts.append(f"ssim={detail('ssim', 'window')}, {detail('ssim', 'channels') or 'channels ?'}, "
                     f"{detail('ssim', 'border')}")  # fmt: skip
    if detail("lmd", "detector"):
        parts.append(f"lmd={detail('lmd', 'detector')} @ {detail('lmd', 'resolution') or '? px'}")
    if detail("lse_d", "face_crop"):
        parts.append(f"lse={detail('lse_d', 'face_crop')}")
    return "; ".join(parts)


def subject_row(results: dict, results_path: Path) -> dict[str, str]:
    """One CSV row of one results.json."""
    metrics = results.get("metrics", {})
    info = results.get("method_info", {})
    timing = results.get("timing", {})
    compositing = results.get("compositing", {})
    method = results["method"]
    if compositing.get("track") == OWN_COMPOSITOR:
        method = f"{method}+{OWN_COMPOSITOR}"  # its own row (and run folder), never ranked
    row = {c: "" for c in columns()}
    row.update(
        {
            "schema_version": str(SCHEMA_VERSION),
            "dataset": results["dataset"]["name"],
            "protocol": results["protocol"],
            "row_type": "subject",
            "rank_by": rank_by().get(results["protocol"], ""),
            "method": method,
            "subject": results["subject"],
            "oracle": "yes" if info.get("oracle") else "no",
            "status": "ok"
            if results["status"] == "ok"
            else f"failed: {results.get('error') or 'unknown error'}",
            "budget": results.get("budget", ""),
            "train_s": _fmt(timing.get("train_seconds"), 1),
            "render_fps": _fmt(timing.get("render_fps"), 1),
            "num_gaussians": "" if results.get("num_gaussians") is None else str(results["num_gaussians"]),
            "audio_encoder": info.get("audio_encoder", ""),
            "weight_ids": ";".join(f"{k}={v}" for k, v in sorted(results.get("weights", {}).items())),
            "compositing": compositing.get("rule", ""),
            "conventions": conventions(metrics),
            "device": results.get("device", ""),
            "gsbench_version": results.get("gsbench_version", ""),
            "git_commit": results.get("git_commit", ""),
            "dataset_hash": results["dataset"].get("hash", "")[:16],
            "config_hash": (results.get("config_hash") or "")[:16],
            "results_sha256": sha256_file(results_path)[:16],
        }
    )
    for name in leaderboard_metrics():
        entry = metrics.get(name)
        if entry and entry.get("status") == "ok":
            row[metric_column(name)] = metric_info(name).format(entry["value"])
    return row


def _joined(values: Iterable[str]) -> str:
    return ";".join(sorted({v for v in values if v}))


def mean_rows(rows: list[dict[str, str]], subjects_by_dataset: dict[str, list[str]]) -> list[dict[str, str]]:
    """Per (dataset, protocol, method): the mean over subjects, complete only when every subject is ok."""
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        if row["row_type"] == "subject":
            groups.setdefault((row["dataset"], row["protocol"], row["method"]), []).append(row)
    out = []
    for (dataset, protocol, method), members in sorted(groups.items()):
        expected = subjects_by_dataset.get(dataset) or sorted({r["subject"] for r in members})
        ok = {r["subject"]: r for r in members if r["status"] == "ok"}
        mean = {c: "" for c in columns()}
        mean.update(
            {
                "schema_version": str(SCHEMA_VERSION),
                "dataset": dataset,
                "protocol": protocol,
                "row_type": "mean",
                "rank_by": rank_by().get(protocol, ""),
                "method": method,
                "subject": "mean",
                "oracle": "yes" if any(r["oracle"] == "yes" for r in members) else "no",
            }
        )
        for column in ("budget", *PROVENANCE_COLUMNS):
            mean[column] = _joined(r[column] for r in members)
        if all(s in ok for s in expected):
            mean["status"] = "ok"
            for name in leaderboard_metrics():
                values = [ok[s][metric_column(name)] for s in expected]
                if all(values):
                    mean[metric_column(name)] = metric_info(name).format(
                        sum(float(v) for v in values) / len(values)
                    )
            for column, digits in (("train_s", 1), ("render_fps", 1)):
                values = [ok[s][column] for s in expected]
                if all(values):
                    mean[column] = _fmt(sum(float(v) for v in values) / len(values), digits)
        else:
            missing = [s for s in expected if s not in ok]
            mean["status"] = (
                f"incomplete: {len(expected) - len(missing)}/{len(expected)} subjects ok "
                f"(missing or failed: {', '.join(missing)})"
            )
        out.append(mean)
    return out


def rank_rows(rows: list[dict[str, str]]) -> None:
    """Fill ``rank`` of complete, non-oracle mean rows under the shared compositing rule by their
    protocol's primary metric (own-compositor rows are a separate track, never ranked with them)."""
    by_board: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        row["rank"] = ""
        shared = OWN_COMPOSITOR not in row["compositing"].split(";")
        if row["row_type"] == "mean" and row["status"] == "ok" and row["oracle"] == "no" and shared:
            by_board.setdefault((row["dataset"], row["protocol"]), []).append(row)
    for (_, protocol), members in by_board.items():
        metric = rank_by().get(protocol)
        if metric is None:
            continue
        column = metric_column(metric)
        scored = [r for r in members if r[column]]
        sign = -1.0 if metric_info(metric).direction == "higher" else 1.0
        scored.sort(key=lambda r: (sign * float(r[column]), r["method"]))
        previous, rank = None, 0
        for index, row in enumerate(scored, start=1):
            if row[column] != previous:
                rank, previous = index, row[column]
            row["rank"] = str(rank)


def _sort_key(row: dict[str, str]) -> tuple:
    return (
        row["row_type"] != "mean",
        int(row["rank"]) if row["rank"] else 10**9,
        row["method"],
        row["subject"],
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        if reader.fieldnames is None:
            return []
    expected = columns()
    # a board published before a metric was added lacks only that metric's column: its rows read as blank
    older = [c for c in expected if c in reader.fieldnames] == list(reader.fieldnames) and all(
        c in reader.fieldnames or c.split(" ")[0] in leaderboard_metrics() for c in expected
    )
    if not older or any(r.get("schema_version") != str(SCHEMA_VERSION) for r in rows):
        raise ConfigError(
            f"existing leaderboard has another schema (columns or schema_version != {SCHEMA_VERSION})",
            path=path,
            fix="move the old file away (publishing never drops rows it cannot read) and publish again",
        )
    return [{c: r.get(c) or "" for c in expected} for r in rows]


def render_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class Board:
    dataset: str
    protocol: str
    rows: list[dict[str, str]]
    csv_path: Path
    markdown_path: Path
    plot_path: Path


def load_reference(protocol: str | None = None) -> list[dict[str, str]]:
    """Paper-reported rows (leaderboards/reference/*.csv), optionally those comparable to ``protocol``."""
    rows = []
    for path in sorted(REFERENCE_DIR.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows += [r for r in csv.DictReader(handle) if protocol is None or r["protocol_like"] == protocol]
    return rows


def publish(
    runs_dir: str | Path = "runs", out_dir: str | Path = "leaderboards", *, plot: bool = True
) -> list[Board]:
    """Publish every dataset x protocol found under ``runs_dir`` into ``out_dir``."""
    paths = find_results(runs_dir)
    if not paths:
        raise ConfigError(
            "no results.json found",
            path=runs_dir,
            fix="run `gsbench run --method all --data DATASET` first, or pass --runs",
        )
    new_rows: dict[tuple[str, str], list[dict[str, str]]] = {}
    subjects: dict[str, list[str]] = {}
    sources: dict[tuple[str, str], Path] = {}  # (dataset, dataset_hash) -> one results file of it
    for path in paths:
        try:  # one unreadable file is named and skipped; it must not block every other board
            results = load_results(path)
            row = subject_row(results, path)
            listed = results["dataset"].get("subjects")
            listed = [str(s) for s in listed] if listed else None
        except ConfigError as error:
            warn(f"skipped: {error}")
            continue
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            warn(f"skipped: {path}: results with a wrong type or value ({type(error).__name__}: {error}) "
                 "(fix: re-run that job with `gsbench run --force`)")  # fmt: skip
            continue
        new_rows.setdefault((row["dataset"], row["protocol"]), []).append(row)
        sources.setdefault((row["dataset"], row["dataset_hash"]), path)
        if listed:
            subjects[row["dataset"]] = listed
    if not new_rows:
        raise ConfigError(
            "no readable results.json (see the warnings above)",
            path=runs_dir,
            fix="re-run the jobs with `gsbench run --force`",
        )
    _check_one_version(sources)
    boards = []
    for (dataset, protocol), rows in sorted(new_rows.items()):
        folder = Path(out_dir) / dataset
        csv_path = folder / f"{protocol}.csv"
        existing = [r for r in read_csv(csv_path) if r["row_type"] == "subject"]
        _check_board_version(csv_path, existing, rows)
        merged = {tuple(r[k] for k in KEY_COLUMNS): r for r in existing}
        for row in rows:
            merged[tuple(row[k] for k in KEY_COLUMNS)] = row
        subject_rows = list(merged.values())
        all_rows = subject_rows + mean_rows(subject_rows, subjects)
        rank_rows(all_rows)
        all_rows.sort(key=_sort_key)
        write_text(csv_path, render_csv(all_rows))
        board = Board(
            dataset, protocol, all_rows, csv_path, folder / f"{protocol}.md", folder / f"{protocol}.png"
        )
        write_text(board.markdown_path, render_markdown(board))
        if plot:
            write_bytes(board.plot_path, render_plot(board))
        boards.append(board)
    return boards


def _check_one_version(sources: dict[tuple[str, str], Path]) -> None:
    """Results of two versions of one dataset (same name, different content hash) are not comparable:
    a re-ingested dataset has other frames, masks or tracking. Refuse rather than rank them together."""
    by_name: dict[str, list[tuple[str, Path]]] = {}
    for (dataset, dataset_hash), path in sorted(sources.items()):
        by_name.setdefault(dataset, []).append((dataset_hash, path))
    for dataset, versions in by_name.items():
        if len(versions) > 1:
            listed = "; ".join(f"hash {h or '(none)'} e.g. {p}" for h, p in versions)
            raise ConfigError(
                f"results of {len(versions)} versions of dataset {dataset!r} (different content hashes: "
                f"{listed}); their rows cannot be ranked on one board",
                fix="re-run the old version's jobs on the current dataset (`gsbench run --force`), or move "
                "them to another --runs folder and publish each version into its own --out folder",
            )


def _check_board_version(csv_path: Path, existing: list[dict[str, str]], rows: list[dict[str, str]]) -> None:
    """The board already published must hold the same dataset version as the new rows."""
    new_hashes = {r["dataset_hash"] for r in rows}
    old_hashes = {r["dataset_hash"] for r in existing} - new_hashes
    if old_hashes:
        raise ConfigError(
            f"the board holds results of dataset content hash {', '.join(sorted(old_hashes))}, the new "
            f"results are of hash {', '.join(sorted(new_hashes))} (another version of dataset "
            f"{rows[0]['dataset']!r}); their rows cannot be ranked together",
            path=csv_path,
            fix="publish into another --out folder, or move the old board away to start the new version's",
        )


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _shown_metrics(board: Board) -> list[str]:
    shown = [m for m in leaderboard_metrics() if any(r[metric_column(m)] for r in board.rows)]
    return shown or [rank_by().get(board.protocol, "psnr")]


def _weights_line(rows: list[dict[str, str]]) -> str:
    """Which pretrained networks produced which metrics (from the rows' ``weight_ids``), saying so when a
    SyncNet is one trained here: its LSE figures compare methods on this board, not with papers' LSE."""
    used: dict[str, set[str]] = {}
    for row in rows:
        for item in filter(None, (row.get("weight_ids") or "").split(";")):
            metric, _, weight_id = item.partition("=")
            used.setdefault(weight_id.split(":")[0], set()).add(metric)
    if not used:
        return ""
    notes = []
    for name, metrics in sorted(used.items()):
        note = f"{', '.join(sorted(metrics))}: `{name}`"
        if name.startswith("syncnet-gsbench-"):
            note += (
                " (our SyncNet, trained on this dataset by `gsbench weights train-syncnet`;"
                " not the official syncnet_v2)"
            )
        notes.append(note)
    return "Weights: " + "; ".join(notes) + "."


def _conventions_lines(rows: list[dict[str, str]]) -> list[str]:
    """What each metric column is, and what it is comparable to (README "Metrics")."""
    used = sorted({c for r in rows for c in r.get("conventions", "").split(";") if c}) if rows else []
    return [
        "Conventions:",
        "",
        *(f"- {info.convention}" for info in registered() if info.convention),
        *(f"- This board: {c.strip()}" for c in used),
        "",
    ]


def render_markdown(board: Board, reference: bool = True) -> str:
    """The leaderboard as markdown: ranked means, per-subject rows, then paper-reported rows."""
    metrics = _shown_metrics(board)
    ranked_by = rank_by().get(board.protocol, "")
    parts = [
        f"# {board.dataset} / {board.protocol}",
        "",
        f"Generated by `gsbench leaderboard publish` from results.json files (schema v{SCHEMA_VERSION}, see "
        f"leaderboards/SCHEMA.md). Ranked by {metric_column(ranked_by)} over complete mean rows; oracle rows "
        "(see test expressions) and paper-reported rows are never ranked. Metrics missing their pretrained "
        "weights are left blank (see each results.json for the reason).",
        "",
    ]
    rules = sorted({rule for r in board.rows for rule in r["compositing"].split(";") if rule})
    if rules:
        legend = "; ".join(f"`{rule}`: {COMPOSITING_LEGEND.get(rule, 'see results.json')}" for rule in rules)
        parts += [f"Compositing (per row in the CSV): {legend}.", ""]
    weights = _weights_line(board.rows)
    if weights:
        parts += [weights, ""]
    parts += _conventions_lines(board.rows)
    header = [
        "rank",
        "method",
        "subject",
        *(metric_column(m) for m in metrics),
        "train s",
        "render fps",
        "device",  # what train s and render fps were measured on (results.json device)
        "status",
    ]
    table = []
    for row in board.rows:
        method = row["method"] + (" (oracle)" if row["oracle"] == "yes" else "")
        table.append(
            [
                row["rank"] or "-",
                method,
                row["subject"],
                *(row[metric_column(m)] or "—" for m in metrics),
                row["train_s"] or "—",
                row["render_fps"] or "—",
                row["device"] or "—",
                row["status"],
            ]
        )
    parts += [_md_table(header, table), ""]
    reference = load_reference(board.protocol) if reference else []
    if reference:
        ref_metrics = [
            m
            for m in ("psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c")
            if any(r[metric_column(m)] for r in reference)
        ]
        parts += [
            "## Paper-reported reference (other datasets; not comparable, never ranked)",
            "",
            _md_table(
                ["paper", "table", "dataset", "method", *(metric_column(m) for m in ref_metrics)],
                [
                    [
                        r["paper"],
                        r["table"],
                        r["dataset"],
                        r["method"],
                        *(r[metric_column(m)] or "—" for m in ref_metrics),
                    ]
                    for r in reference
                ],
            ),
            "",
        ]
    return "\n".join(parts)


def plotted_reference(
    protocol: str, ours: list[dict[str, str]], x_metric: str, y_metric: str
) -> list[dict[str, str]] | None:
    """The paper-reported rows the plot may show beside ``ours``; None when it must show none because
    the x axis is LSE from a SyncNet trained here (the papers' LSE is the official syncnet_v2's, on
    another scale: the two never share an axis)."""
    reference = [
        r
        for r in load_reference(protocol)
        if r.get(metric_column(x_metric)) and r.get(metric_column(y_metric))
    ]
    ours_syncnet = any("syncnet-gsbench-" in r.get("weight_ids", "") for r in ours)
    if reference and x_metric in ("lse_c", "lse_d") and ours_syncnet:
        return None
    return reference


def render_plot(board: Board) -> bytes:
    """PNG: image quality (PSNR) against lip sync (LSE-C, else LSE-D, else LMD) per method."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ours = [r for r in board.rows if r["row_type"] == "mean" and r["status"] == "ok"] or [
        r for r in board.rows if r["status"] == "ok"
    ]
    y_metric = "psnr"
    x_metric = next((m for m in ("lse_c", "lse_d", "lmd") if any(r[metric_column(m)] for r in ours)), None)
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.add_subplot()
    if x_metric is None:
        points = [
            (i, float(r[metric_column(y_metric)])) for i, r in enumerate(ours) if r[metric_column(y_metric)]
        ]
        axes.bar([p[0] for p in points], [p[1] for p in points], color="tab:blue")
        axes.set_xticks([p[0] for p in points], [ours[p[0]]["method"] for p in points], rotation=20)
        axes.set_title(f"{board.dataset} / {board.protocol}: no lip-sync metric available")
    else:
        for row in ours:
            if row[metric_column(x_metric)] and row[metric_column(y_metric)]:
                x, y = float(row[metric_column(x_metric)]), float(row[metric_column(y_metric)])
                label = f"{row['method']}{' (oracle)' if row['oracle'] == 'yes' else ''}"
                if row["row_type"] != "mean":
                    label += f" [{row['subject']}]"
                axes.scatter([x], [y], marker="^" if row["oracle"] == "yes" else "o", color="tab:blue")
                axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        reference = plotted_reference(board.protocol, ours, x_metric, y_metric)
        if reference is None:
            axes.text(
                0.01,
                0.01,
                "paper points not shown: their LSE is the official SyncNet's, this board's is ours",
                transform=axes.transAxes,
                fontsize=7,
                color="grey",
            )
        elif reference:
            xs = [float(r[metric_column(x_metric)]) for r in reference]
            ys = [float(r[metric_column(y_metric)]) for r in reference]
            axes.scatter(
                xs, ys, facecolors="none", edgecolors="grey", label="paper-reported (other datasets)"
            )
            for row, x, y in zip(reference, xs, ys, strict=True):
                axes.annotate(
                    f"{row['method']} ({row['paper']})",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, -8),
                    fontsize=6,
                    color="grey",
                )
            axes.legend(loc="best", fontsize=8)
        axes.set_xlabel(f"{METRICS[x_metric].label} {METRICS[x_metric].arrow} (lip sync)")
        axes.set_title(f"{board.dataset} / {board.protocol}")
    axes.set_ylabel(f"{METRICS[y_metric].label} {METRICS[y_metric].arrow} (image quality)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def markdown_summary(boards: list[Board], reference: bool = True) -> str:
    """Every board's markdown, one after the other (``reference=False``: without the paper rows)."""
    return "\n\n".join(render_markdown(b, reference=reference) for b in boards)


__all__ = ["SCHEMA_VERSION", "columns", "load_reference", "publish", "read_csv"]  # noqa: F822 (COLUMNS: __getattr__)
