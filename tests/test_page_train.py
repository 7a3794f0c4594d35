"""The Train page through AppTest: start a run, watch it finish, find it again by URL,
design a model, continue a saved one, and get clear messages for bad choices."""

from __future__ import annotations

import pytest
from conftest import new_app, open_page, store_env, wait_until

from aecore.store import ModelStore


@pytest.fixture
def empty_store(tmp_path):
    with store_env(tmp_path / "store") as root:
        yield root


def progress_text(at) -> str:
    return at.get("progress")[0].proto.text if at.get("progress") else ""


def rerun_until(at, statuses, timeout, what) -> str:
    """run_every does not fire in AppTest: rerun until the progress shows one of ``statuses``."""

    def shown():
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return progress_text(at).split(":")[0] in statuses

    wait_until(shown, timeout, lambda: f"{what} (the progress says {progress_text(at)!r})", interval_s=0.3)
    return progress_text(at)


def wait_done(at, timeout=90.0):
    return rerun_until(at, ("done", "stopped", "diverged", "failed", "early_stopped"), timeout, "the run to end")


def start(at, preset="vanilla", epochs=2, name=None):
    at.selectbox(key="tr_preset").set_value(preset).run()
    # The form's values travel with its Train button, as a browser submits them: no run in between.
    at.number_input(key="tr_epochs").set_value(epochs)
    if name:
        at.text_input(key=f"tr_name_{preset}_digits").set_value(name)
    at.button(key="tr_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_renders_with_presets_and_built_in_datasets(empty_store):
    at = open_page("train")
    assert not at.exception
    assert any(o.startswith("vanilla ") for o in at.selectbox(key="tr_preset").options)
    at.selectbox(key="tr_preset").set_value("vanilla").run()
    ds = at.selectbox(key="tr_dataset_vanilla")
    assert "digits" in ds.options and ds.value in ds.options
    assert not at.button(key="tr_start").disabled
    with pytest.raises(KeyError):
        at.button(key="tr_stop")  # no run, so no run controls
    assert any("No run selected" in i.value for i in at.info)


def test_train_to_completion_saves_the_model_and_the_url_finds_the_run(empty_store):
    at = start(open_page("train"), epochs=3, name="page-run")
    job_id = at.query_params["job"]
    assert job_id and at.session_state["tr_job"] == job_id
    assert at.button(key="tr_start").disabled  # one run per form at a time
    text = wait_done(at)
    assert text == "done: epoch 3/3"
    assert any("Saved as 'page-run'" in s.value for s in at.success)
    tm = ModelStore(empty_store).load("page-run")
    assert len(tm.history) == 3
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Train loss"]) > 0 and labels["Images/s"] != "0"
    spec = at.get("plotly_chart")[0].proto.spec
    assert "train loss (epoch)" in spec and "validation loss" in spec
    assert at.get("image"), "the reconstruction grid is missing"
    assert not at.button(key="tr_start").disabled  # the form is back

    # A fresh session (a reload) with the run id in the URL shows the same run.
    again = new_app()
    again.query_params["job"] = job_id
    again.run()
    again.switch_page("pages/train.py")
    again.query_params["job"] = job_id
    again.run()
    assert not again.exception
    assert again.get("progress")[0].proto.text == "done: epoch 3/3"
    assert any("page-run" in s.value for s in again.subheader)


def test_an_unknown_run_id_in_the_url_is_explained(empty_store):
    at = new_app()
    at.run()
    at.switch_page("pages/train.py")
    at.query_params["job"] = "doesnotexist"
    at.run()
    assert not at.exception
    assert any("not known to this server" in w.value for w in at.warning)


def test_stop_ends_a_run_early(empty_store):
    at = start(open_page("train"), epochs=5000, name="to-stop")
    rerun_until(at, ("running",), 60, "the run to start")
    assert not at.button(key="tr_stop").disabled
    at.button(key="tr_stop").click().run()
    assert wait_done(at).startswith("stopped")


def test_bad_choices_get_a_message_and_start_nothing(empty_store):
    at = open_page("train")
    at.selectbox(key="tr_preset").set_value("vanilla").run()
    at.text_input(key="tr_name_vanilla_digits").set_value("../../etc")
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert any("invalid model name" in e.value for e in at.error)
    assert "job" not in at.query_params
    from aecore.device import bf16_support, pick_device

    if not bf16_support(pick_device("cpu"))[0]:
        at.text_input(key="tr_name_vanilla_digits").set_value("ok-name")
        at.selectbox(key="tr_precision").set_value("bf16")
        at.button(key="tr_start").click().run()
        assert any("bf16 precision is refused" in e.value for e in at.error)
        assert "job" not in at.query_params


def test_design_your_own_architecture(empty_store):
    at = open_page("train")
    at.selectbox(key="tr_preset").set_value("vanilla").run()
    at.toggle(key="tr_custom").set_value(True).run()
    hidden = "tr_m_vanilla_digits_dense_hidden"
    at.text_input(key=hidden).set_value("32, x")
    at.button(key="tr_start").click().run()
    assert any("whole numbers" in e.value for e in at.error)
    assert "job" not in at.query_params  # nothing started
    at.text_input(key=hidden).set_value("48")
    at.selectbox(key="tr_m_vanilla_digits_dense_loss.recon").set_value("bce")
    at.number_input(key="tr_m_vanilla_digits_dense_corruption.level").set_value(0.2)
    at.selectbox(key="tr_m_vanilla_digits_dense_corruption.kind").set_value("mask")
    at.number_input(key="tr_epochs").set_value(2)
    at.text_input(key="tr_name_vanilla_digits").set_value("mine")
    at.button(key="tr_start").click().run()
    assert any("parameters" in c.value for c in at.caption)
    assert wait_done(at) == "done: epoch 2/2"
    cfg = ModelStore(empty_store).read_config("mine")["model"]
    assert cfg["hidden"] == [48] and cfg["loss"]["recon"] == "bce"
    assert cfg["corruption"] == {"kind": "mask", "level": 0.2, "clip": False}


def test_continue_a_saved_model(empty_store):
    at = start(open_page("train"), epochs=2, name="grow")
    wait_done(at)
    at.radio(key="tr_mode").set_value("Continue a saved model").run()
    at.selectbox(key="tr_resume").set_value("grow").run()
    at.number_input(key="tr_more").set_value(2)
    at.button(key="tr_start").click().run()
    assert wait_done(at) == "done: epoch 4/4"
    assert len(ModelStore(empty_store).load("grow").history) == 4


def test_any_page_of_the_session_keeps_its_run_alive(empty_store):
    from pages._job_panel import registry

    at = start(open_page("train"), epochs=5000, name="kept")
    job = registry().get(at.session_state["tr_job"])
    try:
        # backdated, so that the check below does not depend on the clock's resolution
        job.last_seen = before = job.last_seen - 1.0
        at.switch_page("pages/data.py")
        at.run()
        assert not at.exception
        assert job.last_seen > before  # the Data page's run touched it: its browser is still there
        assert job.view().active
    finally:
        job.stop()
        job.join(30)


def test_out_of_range_hyper_parameters_are_refused_before_training(empty_store):
    at = start(open_page("train"), epochs=1, name="base")
    wait_done(at)
    at.radio(key="tr_mode").set_value("Continue a saved model").run()
    at.text_input(key="tr_resume_lr").set_value("abc")
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert any("check the form" in e.value for e in at.error)
    at.text_input(key="tr_resume_lr").set_value("-1")
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert any("learning rate must be a number above 0" in e.value for e in at.error), [e.value for e in at.error]
    assert len(ModelStore(empty_store).load("base").history) == 1  # nothing trained


def test_the_typed_name_is_the_saved_name_and_an_empty_one_gets_a_unique_default(empty_store):
    at = open_page("train")
    at.selectbox(key="tr_preset").set_value("vanilla").run()
    box = "tr_name_vanilla_digits"
    at.text_input(key=box).set_value("my-name")
    at.number_input(key="tr_epochs").set_value(1)
    at.button(key="tr_start").click().run()  # the name travels with the button (one form)
    wait_done(at)
    assert ModelStore(empty_store).exists("my-name")
    assert at.text_input(key=box).value == ""  # the next run gets a new name, not this one again
    at.number_input(key="tr_epochs").set_value(1)
    at.button(key="tr_start").click().run()
    wait_done(at)
    names = ModelStore(empty_store).names()
    assert len(names) == 2 and any(n.startswith("vanilla-digits-") for n in names), names


def test_a_continued_model_refuses_a_change_it_cannot_take(empty_store):
    from aecore.runs.jobs import JobRegistry
    from aecore.runs.request import TrainRequest

    at = start(open_page("train"), epochs=1, name="fixed")
    wait_done(at)
    reg = JobRegistry(store_root=str(empty_store))
    with pytest.raises(Exception, match="code size 3"):
        reg.submit(TrainRequest(preset="vanilla", dataset="digits", epochs=1, latent_dim=3), resume_from="fixed")


def replay_spec(at) -> dict:
    """The replay's figure: the one chart whose title names a frame's epoch."""
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if "validation items, epoch" in str(s["layout"].get("title", ""))]
    assert found, [str(s["layout"].get("title")) for s in specs]
    return found[0]


