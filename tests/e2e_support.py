"""What the browser tests need around Playwright: a `streamlit run` server on a
free port, Debian's headless Chromium, the "app is idle" wait, and reading back
the image bytes the browser was given.

Nothing here imports Playwright at module level, so the test module can skip
with a reason when it or the browser is absent.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
from conftest import wait_until

REPO = Path(__file__).resolve().parents[1]
# The README's pictures are retaken with AECORE_SCREENSHOTS_DIR=docs/screenshots; an
# ordinary test run writes them to a temporary folder, leaving the checkout clean.
SCREENSHOTS = Path(
    os.environ.get("AECORE_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "aecore-e2e-screenshots"
).resolve()
VIEWPORT = {"width": 1400, "height": 900}

# Debian's chromium (`.ci/run` installs it with apt); Playwright's own browser
# download (`playwright install`) is never used.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system chromium, or None when this machine has none."""
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def why_no_browser() -> str | None:
    """None when the browser tests can run, else the reason they cannot."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python Playwright is not installed (pip install -r requirements-dev.txt)"
    if chromium_path() is None:
        return "no chromium on PATH or at /usr/bin/chromium (Debian: apt-get install chromium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `streamlit run app.py` child process and where its output goes."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no server log: {e})"
        return "\n".join(lines[-n:])


@contextmanager
def streamlit_server(store: Path, workdir: Path, start_timeout: float = 60, env: dict | None = None):
    """Run the dashboard on a free local port with AECORE_STORE=``store``; stop it afterwards.

    Output goes to a log file, never a pipe: a server whose pipe reader died
    blocks (or raises BrokenPipeError) on its next print and outlives the test.
    """
    port = free_port()
    log = workdir / "streamlit.log"
    env = {**os.environ, "AECORE_STORE": str(store), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            return urllib.request.urlopen(server.url + "/_stcore/health", timeout=2).read() == b"ok"
        except OSError:
            return False

    try:
        wait_until(healthy, start_timeout, lambda: f"a healthy streamlit server:\n{server.log_tail()}", interval_s=0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def chromium_browser():
    """Headless Debian chromium driven by the sync Playwright API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, timeout: float = 60_000) -> None:
    """Connected and no script run in progress (from Streamlit's own e2e conftest).

    While a fragment polls, the script state flips on every poll: there, wait on
    content with ``expect`` instead."""
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout
    )
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout
    )


def fetch_image(page, img_locator, timeout: float = 60_000) -> tuple[str, np.ndarray]:
    """The ``src`` of an <img> once the app is idle, and the pixels of the PNG the
    server sends for it, as (H, W, C) uint8.

    Each rerun gives a changed image a new /media/... URL and the server forgets
    the old one, so a ``src`` read while a rerun (or a slider's debounced rerun
    that had not started yet) is drawing can answer 404: then this waits for the
    app to be idle and for the page to show a different ``src``, and fetches that,
    until ``timeout`` (ms). Pages whose fragment polls never stay idle: not for them."""
    from PIL import Image
    from playwright.sync_api import expect

    deadline = time.monotonic() + timeout / 1000
    failed: list[str] = []
    while True:
        left_ms = max(1.0, (deadline - time.monotonic()) * 1000)
        wait_idle(page, left_ms)
        src = img_locator.get_attribute("src", timeout=left_ms)
        assert src, "the image has no src"
        response = page.request.get(urljoin(page.url, src))
        if response.ok:
            return src, np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
        failed.append(f"GET {src}: {response.status}")
        if response.status != 404 or time.monotonic() >= deadline:
            raise AssertionError(f"could not fetch the image the page shows: {'; '.join(failed)}")
        # a 404 for a src still shown once idle can only clear when the page shows another
        expect(img_locator).not_to_have_attribute("src", src, timeout=max(1.0, (deadline - time.monotonic()) * 1000))


