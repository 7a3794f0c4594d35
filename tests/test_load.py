"""Many users at once against one server, in headless Chromium.

The full test (marked slow; `.venv/bin/python -m pytest -m slow tests/test_load.py`) runs ten
browser sessions for five minutes: two train while eight explore (sliders, uploads, page
switches), and one more session starts a run and closes its tab. CI runs the same test
shorter (four sessions, one minute). Both check that no page shows an exception, that no run
and no model is lost, that the abandoned run is stopped and saved, and that the server's memory
stays bounded.
"""

from __future__ import annotations

import io
import itertools
import re
import time
from pathlib import Path

import pytest
from conftest import wait_until
from e2e_support import VIEWPORT, chromium_browser, click_until, streamlit_server, wait_idle, why_no_browser

_reason = why_no_browser()
if _reason:
    pytest.skip(f"browser tests skipped: {_reason}", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from aecore.store import ModelStore  # noqa: E402

TIMEOUT_MS = 90_000  # two runs train on two cores while the pages load: be patient
ABANDON_S = 45  # the server stops a run nobody looks at after this long (AECORE_ABANDON_AFTER_S)
RSS_LIMIT_MB = 3000  # the stated bound for the server's resident memory under this load


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def digit_png() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (30, 45), "white")
    ImageDraw.Draw(im).line([(5, 8), (25, 8), (12, 40)], fill="black", width=4)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def no_exception(page, where: str) -> None:
    n = page.locator("[data-testid='stException']").count()
    assert n == 0, f"{where}: {page.locator('[data-testid=stException]').first.inner_text()[:800]}"


def start_run(page, url: str, name: str) -> str:
    """Start a long run of vanilla on digits from the Train page; returns its job id."""
    page.goto(url + "/train")
    wait_idle(page, TIMEOUT_MS)
    for key, value in (("tr_epochs", 10_000), ("tr_batch", 64)):
        box = page.locator(f".st-key-{key} input")
        box.fill(str(value))
        box.press("Enter")
        expect(box).to_have_value(str(value))
    box = page.locator(".st-key-tr_name_vanilla_digits input")
    for _ in range(3):  # text typed while a rerun is still drawing can be replaced by the server's value
        wait_idle(page, TIMEOUT_MS)
        box.fill(name)
        box.press("Enter")
        wait_idle(page, TIMEOUT_MS)
        if box.input_value() == name:
            break
    expect(box).to_have_value(name)
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"^(queued|preparing|running):"))).to_be_visible(timeout=TIMEOUT_MS)
    m = re.search(r"[?&]job=([\w-]+)", page.url)
    assert m, page.url
    return m.group(1)


class Explorer:
    """One user clicking through the pages; each step is one action and its check."""

    def __init__(self, page, url: str, offset: int):
        self.page, self.url = page, url
        steps = [
            self.generate,
            self.reconstruct,
            self.simple("/latent"),
            self.simple("/data"),
            self.simple("/anomalies"),
            self.simple("/weights"),
            self.simple("/compare"),
            self.simple("/"),
        ]
        self.steps = itertools.islice(itertools.cycle(steps), offset, None)
        self.done = 0

    def step(self) -> None:
        next(self.steps)()
        self.done += 1

    def simple(self, path: str):
        def go():
            self.page.goto(self.url + path)
            wait_idle(self.page, TIMEOUT_MS)
            no_exception(self.page, path)

        return go

    def generate(self) -> None:
        self.page.goto(self.url + "/generate")
        wait_idle(self.page, TIMEOUT_MS)
        slider = self.page.get_by_role("slider").first
        slider.focus()
        for _ in range(3):
            self.page.keyboard.press("ArrowRight")
        wait_idle(self.page, TIMEOUT_MS)
        no_exception(self.page, "/generate")

    def reconstruct(self) -> None:
        self.page.goto(self.url + "/reconstruct")
        wait_idle(self.page, TIMEOUT_MS)
        self.page.get_by_role("tab", name=re.compile("Upload")).click()
        self.page.locator(".st-key-rec_upload input[type='file']").set_input_files(
            files=[{"name": "seven.png", "mimeType": "image/png", "buffer": digit_png()}]
        )
        expect(self.page.get_by_text(re.compile("reconstruction"))).not_to_have_count(0, timeout=TIMEOUT_MS)
        wait_idle(self.page, TIMEOUT_MS)
        no_exception(self.page, "/reconstruct")


def run_load(tmp_path: Path, sessions: int, trainers: int, seconds: float) -> dict:
    from aecore.runs.pipeline import train
    from aecore.runs.request import TrainRequest

    store_dir = tmp_path / "store"
    store = ModelStore(store_dir)
    tm, _, _ = train(TrainRequest(preset="vanilla", dataset="digits", epochs=5, latent_dim=2, device="cpu"))
    store.save("explore-me", tm)  # something for the explorers to explore from the first second

    env = {"AECORE_ABANDON_AFTER_S": str(ABANDON_S)}
    report: dict = {"rss_mb": []}
    with streamlit_server(store_dir, tmp_path, env=env) as server, chromium_browser() as browser:

        def new_page():
            ctx = browser.new_context(viewport=VIEWPORT)
            ctx.set_default_timeout(TIMEOUT_MS)
            return ctx, ctx.new_page()

        try:
            # A run whose tab is closed: the server must stop and save it after ABANDON_S.
            ctx, gone = new_page()
            start_run(gone, server.url, "abandoned")
            ctx.close()
            closed_at = time.monotonic()

            runners = []
            for i in range(trainers):
                ctx, page = new_page()
                runners.append((page, f"load-run-{i}", start_run(page, server.url, f"load-run-{i}")))
            explorers = []
            for i in range(sessions - trainers):
                _, page = new_page()
                explorers.append(Explorer(page, server.url, offset=i))

            t0 = time.monotonic()
            report["rss_mb"].append(rss_mb(server.proc.pid))
            rounds = 0
            while time.monotonic() - t0 < seconds:
                for e in explorers:
                    e.step()
                    if time.monotonic() - t0 >= seconds:
                        break
                rounds += 1
                # the trainers switch away and come back by URL, as a user does
                for page, name, job in runners:
                    if rounds % 2:  # away through the sidebar (same session), back by URL (a reload)
                        page.get_by_role("link", name="Latent space").click()
                    else:
                        page.goto(f"{server.url}/train?job={job}")
                        expect(page.get_by_role("heading", name=name)).to_be_visible(timeout=TIMEOUT_MS)
                        expect(page.get_by_text(re.compile(r"^running: epoch"))).to_be_visible(timeout=TIMEOUT_MS)
                    wait_idle(page, TIMEOUT_MS) if rounds % 2 else None
                    no_exception(page, page.url)
                report["rss_mb"].append(rss_mb(server.proc.pid))
            report["explorer_steps"] = [e.done for e in explorers]
            report["rounds"] = rounds

            # Every run is still there and still running; then each is stopped and saved.
            for page, name, job in runners:
                page.goto(f"{server.url}/train?job={job}")
                expect(page.get_by_text(re.compile(r"^running: epoch"))).to_be_visible(timeout=TIMEOUT_MS)
                # a fragment rerun may briefly show two of the button and of the status line
                stopped = page.get_by_text(re.compile(r"^stopped: epoch")).first
                click_until(page.locator(".st-key-tr_stop button"), stopped)
                saved = page.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Saved as '{name}'").first
                expect(saved).to_be_visible(timeout=TIMEOUT_MS)

            # The abandoned run: stopped by the server's janitor and saved as far as it got.
            wait_until(
                lambda: store.exists("abandoned"),
                max(0.0, closed_at + ABANDON_S + 60 - time.monotonic()),
                f"the janitor to stop and save the run whose tab closed (abandon after {ABANDON_S} s)",
                interval_s=1.0,
            )
            report["abandoned_saved_after_s"] = round(time.monotonic() - closed_at, 1)
        except Exception:
            print(server.log_tail(80))
            raise
        log = server.log.read_text(errors="replace")
    report["server_log_tracebacks"] = log.count("Traceback")
    report["models"] = sorted(ModelStore(store_dir).names())
    if "abandoned" in report["models"]:
        report["abandoned_status"] = ModelStore(store_dir).read_config("abandoned").get("status")
    return report


def check(report: dict, trainers: int) -> None:
    assert report["server_log_tracebacks"] == 0
    expected = {"explore-me", "abandoned", *(f"load-run-{i}" for i in range(trainers))}
    assert expected <= set(report["models"]), report["models"]
    assert report["abandoned_status"] == "stopped", report
    rss = report["rss_mb"]
    assert max(rss) < RSS_LIMIT_MB, rss
    # bounded: no steady growth after the first third of the run (jobs and caches warmed up)
    third = max(1, len(rss) // 3)
    assert max(rss[-third:]) <= 1.5 * max(rss[:third]) + 200, rss
    assert all(n >= 2 for n in report["explorer_steps"]), report


def test_short_load_four_sessions_one_minute(tmp_path):
    report = run_load(tmp_path, sessions=4, trainers=1, seconds=60)
    print(report)
    check(report, trainers=1)


@pytest.mark.slow
def test_full_load_ten_sessions_five_minutes(tmp_path):
    report = run_load(tmp_path, sessions=10, trainers=2, seconds=300)
    print(report)
    check(report, trainers=2)
