"""The dashboard through Streamlit's AppTest: the Home page and its one-click demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import new_app, store_env

from aecore.device import describe_device
from aecore.presets import PRESETS
from aecore.store import ModelStore

APP = Path(__file__).resolve().parents[1] / "app.py"
DEMO = "demo-vanilla-digits"


@pytest.fixture(scope="module")
def app_store(tmp_path_factory):
    """A store of this module's own, empty at the start, where the page's ModelStore() lands."""
    with store_env(tmp_path_factory.mktemp("app_store")) as root:
        yield root


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def trained_app(app_store):
    at = new_app()
    at.run()
    assert not at.exception, at.exception
    at.slider(key="home_epochs").set_value(3)
    at.button(key="home_train").click()
    at.run()
    from pages._job_panel import registry  # the page's registry (cache_resource: one per process)

    job = registry().get(at.session_state["_run_home_job"])
    assert job is not None and job.join(120), "the demo run did not finish in 2 minutes"
    at.run()
    return at


def test_home_page_runs_and_shows_the_device(app_store):
    at = new_app()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Autoencoder Studio"]
    m = metrics(at)
    device = describe_device()  # "CPU: 2 cores, ..." or "GPU: <name>"
    kind, _, detail = device.partition(": ")
    shown = [m["Compute device"], *(c.value for c in at.caption)]
    assert m["Compute device"] in (device, kind)
    assert any(detail in text for text in shown), shown
    assert m["Presets"] == str(len(PRESETS))
    assert m["Saved models"] == str(len(ModelStore(app_store).names()))
    assert at.slider(key="home_epochs").value == 30
    assert not at.get("image")  # nothing trained yet: no reconstruction grid


def test_demo_button_trains_shows_results_and_saves(trained_app, app_store):
    at = trained_app
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.get("progress")[0].proto.text.startswith("done: epoch 3/3")  # the slider's value reached the run
    assert at.query_params["home_job"]  # a reload finds the run
    tm = ModelStore(app_store).load(DEMO)
    assert len(tm.history) == 3
    m = metrics(at)
    assert float(m["Test MSE"]) == pytest.approx(tm.metrics["test_mse"], abs=5e-5)
    assert any(label.startswith("PCA-") for label in m)
    assert len(at.get("image")) >= 1  # originals over reconstructions
    # saved in the store the page uses, and loadable
    store = ModelStore(app_store)
    assert DEMO in store.names()
    back = store.load(DEMO)
    assert [h["epoch"] for h in back.history] == [1, 2, 3]
    assert back.meta.preset == "vanilla" and back.meta.dataset == "digits"
    # the saved-models table below lists it
    assert any(DEMO in df.value["model"].tolist() for df in at.dataframe if "model" in df.value.columns)


def test_saved_model_count_is_current_after_training(trained_app, app_store):
    """The header says how many models are saved; right after the demo saved one, it must count it."""
    assert metrics(trained_app)["Saved models"] == str(len(ModelStore(app_store).names()))
