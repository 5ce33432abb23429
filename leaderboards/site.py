"""Leaderboards -> a static website people browse offline (``gsbench leaderboard publish --site OUT``).

Built from the boards :func:`leaderboards.publish.publish` returns (so every column it computes shows
here) and the results files of the runs folder. Layout of ``OUT``::

    index.html                          overview: every board, its leader, its plot
    assets/site.css, sort.js, sync.js   copied from leaderboards/site_assets (no CDN: works offline)
    <dataset>/<protocol>/index.html     sortable tables (means, per subject, paper-reported apart),
                                        plots, and per test sequence the videos side by side
    <dataset>/<protocol>/leaderboard.csv                       the board's CSV, as published
    <dataset>/<protocol>/results/<method>/<subject>/results.json   copied results files (linked per row)
    <dataset>/<protocol>/media/<subject>/<sequence>/*.mp4      the runner's videos, copied
    <dataset>/<protocol>/*.png, *.svg                          plots

Deterministic: the same boards and results give the same bytes (no dates; matplotlib's SVG ids and
metadata fixed). Written atomically as a whole: the site is built in a temporary folder beside ``OUT``
which then replaces ``OUT`` (two renames; ``OUT`` is only replaced when it is a site this module wrote).

A row links to a results file when the file's sha256 prefix equals the row's ``results_sha256``; rows
merged from an earlier CSV whose results are not in this runs folder show no link (and no video).
The ground-truth video of a sequence is the left half of a method's ``comparison/<seq>.mp4`` (the
runner writes no ground-truth-only video), cropped by CSS, so no video is re-encoded.
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from gsbench.errors import ConfigError
from gsbench.io import sha256_file
from gsbench.metric_table import metric_info
from leaderboards.publish import (
    COMPOSITING_LEGEND,
    LEADERBOARD_METRICS,
    OWN_COMPOSITOR,
    RANK_BY,
    Board,
    _conventions_lines,
    _weights_line,
    find_results,
    load_reference,
    load_results,
    metric_column,
    render_plot,
)

ASSETS_DIR = Path(__file__).resolve().parent / "site_assets"
ASSETS = ("site.css", "sort.js", "sync.js")
MARKER = ".gsbench-site"  # in every site this module writes; only such a folder is ever replaced
REFERENCE_METRICS = ("psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c")  # columns of reference/*.csv


@dataclasses.dataclass(frozen=True)
class RunFile:
    """One results.json of the runs folder, found by its sha256 prefix (``results_sha256`` of a row)."""

    path: Path
    results: dict


def index_results(runs_dir: str | Path) -> dict[str, RunFile]:
    """``{sha256[:16]: RunFile}`` of every readable results file under ``runs_dir``."""
    found = {}
    for path in find_results(runs_dir):
        try:
            results = load_results(path)
        except ConfigError:
            continue  # publish decides what an unreadable file means; the site shows what it published
        found[sha256_file(path)[:16]] = RunFile(path, results)
    return found


def build_site(boards: list[Board], runs_dir: str | Path, site_dir: str | Path) -> Path:
    """Write the site of ``boards`` into ``site_dir`` (replacing an earlier site); return its index.html."""
    site_dir = Path(site_dir).absolute()
    if site_dir.exists() and not (site_dir / MARKER).is_file():
        if not site_dir.is_dir() or any(site_dir.iterdir()):
            raise ConfigError(
                "exists and is not a gsbench site (no .gsbench-site file); not replacing it",
                path=site_dir,
                fix="pass --site a new or empty folder, or one an earlier --site wrote",
            )
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    runs = index_results(runs_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}.", dir=site_dir.parent))
    try:
        staging.chmod(0o755)
        _write_site(staging, boards, runs)
        old = None
        if site_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}.old.", dir=site_dir.parent))
            os.replace(site_dir, old / "site")
        os.replace(staging, site_dir)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return site_dir / "index.html"


# --------------------------------------------------------------------------------------------------
# the pages


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, root: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="gsbench leaderboard publish --site">',
            f"<title>{_e(title)}</title>",
            f'<link rel="stylesheet" href="{root}assets/site.css">',
            f'<script src="{root}assets/sort.js" defer></script>',
            f'<script src="{root}assets/sync.js" defer></script>',
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _board_dirs(boards: list[Board]) -> list[str]:
    """``<dataset>/<protocol>`` per board; boards whose names collide get their dataset hash appended."""
    names = [f"{_slug(b.dataset)}/{_slug(b.protocol)}" for b in boards]
    out = []
    for board, name in zip(boards, names, strict=True):
        if names.count(name) > 1:
            hashes = sorted({r.get("dataset_hash", "") for r in board.rows if r.get("dataset_hash")})
            name = f"{_slug(board.dataset)}-{_slug('_'.join(hashes)[:16])}/{_slug(board.protocol)}"
        out.append(name)
    return out


def _write_site(root: Path, boards: list[Board], runs: dict[str, RunFile]) -> None:
    (root / MARKER).write_text("written by gsbench leaderboard publish --site; replaced on every publish\n")
    (root / "assets").mkdir()
    for name in ASSETS:
        shutil.copyfile(ASSETS_DIR / name, root / "assets" / name)
    summaries = []
    rels = _board_dirs(boards)
    for board, rel in zip(boards, rels, strict=True):
        folder = root / rel
        folder.mkdir(parents=True)
        depth = "../" * len(Path(rel).parts)
        others = " · ".join(
            f"<b>{_e(b.dataset)} / {_e(b.protocol)}</b>"
            if other == rel
            else f'<a href="{depth}{_e(other)}/index.html">{_e(b.dataset)} / {_e(b.protocol)}</a>'
            for b, other in zip(boards, rels, strict=True)
        )
        summaries.append((board, rel, _write_board(folder, depth, others, board, runs)))
    (root / "index.html").write_text(_overview(summaries), encoding="utf-8")


def _overview(summaries: list[tuple[Board, str, dict]]) -> str:
    body = [
        "<h1>gsbench leaderboards</h1>",
        '<p class="note">Generated by <code>gsbench leaderboard publish --site</code> from results.json '
        "files (never edited by hand). Each board is one dataset and protocol; mean rows are ranked by the "
        "protocol's primary metric; oracle rows (methods that see test expressions) and paper-reported "
        "rows are shown but never ranked.</p>",
        '<div class="scroll"><table class="sortable" id="boards">',
        "<thead><tr>",
        *(
            f'<th data-sort="{kind}"><button type="button">{label}</button></th>'
            for label, kind in (
                ("dataset", "text"),
                ("protocol", "text"),
                ("ranked by", "text"),
                ("methods", "num"),
                ("subjects", "num"),
                ("leader", "text"),
                ("videos", "num"),
            )
        ),
        "</tr></thead>",
        "<tbody>",
    ]
    for board, rel, summary in summaries:
        body.append(
            "<tr>"
            f'<td><a href="{_e(rel)}/index.html">{_e(board.dataset)}</a></td>'
            f'<td><a href="{_e(rel)}/index.html">{_e(board.protocol)}</a></td>'
            f"<td>{_e(summary['rank_by'])}</td>"
            f'<td class="num">{summary["methods"]}</td>'
            f'<td class="num">{summary["subjects"]}</td>'
            f"<td>{_e(summary['leader'])}</td>"
            f'<td class="num">{summary["videos"]}</td>'
            "</tr>"
        )
    body += ["</tbody>", "</table></div>", '<div class="plots">']
    for board, rel, summary in summaries:
        if summary["plot"]:
            body.append(
                f'<figure><a href="{_e(rel)}/index.html"><img src="{_e(rel)}/{summary["plot"]}" width="480" '
                f'alt="{_e(board.dataset)} / {_e(board.protocol)}: image quality against lip sync"></a>'
                f"<figcaption>{_e(board.dataset)} / {_e(board.protocol)}</figcaption></figure>"
            )
    body.append("</div>")
    return _page("gsbench leaderboards", "", body)


def _shown_metrics(board: Board) -> list[str]:
    shown = [m for m in LEADERBOARD_METRICS if any(r.get(metric_column(m)) for r in board.rows)]
    return shown or [RANK_BY.get(board.protocol, "psnr")]


def _write_board(folder: Path, depth: str, nav: str, board: Board, runs: dict[str, RunFile]) -> dict:
    """One board's page and files (``depth``: the way back to the site root, ``nav``: links to every
    board); returns the overview's summary of it."""
    linked: dict[str, str] = {}  # results_sha256 -> site-relative link of the copied results.json
    files: dict[tuple[str, str], RunFile] = {}  # (method, subject) -> results file
    for row in board.rows:
        run = runs.get(row.get("results_sha256", "")) if row["row_type"] == "subject" else None
        if run is None:
            continue
        rel = f"results/{_slug(row['method'])}/{_slug(row['subject'])}/results.json"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path, folder / rel)
        linked[row["results_sha256"]] = rel
        files[(row["method"], row["subject"])] = run
    if board.csv_path.is_file():
        shutil.copyfile(board.csv_path, folder / "leaderboard.csv")
    metrics = _shown_metrics(board)
    means = [r for r in board.rows if r["row_type"] == "mean"]
    subjects = [r for r in board.rows if r["row_type"] == "subject"]
    rank_by = RANK_BY.get(board.protocol, "")
    plots = _write_plots(folder, board, metrics)
    method_order = list(dict.fromkeys(r["method"] for r in means + subjects))
    videos, video_html = _write_videos(folder, files, method_order)
    body = [
        f'<nav><a href="{depth}index.html">overview</a> · {nav} · <a href="leaderboard.csv">CSV</a></nav>',
        f"<h1>{_e(board.dataset)} / {_e(board.protocol)}</h1>",
        f'<p class="note">Ranked by {_e(metric_column(rank_by)) if rank_by else "nothing"} over complete '
        "mean rows (every subject ok). Click a column to sort (best first; again to flip); empty cells sort "
        "last. "
        '<span class="badge">oracle</span> rows see test expressions: shown, never ranked. Metrics missing '
        "their pretrained weights are blank (the row's results.json says why). "
        "Each row's details list its budget, audio encoder, weight ids and compositing rule.</p>",
    ]
    body += _notes_html(board)
    body += ["<h2>Means over subjects</h2>", _rows_table("means", means, metrics, rank_by, linked)]
    body += ["<h2>Per subject</h2>", _rows_table("subjects", subjects, metrics, rank_by, linked)]
    body += [
        "<h2>Test sequences</h2>",
        '<p class="note">Per test sequence, the ground truth and every method\'s render (composited as '
        "scored) play in sync with the test audio: the bar above the videos drives them all.</p>",
    ]
    body += video_html or [
        '<p class="note">No videos: the runs were made with videos off, or are not here.</p>'
    ]
    body += _plots_html(plots)
    body += _reference_html(board.protocol)
    (folder / "index.html").write_text(
        _page(f"{board.dataset} / {board.protocol} — gsbench", depth, body), encoding="utf-8"
    )
    leader = [r["method"] for r in means if r["rank"] == "1"]
    return {
        "rank_by": metric_column(rank_by) if rank_by else "",
        "methods": len({r["method"] for r in board.rows}),
        "subjects": len({r["subject"] for r in subjects}),
        "leader": ", ".join(leader) or "—",
        "videos": videos,
        "plot": plots[0][0] if plots and plots[0][0].endswith(".png") else "",
    }


