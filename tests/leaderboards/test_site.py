"""The static leaderboard site: pages, links, copied media, determinism, atomic replacement, and a real
headless Chromium that renders the table, sorts it, loads the videos and keeps them in sync."""

from __future__ import annotations

import csv
import hashlib
import html.parser
import wave
from pathlib import Path

import numpy as np
import pytest

from gsbench.errors import ConfigError
from gsbench.io import write_json
from leaderboards.publish import Board, load_reference, publish
from leaderboards.site import MARKER, build_site, metric_bars_svg, parse_duration, train_time_svg

FPS = 25.0
WIDTH, HEIGHT, FRAMES = 64, 48, 12
# method -> (psnr per subject a, b; lpips; oracle; colour of its frames)
METHODS = {
    "good": ((30.0, 32.0), 0.1, False, (40, 160, 40)),
    "bad": ((20.0, 22.0), 0.2, False, (160, 40, 40)),
    "cheat": ((50.0, 52.0), 0.05, True, (40, 40, 160)),
}
SUBJECTS = ("a", "b")


def _tone(path: Path) -> None:
    t = np.arange(int(16000 * FRAMES / FPS)) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(pcm.tobytes())


def write_run(runs: Path, method: str, subject: str, audio: Path, protocol: str = "mono-front") -> Path:
    """One job folder as benchmark.runner writes it: results.json, videos/<seq>.mp4, comparison/<seq>.mp4.
    cross-id: driven by the other subject's test sequence, scored by LSE-C only."""
    from benchmark.runner import write_video

    (psnrs, lpips, oracle, colour) = METHODS[method]
    psnr = psnrs[SUBJECTS.index(subject)]
    run = runs / "ds" / protocol / method / subject
    other = SUBJECTS[1 - SUBJECTS.index(subject)]
    sequence = f"{other if protocol == 'cross-id' else subject}_t01"
    ramp = np.linspace(0, 255, FRAMES).astype(np.uint8)
    gt = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    gt[..., 0] = ramp[:, None, None]  # the ground truth brightens over time
    pred = np.broadcast_to(np.array(colour, np.uint8), gt.shape).copy()
    write_video(run / "videos" / f"{sequence}.mp4", pred, FPS, audio)
    write_video(run / "comparison" / f"{sequence}.mp4", np.concatenate([gt, pred], axis=2), FPS, audio)

    def entry(name: str, value: float, direction: str, weight_id: str | None = None) -> dict:
        return {
            "value": value,
            "status": "ok",
            "reason": "",
            "direction": direction,
            "weight_id": weight_id,
            "details": {},
        }

    metrics = {
        "psnr": entry("psnr", psnr, "higher"),
        "lpips": entry("lpips", lpips, "lower", "lpips-alex:ab"),
    }
    if protocol == "cross-id":
        skipped = {**entry("psnr", 0.0, "higher"), "value": None, "status": "skipped", "reason": "cross-id"}
        metrics = {"psnr": skipped, "lse_c": entry("lse_c", 5.0 + psnr / 10, "higher", "syncnet-v2:ab")}
    path = run / "results.json"
    write_json(
        path,
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": "ok",
            "error": None,
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": list(SUBJECTS)},
            "protocol": protocol,
            "method": method,
            "subject": subject,
            "budget": "smoke",
            "seed": 0,
            "method_info": {"oracle": oracle, "audio_encoder": f"mfcc50-{method}"},
            "config_hash": "c" * 64,
            "compositing": {"rule": "alpha * head + (1 - alpha) * plate"},
            "metrics": metrics,
            "sequences": {
                sequence: {
                    "num_frames": FRAMES,
                    "driven_by": sequence,
                    "metrics": metrics,
                    "video": f"videos/{sequence}.mp4",
                    "comparison": [f"comparison/{sequence}.mp4", f"comparison/{sequence}.png"],
                }
            },
            "weights": {k: v["weight_id"] for k, v in metrics.items() if v["weight_id"]},
            "timing": {
                "train_seconds": {"good": 100.0, "bad": 10.0, "cheat": 1000.0}[method],
                "render_fps": 5.0,
            },
            "num_gaussians": 1234,
            "device": "cpu",
            "gsbench_version": "0.1.0",
            "git_commit": "abc",
        },
    )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site-runs")
    audio = root / "tone.wav"
    _tone(audio)
    for method in METHODS:
        for subject in SUBJECTS:
            write_run(root / "runs", method, subject, audio)
    for subject in SUBJECTS:
        write_run(root / "runs", "good", subject, audio, protocol="cross-id")
    return root / "runs"


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site-out")
    boards = publish(runs, out / "leaderboards")
    index = build_site(boards, runs, out / "site")
    assert index == out / "site" / "index.html"
    return out / "site"


