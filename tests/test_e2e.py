"""End to end: the dashboard in headless Chromium, driven by Python Playwright.

One `streamlit run app.py` server on a free port with its own empty model store,
and one browser tab, shared by the tests in file order: the user's flows of
SPEC.md. Open the dashboard, train first (the other pages need a model), then
reconstruct an uploaded picture, click a point of the latent space, drag a
latent slider, and open the remaining pages. Each flow saves a full-page
screenshot to $AECORE_SCREENSHOTS_DIR (docs/screenshots/ for the README) or a temporary folder.

Skips with the reason when Playwright or Debian's chromium is absent.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from e2e_support import (
    VIEWPORT,
    chromium_browser,
    click_until,
    explained,
    fetch_image,
    image_pixels,
    png_bytes,
    record_console,
    screenshot,
    streamlit_server,
    wait_idle,
    why_no_browser,
)

_reason = why_no_browser()
if _reason:
    pytest.skip(f"browser tests skipped: {_reason}", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

TIMEOUT_MS = 60_000  # page loads import torch in a fresh process: seconds on a busy 2-core box
TRAIN_TIMEOUT_MS = 90_000
EPOCHS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    store = work / "store"  # empty: the model trained in the Train flow is the only one
    store.mkdir()
    with streamlit_server(store, work) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with chromium_browser() as browser:
        context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
        context.set_default_timeout(TIMEOUT_MS)
        tab = context.new_page()
        yield tab
        context.close()


@pytest.fixture(scope="module")
def console(page):
    """The tab's console messages and uncaught errors, shown when a test fails."""
    return record_console(page)


@pytest.fixture(scope="module")
def flow():
    """What one flow leaves for the next: the trained model's name and the run's id."""
    return {}


def open_page(page, server, path: str, title: str) -> None:
    """Load a page by its URL and wait until its title is shown and its script has finished."""
    page.goto(server.url + path)
    expect(page.get_by_role("heading", name=title, exact=False).first).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page, TIMEOUT_MS)


def no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def flow_name() -> str:
    """The running test's name, for its failure screenshot."""
    return os.environ.get("PYTEST_CURRENT_TEST", "failure").split("::")[-1].split(" ")[0]


def need_model(flow) -> str:
    if "model" not in flow:
        pytest.skip("the Train flow did not save a model, so this page has nothing to explore")
    return flow["model"]


def test_first_visit_straight_to_a_page_url_gets_the_apps_navigation(page, server, console):
    """On a fresh server, a first request for /data once ran pages/data.py alone, under a
    sidebar listing every file of pages/ ("app", "common", ...) and without app.py's layout."""
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/data", "Data")
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_role("link", name="Latent space")).to_be_visible()
        expect(nav.get_by_role("link", name=re.compile(r"^(app|common|latent)$"))).to_have_count(0)
        no_exception(page)


def test_home_shows_title_device_and_quick_start(page, server, console):
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/", "Autoencoder Studio")
        device = page.get_by_test_id("stMetric").filter(has_text="Compute device")
        expect(device).to_be_visible()
        expect(device.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^(CPU|GPU)$"))
        expect(page.get_by_role("heading", name="Quick start")).to_be_visible()
        expect(page.get_by_role("button", name="Train a demo model")).to_be_enabled()
        # The sidebar is st.navigation's, with every page of app.py.
        nav = page.get_by_test_id("stSidebarNav")
        for title in ("Home", "Train", "Reconstruct", "Latent space", "Generate", "Compare"):
            expect(nav.get_by_role("link", name=title)).to_be_visible()
        no_exception(page)
        screenshot(page, "home")


def test_train_a_preset_to_completion_and_reattach(page, server, console, flow):
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/train", "Train")
        preset = page.get_by_role("combobox", name="Preset")
        preset.click()
        preset.fill("vanilla")
        page.get_by_role("option", name=re.compile(r"^vanilla\b")).click()
        expect(preset).to_have_value(re.compile(r"^vanilla\b"))
        dataset = page.get_by_role("combobox", name="Dataset")
        if dataset.input_value() != "digits":  # vanilla's own MNIST is the default where its files are present
            dataset.click()
            page.get_by_role("option", name="digits", exact=True).click()
        expect(dataset).to_have_value("digits")
        # Small batches rather than the preset's one batch of 2048 per epoch: still a
        # second or two, and the screenshots show digits, not grey blobs. A code of 16
        # values for 64 pixels, so that the model has to compress (PCA-16 is no identity).
        for key, value in (("tr_epochs", EPOCHS), ("tr_batch", 32), ("tr_lr", 0.003), ("tr_latent_vanilla", 16)):
            box = page.locator(f".st-key-{key} input")
            box.fill(str(value))
            box.press("Enter")
            expect(box).to_have_value(str(value))
        wait_idle(page, TIMEOUT_MS)

        page.get_by_role("button", name="Train", exact=True).click()
        progress = page.get_by_text(f"done: epoch {EPOCHS}/{EPOCHS}").first  # a fragment rerun may briefly show two
        expect(progress).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
        saved = (
            page.get_by_test_id("stAlertContentSuccess").filter(has_text="Saved as").first
        )  # a fragment rerun may briefly show two
        expect(saved).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
        flow["model"] = re.search(r"Saved as '([^']+)'", saved.inner_text()).group(1)
        match = re.search(r"[?&]job=([\w-]+)", page.url)
        assert match, f"the run's id is not in the URL: {page.url}"
        flow["job"] = match.group(1)
        wait_idle(page, TIMEOUT_MS)
        chart = page.locator(".st-key-tr_loss_chart")
        expect(chart).to_have_count(1)
        expect(chart.get_by_text("validation loss")).to_be_visible()  # a legend entry: the curves are drawn
        no_exception(page)
        screenshot(page, "train")

        # A reload is a new browser session: the run is found again through the URL.
        page.reload()
        expect(page.get_by_text(f"done: epoch {EPOCHS}/{EPOCHS}").first).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_role("heading", name=flow["model"])).to_be_visible()
        assert f"job={flow['job']}" in page.url
        no_exception(page)