def _inline_markdown(text: str) -> str:
    """Escaped ``text`` with markdown `code` spans as <code> (publish's notes are markdown)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _notes_html(board: Board) -> list[str]:
    """The board's compositing legend, weights line and metric conventions, as publish writes them
    for the markdown (so the site says the same)."""
    rules = sorted({rule for r in board.rows for rule in r.get("compositing", "").split(";") if rule})
    notes = []
    if rules:
        legend = "; ".join(
            f"<code>{_e(rule)}</code>: {_e(COMPOSITING_LEGEND.get(rule, 'see results.json'))}"
            for rule in rules
        )
        notes.append(f'<p class="note">Compositing (per row under details): {legend}.</p>')
    weights = _weights_line(board.rows)
    if weights:
        notes.append(f'<p class="note">{_inline_markdown(weights)}</p>')
    lines = [line for line in _conventions_lines(board.rows) if line.startswith("- ")]
    if lines:
        items = "".join(f"<li>{_inline_markdown(line[2:])}</li>" for line in lines)
        notes.append(
            '<details class="note"><summary>Conventions: what each metric column is, and what it is '
            f"comparable to</summary><ul>{items}</ul></details>"
        )
    return notes


def _details(row: dict[str, str], linked: dict[str, str]) -> str:
    fields = [
        ("status", row.get("status", "")),
        ("budget", row.get("budget", "")),
        ("audio encoder", row.get("audio_encoder", "")),
        ("weight ids", row.get("weight_ids", "").replace(";", "; ")),
        ("compositing", row.get("compositing", "")),
        ("conventions", row.get("conventions", "").replace(";", "; ")),
        ("num gaussians", row.get("num_gaussians", "")),
        ("device", row.get("device", "")),
        ("gsbench", row.get("gsbench_version", "")),
        ("git commit", row.get("git_commit", "")),
        ("dataset hash", row.get("dataset_hash", "")),
        ("config hash", row.get("config_hash", "")),
    ]
    links = [
        f'<a href="{_e(linked[sha])}">{_e(linked[sha].split("/", 1)[1])}</a>'
        for sha in row.get("results_sha256", "").split(";")
        if sha in linked
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v) or '—'}</dd>" for k, v in fields)
    items += f"<dt>results</dt><dd>{' '.join(links) or 'not in this runs folder'}</dd>"
    return f"<details><summary>details</summary><dl>{items}</dl></details>"


def _rows_table(
    table_id: str, rows: list[dict[str, str]], metrics: list[str], rank_by: str, linked: dict[str, str]
) -> str:
    if not rows:
        return '<p class="note">No rows.</p>'
    best: dict[str, float] = {}
    for m in metrics:  # best value among rankable rows, in bold
        values = [
            float(r[metric_column(m)])
            for r in rows
            if r["oracle"] != "yes" and r["status"] == "ok" and r.get(metric_column(m))
        ]
        if values:
            best[m] = max(values) if metric_info(m).higher_is_better else min(values)
    header = [
        '<th data-sort="num"><button type="button" title="1 = best by the primary metric">rank</button></th>',
        '<th data-sort="text"><button type="button">method</button></th>',
        '<th data-sort="text"><button type="button">subject</button></th>',
    ]
    for m in metrics:
        info = metric_info(m)
        tip = f"{info.label}: {info.direction} is better" + (" (ranked by this)" if m == rank_by else "")
        header.append(
            f'<th data-sort="num" data-better="{info.direction}" data-metric="{_e(m)}">'
            f'<button type="button" title="{_e(tip)}">{_e(metric_column(m))}</button></th>'
        )
    header += [
        '<th data-sort="num" data-better="lower"><button type="button" title="training seconds">'
        "train s</button></th>",
        '<th data-sort="num" data-better="higher"><button type="button">render fps</button></th>',
        '<th data-sort="text"><button type="button">budget</button></th>',
        '<th data-sort="text"><button type="button">status</button></th>',
        "<th>details</th>",
    ]
    body = []
    for row in rows:
        classes = []
        if row["oracle"] == "yes":
            classes.append("oracle")
        if row["status"] != "ok":
            classes.append("not-ok")
        method = _e(row["method"])
        if row["oracle"] == "yes":
            method += '<span class="badge" title="sees test expressions: never ranked">oracle</span>'
        if OWN_COMPOSITOR in row.get("compositing", ""):
            method += (
                '<span class="badge" title="its own compositor: never ranked with the shared rule">own</span>'
            )
        tip = f"audio encoder: {row.get('audio_encoder') or '—'}; budget: {row.get('budget') or '—'}"
        cells = [
            f'<td class="num" data-v="{_e(row["rank"])}">{_e(row["rank"]) or "—"}</td>',
            f'<td class="method" title="{_e(tip)}">{method}</td>',
            f"<td>{_e(row['subject'])}</td>",
        ]
        for m in metrics:
            value = row.get(metric_column(m), "")
            bold = value and m in best and float(value) == best[m] and "oracle" not in classes
            cells.append(f'<td class="num{" best" if bold else ""}">{_e(value)}</td>')
        cells += [
            f'<td class="num">{_e(row.get("train_s", ""))}</td>',
            f'<td class="num">{_e(row.get("render_fps", ""))}</td>',
            f"<td>{_e(row.get('budget', ''))}</td>",
            f"<td>{_e(row['status'])}</td>",
            f"<td>{_details(row, linked)}</td>",
        ]
        class_attr = f' class="{" ".join(classes)}"' if classes else ""
        body.append(
            f'<tr{class_attr} data-method="{_e(row["method"])}" data-subject="{_e(row["subject"])}">'
            + "".join(cells)
            + "</tr>"
        )
    return "\n".join(
        [
            f'<div class="scroll"><table class="sortable" id="{table_id}">',
            "<thead><tr>" + "".join(header) + "</tr></thead>",
            "<tbody>",
            *body,
            "</tbody>",
            "</table></div>",
        ]
    )


def _reference_html(protocol: str) -> list[str]:
    rows = load_reference(protocol)
    if not rows:
        return []
    metrics = [m for m in REFERENCE_METRICS if any(r.get(metric_column(m)) for r in rows)]
    header = [
        '<th data-sort="text"><button type="button">paper</button></th>',
        '<th data-sort="text"><button type="button">table</button></th>',
        '<th data-sort="text"><button type="button">dataset</button></th>',
        '<th data-sort="text"><button type="button">method</button></th>',
        *(
            f'<th data-sort="num" data-better="{metric_info(m).direction}"><button type="button">'
            f"{_e(metric_column(m))}</button></th>"
            for m in metrics
        ),
        '<th data-sort="num" data-better="higher"><button type="button">render fps</button></th>',
        '<th data-sort="text"><button type="button">train time</button></th>',
    ]
    body = []
    for r in rows:
        cells = [
            f"<td>{_e(r['paper'])}</td>",
            f"<td>{_e(r['table'])}</td>",
            f"<td>{_e(r['dataset'])}</td>",
            f'<td title="{_e(r.get("note", ""))}">{_e(r["method"])}</td>',
            *(f'<td class="num">{_e(r.get(metric_column(m), ""))}</td>' for m in metrics),
            f'<td class="num">{_e(r.get("render_fps", ""))}</td>',
            f"<td>{_e(r.get('train_time', ''))}</td>",
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return [
        "<h2>Paper-reported (other datasets: not comparable, never ranked)</h2>",
        '<p class="note">Numbers copied from the papers (leaderboards/reference/*.csv), measured on their '
        "datasets with their metric code; hover a method for the paper's notes.</p>",
        '<div class="scroll"><table class="sortable" id="reference">',
        "<thead><tr>" + "".join(header) + "</tr></thead>",
        "<tbody>",
        *body,
        "</tbody>",
        "</table></div>",
    ]


# --------------------------------------------------------------------------------------------------
# videos


def video_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a video, read by ffmpeg (imageio-ffmpeg parses its stream header)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    width, height = meta["size"]
    return int(width), int(height)


def _write_videos(
    folder: Path, files: dict[tuple[str, str], RunFile], method_order: list[str]
) -> tuple[int, list[str]]:
    """Copy each test sequence's videos and write its side-by-side group; returns (count, html)."""
    groups: dict[tuple[str, str], dict[str, tuple[RunFile, dict]]] = {}
    for (method, subject), run in files.items():
        sequences = run.results.get("sequences")
        for sequence, entry in sorted(sequences.items() if isinstance(sequences, dict) else []):
            if not isinstance(entry, dict) or not isinstance(entry.get("video"), str):
                continue
            if not isinstance(entry.get("comparison"), list) or not entry["comparison"]:
                entry = {**entry, "comparison": None}
            if (run.path.parent / entry["video"]).is_file():
                groups.setdefault((subject, sequence), {})[method] = (run, entry)
    count, parts = 0, []
    for (subject, sequence), by_method in sorted(groups.items()):
        media = Path("media") / _slug(subject) / _slug(sequence)
        (folder / media).mkdir(parents=True, exist_ok=True)
        methods = sorted(by_method, key=lambda m: (method_order.index(m) if m in method_order else 10**6, m))
        tiles = []
        truth = next(
            (
                (m, by_method[m][0].path.parent / by_method[m][1]["comparison"][0])
                for m in methods
                if by_method[m][1].get("comparison")
                and (by_method[m][0].path.parent / by_method[m][1]["comparison"][0]).is_file()
            ),
            None,
        )
        if truth is not None:
            source_method, source = truth
            shutil.copyfile(source, folder / media / "ground_truth.mp4")
            width, height = video_size(source)
            results = by_method[source_method][0].results
            driven_by = by_method[source_method][1].get("driven_by", sequence)
            cross = results.get("protocol") == "cross-id"
            label = f"driving video ({driven_by})" if cross else "ground truth"
            tiles.append(
                f'<figure class="tile"><div class="crop" style="aspect-ratio: {width // 2} / {height}">'
                f'<video data-master src="{_e(media.as_posix())}/ground_truth.mp4" width="{width}" '
                f'height="{height}" preload="auto" controls playsinline></video></div>'
                f'<figcaption><b>{_e(label)}</b> <span class="muted">(left half of {_e(source_method)}\'s '
                "comparison video; plays the audio)</span></figcaption></figure>"
            )
            count += 1
        for method in methods:
            run, entry = by_method[method]
            name = f"{_slug(method)}.mp4"
            shutil.copyfile(run.path.parent / entry["video"], folder / media / name)
            width, height = video_size(run.path.parent / entry["video"])
            row_metrics = entry.get("metrics", {})
            scores = ", ".join(
                f"{metric_column(k)} {v['value']:.3f}"
                for k, v in row_metrics.items()
                if k in RANK_BY.values() and v.get("status") == "ok" and v.get("value") is not None
            )
            muted = " muted" if truth is not None else ""
            tiles.append(
                f'<figure class="tile"><video src="{_e(media.as_posix())}/{_e(name)}" width="{width}" '
                f'height="{height}" preload="auto" controls playsinline{muted}></video>'
                f"<figcaption><b>{_e(method)}</b>"
                + (
                    ' <span class="badge">oracle</span>'
                    if run.results.get("method_info", {}).get("oracle")
                    else ""
                )
                + (f' <span class="muted">{_e(scores)}</span>' if scores else "")
                + "</figcaption></figure>"
            )
            count += 1
        parts += [
            f'<section class="sync-group" data-subject="{_e(subject)}" data-sequence="{_e(sequence)}">',
            f"<h3>{_e(subject)} · {_e(sequence)}</h3>",
            '<div class="sync-bar" hidden><button type="button">▶ play</button>'
            '<input type="range" min="0" max="0" step="0.01" value="0" aria-label="seek">'
            "<output></output></div>",
            '<div class="tiles">',
            *tiles,
            "</div>",
            "</section>",
        ]
    return count, parts


