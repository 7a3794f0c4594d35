"""The Sequences page through AppTest: the task, typing a sequence, scoring, and a
background training job started from the page's form."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import new_app, open_page, store_env, wait_until

from aecore.explore import inference
from aecore.explore.sequences import expected_output
from aecore.store import ModelStore

SEQ = "seq-reverse"


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def errors(at) -> list[str]:
    return texts(at.error)


def markdown(at) -> str:
    return "\n".join(texts(at.markdown))


def try_sequence(text: str):
    at = open_page("sequences", model_name=SEQ)
    at.text_input(key="seq_input").input(text)
    at.run()
    assert not at.exception, texts(at.exception)
    return at


def test_renders_without_a_sequence_model(tmp_path):
    with store_env(tmp_path / "empty"):
        at = open_page("sequences")
    assert not at.exception, texts(at.exception)
    assert [t.value for t in at.title] == ["Sequences"]
    assert "reverse order" in markdown(at)  # the task is explained
    assert any("No saved model of sequence data" in i for i in texts(at.info))
    assert at.button(key="seq_train") is not None  # training is offered even with no model
    with pytest.raises(KeyError):
        at.button(key="seq_stop")  # no run, so no run controls
    with pytest.raises(KeyError):
        at.text_input(key="seq_input")  # nothing to try without a model


def test_a_typed_sequence_shows_prediction_and_per_token_correctness(page_env):
    at = try_sequence("12, 7 33 4 9 41")
    assert not errors(at), errors(at)
    tm = ModelStore(page_env).load(SEQ)
    ids = np.array([[12, 7, 33, 4, 9, 41]])
    pred = inference.reconstruct(tm, ids)[0]
    expected = expected_output(ids[0], 3)
    assert expected.tolist() == [33, 7, 12]
    md = markdown(at)
    predicted_line = next(line for line in md.splitlines() if line.startswith("**Predicted**"))
    expected_line = next(line for line in md.splitlines() if line.startswith("**Expected**"))
    assert "**33**" in expected_line and expected_line.index("**33**") < expected_line.index("**12**")
    # every predicted token is shown in order, green with ✓ where it equals the expected one, red ✗ elsewhere
    chips = [
        f":green-background[**{p}** ✓]" if p == e else f":red-background[**{p}** ✗]"
        for p, e in zip(pred.tolist(), expected.tolist())
    ]
    assert predicted_line.endswith(" ".join(chips)), predicted_line
    m = {x.label: x.value for x in at.metric}
    assert m["Tokens right"] == f"{int((pred == expected).sum())} / 3"
    assert m["Whole sequence"] == ("right" if (pred == expected).all() else "wrong")


@pytest.mark.parametrize(
    "text, message",
    [
        ("12 7 x3 4 9 41", "'x3' is not an integer"),
        ("12 7 33 4 9 77", "77 is outside it"),
        ("0 7 33 4 9 41", "start token"),
        ("12 7 33", "exactly 6 numbers; you typed 3"),
    ],
)
def test_an_invalid_sequence_gives_a_specific_error(page_env, text, message):
    at = try_sequence(text)
    assert any(message in e for e in errors(at)), errors(at)
    assert "**Predicted**" not in markdown(at)


def test_random_example_fills_the_input_and_is_answered(page_env):
    at = open_page("sequences", model_name=SEQ)
    at.button(key="seq_random").click()
    at.run()
    assert not at.exception, texts(at.exception)
    value = at.text_input(key="seq_input").value
    tokens = [int(t) for t in value.split()]
    assert len(tokens) == 6 and all(1 <= t <= 50 for t in tokens)
    assert "**Predicted**" in markdown(at) and not errors(at)


def test_measure_scores_fresh_sequences(page_env):
    at = open_page("sequences", model_name=SEQ)
    at.number_input(key="seq_eval_n").set_value(500)
    at.button(key="seq_eval").click()
    at.run()
    assert not at.exception, texts(at.exception)
    name, n, acc, xs, ts, ps = at.session_state["seq_eval_result"]
    assert name == SEQ and n == 500
    m = {x.label: x.value for x in at.metric}
    assert m["Whole sequences right"] == f"{acc['sequence_accuracy']:.1%}"
    assert m["Tokens right"] == f"{acc['token_accuracy']:.1%}"
    # the fixture model trained one short epoch: far better than chance (1/50) per token, not perfect
    assert 0.1 < acc["token_accuracy"] <= 1.0
    assert (ts == expected_output(xs, 3)).all()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 8


def _job(at):
    from pages._job_panel import registry  # the page imported it; cache_resource gives the same registry here

    return registry().get(at.session_state["seq_job"])


def test_training_from_the_form_runs_in_the_background_and_saves(tmp_path):
    with store_env(tmp_path / "store") as root:
        at = open_page("sequences")
        at.number_input(key="seq_n").set_value(500)
        at.number_input(key="seq_epochs").set_value(1)
        at.text_input(key="seq_name").input("seq-from-page")
        at.button(key="seq_train").click()
        at.run()
        assert not at.exception, texts(at.exception)
        assert not errors(at), errors(at)
        job_id = at.session_state["seq_job"]
        assert at.query_params["seq_job"] == job_id  # a reload finds the job through the URL
        job = _job(at)
        assert job is not None and job.request.limit == 500 and job.request.epochs == 1
        assert job.join(120), "the training job did not finish in 2 minutes"
        assert job.view().status == "done", job.view().message
        at.run()
        assert not at.exception, texts(at.exception)
        assert any("Saved as 'seq-from-page'" in s.value for s in at.success), texts(at.success)
        progress = at.get("progress")[0].proto
        assert progress.value == 100 and "epoch 1/1" in progress.text
        assert not at.button(key="seq_train").disabled and at.button(key="seq_stop").disabled
        assert "seq-from-page" in ModelStore(root).names()
        # the new model is selected in part 2 and answers a typed sequence
        assert at.selectbox(key="_pick_model_name").value == "seq-from-page"
        at.text_input(key="seq_input").input("1 2 3 4 5 6")
        at.run()
        assert not at.exception and "**Predicted**" in markdown(at)
        # a reload (a new session with only the URL) re-attaches to the same job
        again = new_app()
        again.query_params["seq_job"] = job_id
        again.run()
        again.switch_page("pages/sequences.py")
        again.run()
        assert not again.exception, texts(again.exception)
        assert again.session_state["seq_job"] == job_id
        assert any("seq-from-page" in h.value for h in again.subheader), texts(again.subheader)


def test_stop_button_stops_a_running_job(tmp_path):
    with store_env(tmp_path / "store") as root:
        at = open_page("sequences")
        at.number_input(key="seq_n").set_value(100_000)
        at.number_input(key="seq_epochs").set_value(5)
        at.button(key="seq_train").click()
        at.run()
        job = _job(at)
        wait_until(lambda: job.view().status == "running", 60, lambda: f"the job to run (it is {job.view().status})")
        at.run()  # the page now sees a running job: Stop enabled, Train disabled
        assert not at.button(key="seq_stop").disabled and at.button(key="seq_train").disabled
        # A reload (a new session with only the URL) adopts the running job: it keeps it alive.
        again = new_app()
        again.query_params["seq_job"] = job.id
        again.run()
        again.switch_page("pages/sequences.py")
        again.run()
        assert not again.exception, texts(again.exception)
        assert job.id in again.session_state["_my_jobs"]
        at.button(key="seq_stop").click()
        at.run()
        assert job.join(60)
        v = job.view()
        assert v.status == "stopped" and v.epoch <= 1, (v.status, v.message)
        at.run()
        assert not at.exception, texts(at.exception)
        assert at.button(key="seq_stop").disabled and not at.button(key="seq_train").disabled
        assert at.get("progress")[0].proto.text.startswith("stopped"), at.get("progress")[0].proto.text
        # the part of the epoch trained before the stop is kept, marked partial
        saved = ModelStore(root).load(v.saved_as)
        assert [h["partial"] for h in saved.history] == [True]
