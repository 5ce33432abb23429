"""Headless Chromium driven over the DevTools protocol on a pipe (no Playwright, no websocket library).

Used by the site's browser test and to screenshot the site for the README::

    python -m leaderboards.browser screenshot SITE/index.html docs/leaderboard-site.png

Chromium is started with ``--remote-debugging-pipe``: it reads DevTools commands from fd 3 and writes
replies and events to fd 4, each a JSON object followed by a NUL byte (the transport Playwright and
Puppeteer use). One page target is attached in flat mode; commands then carry its ``sessionId``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from gsbench.errors import DependencyError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium binary: ``$GSBENCH_CHROMIUM``, else the first of :data:`CANDIDATES` on PATH."""
    explicit = os.environ.get("GSBENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def _above_four(fd: int) -> int:
    """A duplicate of ``fd`` numbered 10 or more (``fd`` is closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class BrowserError(RuntimeError):
    """Chromium exited, timed out, or a DevTools command failed."""


class Chromium:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900) -> None:
        executable = executable or find_chromium()
        if executable is None:
            raise DependencyError(
                "no Chromium found (looked for $GSBENCH_CHROMIUM, " + ", ".join(CANDIDATES) + ")",
                fix="apt-get install -y chromium (scripts/setup.sh does it when run as root)",
            )
        self._profile = tempfile.mkdtemp(prefix="gsbench-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends go above fd 4, so that placing them on 3 and 4 cannot overwrite one another
        to_browser_r, from_browser_w = _above_four(to_browser_r), _above_four(from_browser_w)
        flags = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            f"--window-size={width},{height}",
            # as Playwright does by default: the sandbox cannot start as root or in most containers, and
            # this browser opens only pages we generated
            "--no-sandbox",
        ]
        # fds 3 and 4 are where Chromium expects the pipe; a shell puts them there
        self._process = subprocess.Popen(
            [
                shutil.which("bash") or "/bin/bash",  # dash cannot redirect fds above 9
                "-c",
                f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
                executable,
                *flags,
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        self.session: str | None = None
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except Exception:
            self.close()
            raise

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "(still running)"
        return self._process.stderr.read().decode(errors="replace")[-2000:]

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise BrowserError(f"Chromium exited: {self._stderr_tail()}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """Run one DevTools command (on the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium exited: {self._stderr_tail()}") from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == name:
                    return self._events.pop(index)
            self._events.append(self._read_message(deadline))

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        self._events = [e for e in self._events if e["method"] != "Page.loadEventFired"]
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """Value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def wait_for_videos(self, timeout: float = 10.0) -> list[dict]:
        """Wait until every <video> has its current frame (``loadeddata``) or ``timeout`` passed; return
        each video's ``{src, readyState, videoWidth, videoHeight, error}``."""
        script = """(async () => {
          const videos = Array.from(document.querySelectorAll("video"));
          const loaded = v => v.readyState >= 2 ? Promise.resolve() : new Promise(r => {
            v.addEventListener("loadeddata", r, {once: true});
            v.addEventListener("error", r, {once: true});
          });
          const late = new Promise(r => setTimeout(r, MILLISECONDS));
          await Promise.race([Promise.all(videos.map(loaded)), late]);
          return videos.map(v => ({src: v.getAttribute("src"), readyState: v.readyState,
            videoWidth: v.videoWidth, videoHeight: v.videoHeight, error: v.error ? v.error.code : null}));
        })()"""
        return self.evaluate(
            script.replace("MILLISECONDS", str(int(timeout * 1000))),
            timeout=timeout + 30,
        )

    def screenshot(self, full_page: bool = False) -> bytes:
        """PNG of the viewport (or of the whole page)."""
        return base64.b64decode(
            self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})["data"]
        )

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._process.stderr:
            self._process.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m leaderboards.browser")
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("screenshot", help="PNG of a page (e.g. a board of the site)")
    shot.add_argument("page", type=Path)
    shot.add_argument("png", type=Path)
    shot.add_argument("--width", type=int, default=1280)
    shot.add_argument("--height", type=int, default=900)
    shot.add_argument("--wait-videos", type=float, default=10.0, help="seconds to wait for video frames")
    args = parser.parse_args(argv)
    from gsbench.io import write_bytes

    with Chromium(width=args.width, height=args.height) as browser:
        browser.goto(args.page.resolve().as_uri())
        browser.wait_for_videos(args.wait_videos)
        write_bytes(args.png, browser.screenshot())
    print(args.png)


if __name__ == "__main__":
    main()