# --------------------------------------------------------------------------------------------------
# plots


def _write_plots(folder: Path, board: Board, metrics: list[str]) -> list[tuple[str, str]]:
    """Write the board's plots; returns ``[(file name, caption)]``."""
    plots = []
    (folder / "quality_vs_sync.png").write_bytes(render_plot(board))
    plots.append(
        ("quality_vs_sync.png", "Image quality against lip sync (ours filled, paper-reported hollow).")
    )
    reference = load_reference(board.protocol)
    for metric in metrics:
        svg = metric_bars_svg(board, metric, reference)
        if svg is not None:
            name = f"bars_{_slug(metric)}.svg"
            (folder / name).write_bytes(svg)
            plots.append((name, f"{metric_info(metric).label}: mean rows, with the papers' values below."))
    svg = train_time_svg(board, reference)
    if svg is not None:
        (folder / "train_time_vs_quality.svg").write_bytes(svg)
        plots.append(("train_time_vs_quality.svg", "Training time against quality (log time axis)."))
    return plots


def _plots_html(plots: list[tuple[str, str]]) -> list[str]:
    figures = [
        f'<figure><img src="{_e(name)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'
        for name, caption in plots
    ]
    return ["<h2>Plots</h2>", '<div class="plots">', *figures, "</div>"]


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _svg_bytes(figure) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    # svg.hashsalt: matplotlib otherwise salts its clip-path ids with a random uuid (new bytes each run);
    # svg.fonttype none: text stays <text> (searchable, 4x smaller and 2x faster than glyph paths)
    with matplotlib.rc_context({"svg.hashsalt": "gsbench-site", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def _rankable_means(board: Board) -> list[dict[str, str]]:
    rows = [r for r in board.rows if r["row_type"] == "mean" and r["status"] == "ok"]
    return rows or [r for r in board.rows if r["status"] == "ok"]


def _label(row: dict[str, str]) -> str:
    label = row["method"] + (" (oracle)" if row["oracle"] == "yes" else "")
    return label if row["row_type"] == "mean" else f"{label} [{row['subject']}]"


def _reference_label(row: dict[str, str]) -> str:
    dataset = row["dataset"] if len(row["dataset"]) <= 22 else row["dataset"][:21] + "…"
    return f"{row['method']} ({row['paper']} {row['table'].replace('Table ', 'T')}, {dataset})"


def metric_bars_svg(board: Board, metric: str, reference: list[dict[str, str]]) -> bytes | None:
    """Horizontal bars of one metric: our rows (blue, oracle orange), then the papers' values (grey)."""
    column = metric_column(metric)
    ours = [
        (_label(r), float(r[column]), r["oracle"] == "yes") for r in _rankable_means(board) if r.get(column)
    ]
    if not ours:
        return None
    papers = [(_reference_label(r), float(r[column])) for r in reference if r.get(column)]
    info = metric_info(metric)
    labels = [o[0] for o in ours] + [p[0] for p in papers]
    values = [o[1] for o in ours] + [p[1] for p in papers]
    colours = ["tab:orange" if o[2] else "tab:blue" for o in ours] + ["0.65"] * len(papers)
    # margins from the label lengths (tight_layout would draw the 50-odd labels once more)
    left = 0.2 + 0.058 * max(len(label) for label in labels)  # inches: ~0.058 in per 7 pt character
    width, height = left + 4.0, 0.9 + 0.2 * len(labels)
    figure = _figure(width, height)
    axes = figure.add_subplot()
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color=colours, height=0.7)
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_ylim(-0.6, len(labels) - 0.4)
    for y, value in zip(positions, values, strict=True):
        axes.annotate(
            f"{value:.4g}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=6
        )
    if papers:
        axes.axhline(len(papers) - 0.5, color="0.3", linewidth=0.8, linestyle="--")
    axes.set_xlabel(
        f"{info.label} {info.arrow} ({info.direction} is better)"
        + ("; grey: paper-reported, other datasets" if papers else ""),
        fontsize=8,
    )
    axes.set_title(f"{board.dataset} / {board.protocol}: {info.label}", fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    figure.subplots_adjust(
        left=left / width, right=1 - 0.45 / width, bottom=0.5 / height, top=1 - 0.3 / height
    )
    return _svg_bytes(figure)


_DURATION = re.compile(r"^\s*([0-9.]+)\s*(h|min|s)\s*$")


def parse_duration(text: str) -> float | None:
    """Seconds of a paper's training time (``3h``, ``30min``, ``90s``); None when not in that form."""
    match = _DURATION.match(text or "")
    if not match:
        return None
    return float(match.group(1)) * {"h": 3600.0, "min": 60.0, "s": 1.0}[match.group(2)]


def train_time_svg(board: Board, reference: list[dict[str, str]]) -> bytes | None:
    """Training seconds (log x) against the board's quality metric (PSNR, else its ranking metric)."""
    rows = _rankable_means(board)
    quality = next(
        (
            m
            for m in ("psnr", RANK_BY.get(board.protocol, ""))
            if m and any(r.get(metric_column(m)) for r in rows)
        ),
        None,
    )
    if quality is None:
        return None
    column = metric_column(quality)
    ours = [r for r in rows if r.get(column) and r.get("train_s") and float(r["train_s"]) > 0]
    if not ours:
        return None
    papers = [
        (parse_duration(r.get("train_time", "")), float(r[column]), _reference_label(r))
        for r in reference
        if r.get(column) and parse_duration(r.get("train_time", ""))
    ]
    info = metric_info(quality)
    figure = _figure(6.4, 4.8)
    axes = figure.add_subplot()
    for row in ours:
        x, y = float(row["train_s"]), float(row[column])
        oracle = row["oracle"] == "yes"
        axes.scatter([x], [y], marker="^" if oracle else "o", color="tab:orange" if oracle else "tab:blue")
        axes.annotate(_label(row), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if papers:
        axes.scatter(
            [p[0] for p in papers],
            [p[1] for p in papers],
            facecolors="none",
            edgecolors="grey",
            label="paper-reported (other datasets, other hardware)",
        )
        for x, y, label in papers:
            axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, -8), fontsize=6, color="0.4")
        axes.legend(loc="best", fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("training time (s, log scale; ours measured on this run's device)")
    axes.set_ylabel(f"{info.label} {info.arrow}")
    axes.set_title(f"{board.dataset} / {board.protocol}: training time against quality", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return _svg_bytes(figure)


__all__ = ["build_site", "index_results", "metric_bars_svg", "parse_duration", "train_time_svg", "video_size"]