def image_pixels(page, img_locator, timeout: float = 60_000) -> np.ndarray:
    """The pixels of the image an <img> shows once the app is idle (see :func:`fetch_image`)."""
    return fetch_image(page, img_locator, timeout)[1]


def screenshot(page, name: str) -> Path:
    """A full-page PNG of the current page under SCREENSHOTS (docs/screenshots/ for the README).

    Streamlit scrolls its main block inside the window, so a "full page" shot of
    the window would stop at the viewport: the viewport is stretched to the
    content's height for the shot and restored afterwards."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer], body')]"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height, VIEWPORT["height"]), 4000))})
    try:
        wait_layout_settled(page)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


# Resolves once the page's height and every chart's and image's box have stayed the
# same for ``frames`` animation frames in a row, or at ``timeout`` ms with false.
_LAYOUT_SETTLED_JS = """
([frames, timeout]) => new Promise((resolve) => {
  const end = performance.now() + timeout;
  const boxes = '[data-testid=stPlotlyChart], [data-testid=stVegaLiteChart], [data-testid=stImage], canvas, svg';
  const shape = () => JSON.stringify([
    document.querySelector('[data-testid=stMain]')?.scrollHeight ?? document.body.scrollHeight,
    [...document.querySelectorAll(boxes)].map((e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; }),
  ]);
  let last = shape(), same = 0;
  const tick = () => {
    const now = shape();
    same = now === last ? same + 1 : 0;
    last = now;
    if (same >= frames) resolve(true);
    else if (performance.now() > end) resolve(false);
    else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})
"""


def wait_layout_settled(page, frames: int = 10, timeout: float = 5_000) -> bool:
    """Wait for charts to re-layout after a viewport change, as a condition, not a fixed time.

    Returns whether it settled. Only screenshots use it, and a picture for the
    README taken while a live chart is still moving is no test failure, so the
    deadline ends the wait instead of failing."""
    return bool(page.evaluate(_LAYOUT_SETTLED_JS, [frames, timeout]))


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def record_console(page) -> list[str]:
    """Keep the page's console messages and uncaught errors, for failure messages."""
    lines: list[str] = []
    page.on("console", lambda m: lines.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"pageerror: {e}"))
    return lines


@contextmanager
def explained(server: Server, page=None, console: list[str] | None = None, name: str = "failure"):
    """Turn any failure inside into an AssertionError that carries what the page
    showed (exceptions, a screenshot next to the server log, the browser console)
    and the tail of the server's log."""
    try:
        yield
    except Exception as e:
        shown = ""
        if page is not None:
            try:
                texts = page.get_by_test_id("stException").all_inner_texts()
                shown = "\n--- exceptions on the page ---\n" + "\n".join(texts) if texts else ""
                shot = server.log.with_name(f"{name}.png")
                page.screenshot(path=str(shot))
                shown += f"\n--- page url: {page.url}; what it showed: {shot}"
            except Exception as inner:  # the page itself may be gone
                shown = f"\n(could not read the page: {inner})"
        if console:
            shown += "\n--- browser console (tail) ---\n" + "\n".join(console[-15:])
        raise AssertionError(f"{type(e).__name__}: {e}{shown}\n--- server log (tail) ---\n{server.log_tail()}") from e


def click_until(button, shown, tries: int = 3, wait_ms: int = 30_000) -> None:
    """Click ``button`` until ``shown`` is visible.

    A fragment on a timer (a run's panel redraws every 1.5 s) replaces its elements
    while it draws, and for a moment the old copy of a button sits beside the new one;
    a click that lands on the copy being replaced is lost, for a user as for a test
    (the user clicks again). Each try first waits ``wait_ms`` for the effect, so a
    click that was only slow on a busy machine is never repeated."""
    from playwright.sync_api import expect

    for attempt in range(tries):
        button.first.click()
        try:
            expect(shown).to_be_visible(timeout=wait_ms)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise
