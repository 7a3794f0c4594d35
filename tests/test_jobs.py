"""The job registry the dashboard trains through: runs, queues, stops, saves."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import wait_until

from aecore.errors import ConfigError, StoreError
from aecore.runs.jobs import JobRegistry
from aecore.runs.pipeline import default_name
from aecore.runs.request import TrainRequest
from aecore.store import ModelStore


def req(epochs=2, **kw) -> TrainRequest:
    return TrainRequest(
        preset="vanilla", dataset="digits", epochs=epochs, latent_dim=kw.pop("latent_dim", 8), device="cpu", **kw
    )


@pytest.fixture
def reg(tmp_path):
    return JobRegistry(store_root=str(tmp_path / "store"))


def test_a_job_trains_reports_progress_and_saves(reg, tmp_path):
    job = reg.submit(req(3), "first", snapshot_every_s=0.0)
    assert job.join(60)
    v = job.view()
    assert v.status == "done", v.message
    assert (v.epoch, v.epochs) == (3, 3)
    assert [h["epoch"] for h in v.history] == [1, 2, 3]
    assert all(h["val_loss"] is not None for h in v.history)
    steps = [s["step"] for s in v.steps]
    assert steps == sorted(steps) and len(steps) >= 3
    assert v.snapshot is not None and v.snapshot.reconstructions.shape == v.snapshot.originals.shape
    assert v.saved_as == "first" and "Saved as 'first'" in v.message
    tm = ModelStore(tmp_path / "store").load("first")
    assert len(tm.history) == 3 and tm.metrics["test_mse"] > 0
    assert v.progress == 1.0


def test_one_slot_makes_the_second_job_wait_and_say_for_whom(tmp_path):
    reg = JobRegistry(store_root=str(tmp_path), cpu_slots=1)
    a = reg.submit(req(30), "a")
    b = reg.submit(req(1), "b")
    wait_until(lambda: b.view().status == "queued", 30, lambda: f"'b' to queue behind 'a' (it is {b.view().status})")
    vb = b.view()
    assert vb.status == "queued" and "'a'" in vb.message and "cpu" in vb.message, vb.message
    assert a.view().status in ("preparing", "running")
    a.stop()
    assert a.join(60) and b.join(60)
    assert a.view().status == "stopped" and b.view().status == "done"
    assert ModelStore(tmp_path).exists("b")


def test_a_stop_while_queued_never_starts(tmp_path):
    reg = JobRegistry(store_root=str(tmp_path), cpu_slots=1)
    a = reg.submit(req(30), "a")
    b = reg.submit(req(1), "b")
    b.stop()
    a.stop()
    assert a.join(60) and b.join(60)
    assert b.view().status == "stopped" and "before it started" in b.view().message
    assert not ModelStore(tmp_path).exists("b")


def test_stop_ends_within_moments_and_keeps_what_was_learnt(reg, tmp_path):
    job = reg.submit(req(10_000), "long")
    # stopped once it has learnt something: the first batch of steps relayed back
    wait_until(lambda: job.view().steps, 60, lambda: f"the first training steps (the job is {job.view().status})")
    t = time.perf_counter()
    job.stop()
    assert job.join(30)
    assert time.perf_counter() - t < 10
    v = job.view()
    assert v.status == "stopped" and v.saved_as == "long"
    assert ModelStore(tmp_path / "store").load("long").meta.status == "stopped"


def test_bad_choices_are_refused_before_a_thread_starts(reg):
    before = threading.active_count()
    with pytest.raises(ConfigError, match="learning rate"):
        reg.submit(req(lr=-1.0), "x")
    with pytest.raises(StoreError, match="invalid model name"):
        reg.submit(req(), "../escape")
    assert reg.jobs() == [] and threading.active_count() == before


def test_an_existing_name_is_refused_unless_overwriting(reg):
    assert reg.submit(req(1), "same").join(60)
    with pytest.raises(StoreError, match="already exists"):
        reg.submit(req(1), "same")
    again = reg.submit(req(1), "same", overwrite=True)
    assert again.join(60) and again.view().saved_as == "same"


def test_two_runs_racing_for_one_name_keep_both_models(reg, tmp_path):
    a = reg.submit(req(1), "race")
    b = reg.submit(req(1), "race")  # both pass the check: neither has saved yet
    assert a.join(60) and b.join(60)
    saved = sorted([a.view().saved_as, b.view().saved_as])
    assert saved == ["race", "race-2"]
    assert set(ModelStore(tmp_path / "store").names()) >= {"race", "race-2"}


def test_a_data_error_ends_the_job_with_the_message(reg, tmp_path):
    job = reg.submit(
        TrainRequest(preset="vanilla", dataset="mnist", epochs=1, device="cpu", data_dir=str(tmp_path / "no-data")),
        "nodata",
    )
    assert job.join(30)
    v = job.view()
    assert v.status == "failed" and "mnist" in v.message.lower() and "Traceback" not in v.message


def test_a_diverging_run_says_so(reg):
    job = reg.submit(
        TrainRequest(preset="basic-softplus", dataset="digits", epochs=3, lr=100.0, device="cpu", optimizer="sgd"),
        "boom",
    )
    assert job.join(60)
    v = job.view()
    assert v.status == "diverged" and "diverged" in v.message and "learning rate" in v.message


def test_continue_training_adds_epochs_to_the_same_model(reg, tmp_path):
    assert reg.submit(req(2), "cont").join(60)
    job = reg.submit(req(3), "cont", resume_from="cont")
    assert job.join(60), job.view().message
    assert job.view().status == "done"
    assert len(ModelStore(tmp_path / "store").load("cont").history) == 5
    with pytest.raises(StoreError, match="no saved model"):
        reg.submit(req(1), "ghost", resume_from="ghost")


def test_abandoned_runs_stop_and_old_ones_are_forgotten(tmp_path):
    reg = JobRegistry(store_root=str(tmp_path), abandon_after_s=0.5, keep_finished_s=1.0)
    job = reg.submit(req(10_000), "orphan")
    wait_until(lambda: job.view().status == "running", 60, lambda: f"the run to start (it is {job.view().status})")
    job.touch()
    reg.cleanup()
    assert job.view().active  # seen just now
    assert reg.cleanup(now=time.time() + 5) == []
    assert job.join(30) and job.view().status == "stopped"
    assert reg.cleanup(now=time.time() + 5) == [job.id]
    assert reg.get(job.id) is None


def test_default_names_are_valid_store_names():
    from aecore.store import validate_name

    for preset, ds in [("vanilla", "digits"), ("conv", "csv:/tmp/my data.csv"), ("x", "images:../a/b.zip")]:
        validate_name(default_name(preset, ds))


def test_the_janitor_stops_runs_nobody_looks_at(tmp_path):
    reg = JobRegistry(store_root=str(tmp_path), abandon_after_s=0.5)
    reg.start_janitor(every_s=0.1)
    reg.start_janitor(every_s=0.1)  # idempotent: one thread
    job = reg.submit(req(10_000), "left-alone")

    def watched_through_an_epoch() -> bool:
        job.touch()  # a page watches it start, then goes away
        return job.view().epoch >= 1

    wait_until(watched_through_an_epoch, 60, lambda: f"a first epoch while watched (the job is {job.view().status})")
    assert job.join(30), "the janitor did not stop an abandoned run"
    assert job.view().status == "stopped" and ModelStore(tmp_path).exists("left-alone")
    assert sum(t.name == "aecore-job-janitor" for t in threading.enumerate()) >= 1


# --- the training process --------------------------------------------------------------
def bare_job(name="j"):
    from aecore.runs.jobs import TrainingJob

    return TrainingJob("t" + name, req(1), name, "cpu")


def test_runs_train_in_their_own_process_and_relay_progress(reg):
    import os

    job = reg.submit(req(2), "elsewhere", snapshot_every_s=0.0)
    assert job.join(120)
    v = job.view()
    assert v.status == "done", v.message
    assert job.result.pid != os.getpid() and job.exit_code == 0
    assert [h["epoch"] for h in v.history] == [1, 2] and v.steps and v.snapshot is not None


def test_a_training_process_that_dies_fails_the_job_with_a_message():
    from aecore.runs.process import run_in_process

    job = bare_job()
    out = run_in_process("job_targets:die", None, job)
    assert out.status == "failed"
    assert "ended unexpectedly" in out.message and "signal 9" in out.message
    assert job.view().message == "about to die"  # what it sent before dying arrived
    assert job.exit_code == -9


def test_a_bug_in_the_training_process_comes_back_with_its_trace():
    from aecore.runs.process import run_in_process

    out = run_in_process("job_targets:boom", 7, bare_job())
    assert out.status == "failed" and "RuntimeError: boom 7" in out.message
    assert "Traceback" in out.error and "job_targets.py" in out.error


def test_the_jobs_stop_reaches_its_process():
    from aecore.runs.process import run_in_process

    job = bare_job()

    def stop_once_running():
        # the process's own report that it runs: a stop before that would test nothing
        wait_until(lambda: job.view().status == "running", 60, "the target to relay 'running'")
        job.stop()

    with ThreadPoolExecutor(1) as pool:
        stopper = pool.submit(stop_once_running)
        t0 = time.time()
        out = run_in_process("job_targets:wait_for_stop", 60.0, job)
        elapsed = time.time() - t0
        stopper.result()
    assert out.status == "stopped" and elapsed < 30, (out, elapsed)


def test_a_message_outside_the_protocol_fails_the_run_and_sets_nothing_else():
    from aecore.runs.process import run_in_process

    job = bare_job()
    out = run_in_process("job_targets:impostor", None, job)
    assert out.status == "failed" and "unknown message (dict)" in out.message
    v = job.view()
    assert v.saved_as is None and v.name == "j"  # the dict's fields were never applied


def test_a_status_a_running_process_cannot_report_is_refused():
    from aecore.runs.process import ProtocolError, Status, check_message

    check_message(Status("running", "ok"))
    with pytest.raises(ProtocolError, match="cannot report"):
        check_message(Status("done", "I saved it"))  # how a run ended comes only in its Result


def test_pause_step_and_stop_reach_the_training_process(reg, tmp_path):
    job = reg.submit(req(10_000), "paused-run")
    wait_until(lambda: job.view().steps, 60, lambda: f"the first training steps (the job is {job.view().status})")
    job.pause()
    wait_until(lambda: job.view().paused, 60, lambda: f"the pause (the job is {job.view().status})")
    v = job.view()
    at = v.steps[-1]["step"]  # the process relays every step before it reports the pause
    assert v.active and "paused" in v.message and "Resume, Step or Stop" in v.message
    job.step_batches(7)
    wait_until(
        lambda: job.view().paused and job.view().steps[-1]["step"] > at,
        60,
        lambda: f"seven steps and a pause (last step {job.view().steps[-1]['step']}, {job.view().status})",
    )
    assert job.view().steps[-1]["step"] == at + 7
    job.step_batches(None)  # one epoch's worth
    wait_until(lambda: job.view().paused and job.view().steps[-1]["step"] > at + 7, 60, lambda: "an epoch of steps")
    assert job.view().steps[-1]["step"] == at + 7 + job.view().steps_per_epoch
    job.stop()  # while paused: it wakes, ends and saves (resuming is the Train page test's)
    assert job.join(30)
    v = job.view()
    assert v.status == "stopped" and v.saved_as == "paused-run"
    # the timeline came along while it ran, and was saved with the model
    assert v.timeline is not None and len(v.timeline.frames) >= 2
    saved = ModelStore(tmp_path / "store").timeline("paused-run")
    assert [f.step for f in saved.frames] == [f.step for f in v.timeline.frames]