def test_pause_step_resume_stop_and_replay_from_the_page(empty_store):
    from pages._job_panel import registry

    at = start(open_page("train"), epochs=5000, name="to-pause")
    job = registry().get(at.session_state["tr_job"])
    rerun_until(at, ("running",), 60, "the run to start")
    at.button(key="tr_pause").click().run()
    assert rerun_until(at, ("paused",), 60, "the pause").startswith("paused: epoch")
    assert not at.button(key="tr_step").disabled and not at.button(key="tr_stop").disabled
    before = job.view().steps[-1]["step"]
    at.selectbox(key="tr_step_n").set_value("10 batches")
    at.button(key="tr_step").click().run()
    wait_until(
        lambda: job.view().paused and job.view().steps[-1]["step"] > before,
        60,
        lambda: f"ten batches and a pause ({job.view().status}, step {job.view().steps[-1]['step']})",
    )
    assert job.view().steps[-1]["step"] == before + 10
    at.run()  # the page as it is now: paused again, so Resume is offered
    at.button(key="tr_resume").click().run()
    rerun_until(at, ("running",), 60, "the run to go on")
    at.button(key="tr_stop").click().run()
    assert wait_done(at).startswith("stopped")
    # the replay: the epoch slider picks the frame the scatter and its title show
    slider = at.select_slider(key="tr_frame")
    assert slider.label == "Epoch" and len(slider.options) >= 2
    slider.set_value(0).run()
    first = replay_spec(at)
    assert "epoch 0" in str(first["layout"]["title"])
    at.select_slider(key="tr_frame").set_value(len(slider.options) - 1).run()
    last = replay_spec(at)
    assert last["layout"]["title"] != first["layout"]["title"]
    assert last["data"][0]["x"] != first["data"][0]["x"]  # other codes, drawn on the same axes
    assert last["layout"]["xaxis"]["range"] == first["layout"]["xaxis"]["range"]