def digit_png() -> bytes:
    """A 40x60 RGB picture of a dark '7' on white: what a user photographs or draws in a paint program."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (40, 60), "white")
    ImageDraw.Draw(im).line([(8, 10), (32, 10), (18, 52)], fill=(20, 20, 20), width=7)
    return png_bytes(im)


def test_upload_an_image_and_see_its_reconstruction(page, server, console, flow):
    need_model(flow)
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/reconstruct", "Reconstruct")
        expect(page.locator(".st-key-_pick_model_name input")).to_have_value(flow["model"])
        page.get_by_role("tab", name=re.compile("Upload")).click()
        page.locator(".st-key-rec_upload input[type='file']").set_input_files(
            files=[{"name": "seven.png", "mimeType": "image/png", "buffer": digit_png()}]
        )
        result = page.get_by_role("tabpanel", name=re.compile("Upload"))
        expect(result.get_by_text("seven.png", exact=True)).to_be_visible()
        rec = result.get_by_test_id("stImage").filter(has_text="reconstruction")
        expect(rec).to_be_visible()
        expect(result.get_by_text(re.compile(r"^inverted \(dark on light"))).to_be_visible()
        wait_idle(page, TIMEOUT_MS)
        # The model sees light strokes on black, like its training digits: the
        # white page became the dark background.
        model_input = image_pixels(
            page, result.get_by_test_id("stImage").filter(has_text="model input").locator("img"), TIMEOUT_MS
        )
        assert model_input.mean() < 100, f"the model input is not inverted (mean {model_input.mean():.0f})"
        reconstruction = image_pixels(page, rec.locator("img"), TIMEOUT_MS)
        assert reconstruction.shape == model_input.shape
        assert reconstruction.std() > 5, "the reconstruction is a flat image"
        no_exception(page)
        screenshot(page, "reconstruct")


def test_click_a_latent_point_to_decode_it(page, server, console, flow):
    need_model(flow)
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/latent", "Latent space")
        expect(page.get_by_text("Click a point in the scatter to decode it.")).to_be_visible()
        points = page.locator(".st-key-lat_scatter .scatterlayer .point")
        expect(points.first).to_be_attached()
        assert points.count() > 100, f"only {points.count()} points in the scatter"
        points.nth(points.count() // 2).click(force=True)  # force: neighbouring markers overlap
        item = page.get_by_role("heading", name=re.compile(r"^Item \d+: \d$"))
        expect(item).to_be_visible()
        decoded = page.get_by_test_id("stImage").filter(has_text="decoded code")
        expect(decoded).to_be_visible()
        expect(page.get_by_test_id("stMetric").filter(has_text="Reconstruction MSE")).to_be_visible()
        expect(page.get_by_text("Click a point in the scatter to decode it.")).to_have_count(0)
        wait_idle(page, TIMEOUT_MS)
        no_exception(page)
        page.mouse.move(5, 5)  # the hover label would hide the scatter in the screenshot
        screenshot(page, "latent")


def test_replay_how_the_code_space_formed(page, server, console, flow):
    need_model(flow)
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/latent", "Latent space")
        expect(page.get_by_role("heading", name="How this code space formed")).to_be_visible()
        slider = page.locator(".st-key-lat_replay_frame input[type='range']")

        def title(label: str):  # the figure's title for a frame (a rerun may briefly show the old figure too)
            titles = page.locator(".st-key-lat_replay_replay_fig .gtitle")
            return titles.filter(has_text=re.compile(rf"validation items, {re.escape(label)}$")).first

        last = slider.get_attribute("max")
        expect(slider).to_have_value(last)  # it opens on the trained model
        expect(slider).to_have_attribute("aria-valuetext", f"epoch {EPOCHS}")
        expect(title(f"epoch {EPOCHS}")).to_be_visible()
        slider.focus()
        page.keyboard.press("Home")
        expect(title("epoch 0")).to_be_visible(timeout=TIMEOUT_MS)  # the untrained model's codes
        page.keyboard.press("End")
        for _ in range(4):  # Play from four frames before the end: a shorter wait
            page.keyboard.press("ArrowLeft")
        start = str(int(last) - 4)
        expect(slider).to_have_value(start)
        wait_idle(page, TIMEOUT_MS)
        page.get_by_role("button", name="Play", exact=False).click()
        expect(slider).not_to_have_value(start, timeout=TIMEOUT_MS)  # the play button moves the slider...
        expect(slider).to_have_value(last, timeout=TIMEOUT_MS)  # ...to the end, where it stops
        expect(title(f"epoch {EPOCHS}")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_role("button", name="Play", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(6):
            page.keyboard.press("ArrowRight")
        expect(slider).to_have_value("6")
        label = slider.get_attribute("aria-valuetext")
        assert label not in ("epoch 0", f"epoch {EPOCHS}"), label
        expect(title(label)).to_be_visible(timeout=TIMEOUT_MS)
        wait_idle(page, TIMEOUT_MS)
        no_exception(page)
        page.mouse.move(5, 5)
        screenshot(page, "replay")


def test_move_a_latent_slider_and_see_the_decoded_image_change(page, server, console, flow):
    need_model(flow)
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/generate", "Generate")
        panel = page.get_by_role("tabpanel", name="Sliders")
        decoded = panel.get_by_test_id("stImage").filter(has_text="decoded").locator("img")
        expect(decoded).to_be_visible()
        # read once idle, so that a src the page load's own rerun replaces is not mistaken for the slider's change
        before_src, before = fetch_image(page, decoded, TIMEOUT_MS)
        # The first slider shown (gen_z<i>: a code of more than 16 values shows its 16 busiest).
        slider = panel.locator("[class*='st-key-gen_z'] input[type='range']").first
        start = slider.input_value()
        slider.focus()
        for _ in range(10):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("End")  # to the top of its range: a change no decoder can hide in rounding
        expect(slider).not_to_have_value(start)
        expect(decoded).not_to_have_attribute("src", before_src)
        after = image_pixels(page, decoded, TIMEOUT_MS)  # re-read if a later rerun of the slider replaced it
        assert after.shape == before.shape
        change = np.abs(after.astype(int) - before.astype(int))
        assert change.max() > 0 and change.mean() > 0.1, (
            f"the decoded image barely changed when the slider moved from {start} to "
            f"{slider.input_value()}: mean |change| {change.mean():.3f}"
        )
        no_exception(page)
        screenshot(page, "generate")


OTHER_PAGES = [
    ("/data", "Data", "data"),
    ("/weights", "Weights", "weights"),
    ("/anomalies", "Anomalies", "anomalies"),
    ("/compare", "Compare", "compare"),
    ("/sequences", "Sequences", "sequences"),
]


@pytest.mark.parametrize(("path", "title", "shot"), OTHER_PAGES, ids=[s for _, _, s in OTHER_PAGES])
def test_other_pages_render_with_the_trained_model(page, server, console, flow, path, title, shot):
    need_model(flow)
    with explained(server, page, console, flow_name()):
        open_page(page, server, path, title)
        no_exception(page)
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
        screenshot(page, shot)


def test_pause_step_resume_and_stop_a_run(page, server, console, flow):
    """Last in the file: its model becomes the newest, which the pickers above would open on.
    The controls are found inside their own keys: while a script runs, Streamlit's
    header shows a "Stop" button of its own (it stops the script, not the run)."""
    with explained(server, page, console, flow_name()):
        open_page(page, server, "/train", "Train")
        dataset = page.get_by_role("combobox", name="Dataset")
        if dataset.input_value() != "digits":
            dataset.click()
            page.get_by_role("option", name="digits", exact=True).click()
        for key, value in (("tr_epochs", 5000), ("tr_batch", 32)):
            box = page.locator(f".st-key-{key} input")
            box.fill(str(value))
            box.press("Enter")
            expect(box).to_have_value(str(value))
        page.locator(".st-key-tr_name_vanilla_digits input").fill("paused-run")
        page.get_by_role("button", name="Train", exact=True).click()
        expect(page.get_by_text(re.compile(r"^running: epoch")).first).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
        paused = page.get_by_text(re.compile(r"^paused: epoch")).first
        click_until(page.locator(".st-key-tr_pause").get_by_role("button", name="Pause"), paused)
        where = page.get_by_text(re.compile(r"batches into this run")).first
        done = int(re.search(r"(\d+) batches into this run", where.inner_text()).group(1))
        step_by = page.get_by_role("combobox", name="Step by")
        step_by.click()
        page.get_by_role("option", name="10 batches", exact=True).click()
        # exactly ten batches later it is paused again
        stepped = page.get_by_text(re.compile(rf"\b{done + 10} batches into this run")).first
        click_until(page.locator(".st-key-tr_step").get_by_role("button", name="Step"), stepped)
        expect(paused).to_be_visible(timeout=TIMEOUT_MS)
        running = page.get_by_text(re.compile(r"^running: epoch")).first
        click_until(page.locator(".st-key-tr_resume").get_by_role("button", name="Resume"), running)
        stopped = page.get_by_text(re.compile(r"^stopped: epoch")).first
        click_until(page.locator(".st-key-tr_stop").get_by_role("button", name="Stop"), stopped)
        saved = page.get_by_test_id("stAlertContentSuccess").filter(has_text="Saved as 'paused-run'").first
        expect(saved).to_be_visible(timeout=TIMEOUT_MS)
        no_exception(page)