class Tables(html.parser.HTMLParser):
    """Every <table id=...>: its rows as (row attributes, [cell text]); and every <video src>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict, list[str]]]] = {}
        self.videos: list[str] = []
        self.links: list[str] = []
        self._table = self._row = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", ""), [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = (attrs, [])
            self._table.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "video":
            self.videos.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Tables:
    tables = Tables()
    tables.feed(path.read_text(encoding="utf-8"))
    return tables


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_board_page_tables_links_and_videos(site, runs):
    overview = parse(site / "index.html")
    assert "ds/mono-front/index.html" in overview.links
    cross_row, board_row = overview.tables["boards"]
    assert board_row[1][:6] == ["ds", "mono-front", "psnr ↑", "3", "2", "good"]  # leader: best non-oracle
    assert cross_row[1][:6] == ["ds", "cross-id", "lse_c ↑", "1", "2", "good"]

    page = site / "ds" / "mono-front" / "index.html"
    board = parse(page)
    means = {attrs["data-method"]: (attrs, cells) for attrs, cells in board.tables["means"]}
    assert set(means) == set(METHODS)
    # rank column first: good (mean PSNR 31) ranks 1, bad (21) 2; the oracle (51) is marked, never ranked
    assert means["good"][1][0] == "1" and means["bad"][1][0] == "2"
    assert means["cheat"][1][0] == "—" and "oracle" in means["cheat"][0]["class"].split()
    assert means["cheat"][1][1] == "cheatoracle"  # the badge follows the name
    assert means["good"][1][3] == "31.0000"  # psnr ↑ column: mean of 30 and 32
    assert len(board.tables["subjects"]) == len(METHODS) * len(SUBJECTS)
    # per-row details: audio encoder, weight ids, compositing rule, budget
    text = page.read_text(encoding="utf-8")
    for needle in ("mfcc50-good", "lpips=lpips-alex:ab", "alpha * head + (1 - alpha) * plate", "smoke"):
        assert needle in text
    # publish's notes for the markdown are on the page too: the weights behind the metrics, the conventions
    assert "Weights: lpips: <code>lpips-alex</code>." in text and "<summary>Conventions:" in text
    # the paper-reported rows come apart, in their own table
    assert len(board.tables["reference"]) == len(load_reference("mono-front"))
    # every results link resolves inside the site to a byte copy of that job's results.json
    results_links = sorted(link for link in board.links if link.endswith("results.json"))
    assert len(set(results_links)) == len(METHODS) * len(SUBJECTS)
    for link in set(results_links):
        _, method, subject, _ = link.split("/")
        source = runs / "ds" / "mono-front" / method / subject / "results.json"
        assert (page.parent / link).read_bytes() == source.read_bytes()
    # per test sequence: ground truth (the comparison video) + every method's render, copied
    assert len(board.videos) == len(SUBJECTS) * (1 + len(METHODS))
    for src in board.videos:
        subject, sequence, name = src.split("/")[1:]
        run = runs / "ds" / "mono-front"
        if name == "ground_truth.mp4":
            assert (page.parent / src).read_bytes() == (
                run / "good" / subject / "comparison" / f"{sequence}.mp4"
            ).read_bytes()
        else:
            method = name.removesuffix(".mp4")
            assert (page.parent / src).read_bytes() == (
                run / method / subject / "videos" / f"{sequence}.mp4"
            ).read_bytes()
    for name in (
        "quality_vs_sync.png",
        "bars_psnr.svg",
        "bars_lpips.svg",
        "train_time_vs_quality.svg",
        "leaderboard.csv",
    ):
        assert (page.parent / name).is_file(), name
    for asset in ("site.css", "sort.js", "sync.js"):
        assert (site / "assets" / asset).is_file()


def test_cross_id_board_shows_the_driving_video(site):
    page = site / "ds" / "cross-id" / "index.html"
    board = parse(page)
    means = {attrs["data-method"]: cells for attrs, cells in board.tables["means"]}
    assert means["good"][:4] == ["1", "good", "mean", "8.1000"]  # lse_c ↑: mean of 5 + 30/10 and 5 + 32/10
    text = page.read_text(encoding="utf-8")
    assert "psnr ↑" not in text.split('id="means"')[1].split("</table>")[0]  # skipped metrics: no column
    # subject a is driven by b's test sequence: the left half of its comparison video is b's frames
    assert "driving video (b_t01)" in text and "media/a/b_t01/ground_truth.mp4" in board.videos


def test_site_is_deterministic_and_replaced_whole(site, runs, tmp_path):
    boards = publish(runs, tmp_path / "leaderboards")
    again = tmp_path / "again"  # an earlier site, with a page of a board that no longer exists
    stale = again / "ds" / "old-protocol" / "index.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("left over")
    (again / MARKER).write_text("")
    build_site(boards, runs, again)
    assert tree_digest(again) == tree_digest(site)  # same results -> same bytes, file for file
    assert not stale.exists()  # a site is replaced as a whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again")]  # no temp folder left
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(ConfigError, match="not a gsbench site"):
        build_site(boards, runs, precious)
    assert (precious / "thesis.tex").read_text() == "keep me" and not (precious / MARKER).exists()


def test_plots_are_deterministic_svgs_with_the_papers_values(site):
    with (site / "ds" / "mono-front" / "leaderboard.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    board = Board("ds", "mono-front", rows, Path("x.csv"), Path("x.md"), Path("x.png"))
    reference = load_reference("mono-front")
    first = metric_bars_svg(board, "psnr", reference)
    assert first == (site / "ds" / "mono-front" / "bars_psnr.svg").read_bytes()  # same rows, same bytes
    assert b"<dc:date>" not in first
    # one bar per mean row (blue; the oracle orange) and one grey bar per paper row with a PSNR
    with_psnr = [r for r in reference if r["psnr ↑"]]
    bars = {colour: first.count(f"fill: {colour}".encode()) for colour in ("#1f77b4", "#ff7f0e", "#a6a6a6")}
    assert bars == {"#1f77b4": 2, "#ff7f0e": 1, "#a6a6a6": len(with_psnr)}
    train = train_time_svg(board, reference)
    assert train == (site / "ds" / "mono-front" / "train_time_vs_quality.svg").read_bytes()
    # our three methods plus the papers' rows with a training time and a PSNR, each labelled
    timed = [r for r in reference if r["train_time"] and r["psnr ↑"]]
    assert (
        train.count(b"<text") >= len(METHODS) + len(timed) and b"good" in train and b"HiCoDe (Ours)" in train
    )
    assert [parse_duration(t) for t in ("3h", "30min", "90s", "", "n/a")] == [
        10800.0,
        1800.0,
        90.0,
        None,
        None,
    ]


def test_cli_prints_the_site(runs, tmp_path):
    from click.testing import CliRunner

    from benchmark.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "leaderboard",
            "publish",
            "--runs",
            str(runs),
            "--out",
            str(tmp_path / "lb"),
            "--site",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"site: {tmp_path / 's' / 'index.html'}" in result.output
    assert (tmp_path / "s" / "ds" / "mono-front" / "index.html").is_file()


# --------------------------------------------------------------------------------------------------
# a real browser


@pytest.fixture(scope="module")
def chromium():
    from leaderboards.browser import Chromium, find_chromium

    if find_chromium() is None:
        pytest.skip(
            "no Chromium on this machine (apt-get install -y chromium; scripts/setup.sh installs it as root, "
            "or set GSBENCH_CHROMIUM=/path/to/chrome)"
        )
    with Chromium(width=1280, height=900) as browser:
        yield browser


def _methods_in_order(browser, table: str) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{table} tbody tr'), tr => tr.dataset.method)"
    )


def test_chromium_renders_sorts_and_plays_in_sync(site, chromium):
    chromium.goto((site / "ds" / "mono-front" / "index.html").as_uri())
    # the table renders: one visible row per method, with a non-zero height
    heights = chromium.evaluate(
        "Array.from(document.querySelectorAll('#means tbody tr'), tr => tr.getBoundingClientRect().height)"
    )
    assert len(heights) == len(METHODS) and min(heights) > 0
    assert _methods_in_order(chromium, "means") == ["good", "bad", "cheat"]  # as published: by rank
    # clicking psnr ↑ sorts best (highest) first, a second click flips it
    chromium.click("#means th[data-metric='psnr'] button")
    assert _methods_in_order(chromium, "means") == ["cheat", "good", "bad"]
    assert (
        chromium.evaluate("document.querySelector(\"#means th[data-metric='psnr']\").ariaSort")
        == "descending"
    )
    chromium.click("#means th[data-metric='psnr'] button")
    assert _methods_in_order(chromium, "means") == ["bad", "good", "cheat"]
    # lpips ↓ sorts lowest first
    chromium.click("#means th[data-metric='lpips'] button")
    assert _methods_in_order(chromium, "means") == ["cheat", "good", "bad"]
    # the videos load (codec supported: a decoded frame of the written size)
    videos = chromium.wait_for_videos(timeout=20)
    assert len(videos) == len(SUBJECTS) * (1 + len(METHODS))
    for video in videos:
        assert video["error"] is None and video["readyState"] >= 2, video
        expected = 2 * WIDTH if video["src"].endswith("ground_truth.mp4") else WIDTH
        assert (video["videoWidth"], video["videoHeight"]) == (expected, HEIGHT), video
    # sync: seeking the ground truth moves every render of that sequence; play/pause follow
    state = chromium.evaluate(
        """(async () => {
          const group = document.querySelector('.sync-group');
          const master = group.querySelector('video[data-master]');
          const others = Array.from(group.querySelectorAll('video:not([data-master])'));
          const seeked = new Promise(r => master.addEventListener('seeked', r, {once: true}));
          master.currentTime = 0.3;
          await seeked;
          await new Promise(r => setTimeout(r, 200));
          const afterSeek = others.map(v => v.currentTime);
          group.querySelector('.sync-bar button').click();
          await new Promise(r => setTimeout(r, 200));
          const playing = others.map(v => !v.paused);
          group.querySelector('.sync-bar button').click();
          await new Promise(r => setTimeout(r, 100));
          return {afterSeek, playing, paused: others.map(v => v.paused), muted: others.map(v => v.muted),
                  barShown: !group.querySelector('.sync-bar').hidden, controls: master.controls};
        })()"""
    )
    assert state["afterSeek"] == pytest.approx([0.3] * len(METHODS), abs=0.05)
    assert all(state["playing"]) and all(state["paused"]) and all(state["muted"])
    assert state["barShown"] and not state["controls"]
    exceptions = [e for e in chromium._events if e["method"] == "Runtime.exceptionThrown"]
    assert not exceptions, exceptions
