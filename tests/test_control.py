"""Pause, step and stop: aecore.control.RunControl alone, driving the Trainer from
another thread, and across the training process of a dashboard job."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest

from aecore.control import RunControl
from aecore.errors import ConfigError
from aecore.normalise import Normaliser
from aecore.train import Trainer
from tests.test_train import cfg, dense, same_state, state

WAIT_S = 60  # a deadline for events, never a pause: each wait returns as soon as its event comes


@pytest.fixture(scope="module")
def small(digits):
    return digits.limit(256)  # 8 batches of 32 per epoch


def test_gate_budget():
    c = RunControl()
    assert [c.gate() for _ in range(3)] == ["go"] * 3 and not c.paused
    c.pause()
    assert c.gate() == "pause" and c.paused and not c.wait(0)
    c.step(2)
    assert [c.gate() for _ in range(3)] == ["go", "go", "pause"]
    c.resume()
    assert c.gate() == "go" and c.wait(0)
    c.pause()
    c.stop()
    assert c.gate() == "stop" and c.wait(0) and not c.paused  # a paused trainer wakes to stop
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="whole number of batches"):
            RunControl().step(bad)


def test_control_made_for_a_process_is_shared():
    c = RunControl.for_process(mp.get_context("spawn"))
    c.step(1)
    assert c.gate() == "go" and c.gate() == "pause"


class Driver:
    """Callbacks that record steps and pauses, and let the test wait for a pause."""

    def __init__(self, control: RunControl, pause_after: int):
        self.control, self.pause_after = control, pause_after
        self.steps, self.pauses, self.resumes = [], [], []
        self.paused = threading.Event()

    def on_step_end(self, ev):
        self.steps.append(ev.global_step)
        if ev.global_step == self.pause_after:
            self.control.pause()

    def on_pause(self, ev):
        self.pauses.append(ev)
        self.paused.set()

    def on_resume(self, ev):
        self.resumes.append(ev)

    def wait_pause(self) -> None:
        assert self.paused.wait(WAIT_S), "the trainer did not pause"
        self.paused.clear()


def run_in_thread(trainer: Trainer, model, bundle) -> tuple[threading.Thread, dict]:
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(result=trainer.fit(model, bundle, Normaliser("unit"))), daemon=True)
    t.start()
    return t, out


def test_pause_takes_effect_before_the_next_batch_and_step_runs_exactly_n(small):
    control = RunControl()
    drv = Driver(control, pause_after=3)
    model = dense()
    t, out = run_in_thread(Trainer(cfg(epochs=2), [drv], control=control), model, small)
    drv.wait_pause()
    assert drv.steps == [1, 2, 3] and drv.pauses[0].global_step == 3
    assert drv.pauses[0].snapshot is not None  # the live views show the model as it stands
    # 7 batches cross the epoch's end (8 per epoch): exactly 7, then paused again
    control.step(7)
    drv.wait_pause()
    assert drv.steps == list(range(1, 11)) and drv.pauses[1].global_step == 10
    assert (drv.pauses[1].epoch, drv.pauses[1].step) == (2, 2)
    control.step(1)
    drv.wait_pause()
    assert drv.steps[-1] == 11 and len(drv.steps) == 11
    control.resume()
    t.join(WAIT_S)
    assert out["result"].status == "done" and drv.steps == list(range(1, 17))
    assert [r.global_step for r in drv.resumes] == [3, 10, 11]


def test_a_paused_and_stepped_run_ends_with_the_weights_of_an_uninterrupted_one(small):
    plain = dense()
    Trainer(cfg(epochs=2)).fit(plain, small, Normaliser("unit"))
    control = RunControl()
    drv = Driver(control, pause_after=5)
    model = dense()
    t, out = run_in_thread(Trainer(cfg(epochs=2), [drv], control=control), model, small)
    drv.wait_pause()
    control.step(3)
    drv.wait_pause()
    control.resume()
    t.join(WAIT_S)
    assert out["result"].status == "done"
    assert same_state(state(model), state(plain))  # same order, same optimiser state: same step


def test_stop_while_paused_ends_the_run_and_keeps_what_it_trained(small):
    control = RunControl()
    drv = Driver(control, pause_after=4)
    t, out = run_in_thread(Trainer(cfg(epochs=3), [drv], control=control), dense(), small)
    drv.wait_pause()
    control.stop()
    t.join(WAIT_S)
    r = out["result"]
    assert r.status == "stopped" and drv.steps == [1, 2, 3, 4]
    assert len(r.history) == 1 and r.history[0]["partial"]  # the half epoch is recorded, as a stop always did


def test_time_paused_does_not_count_as_training_time(small):
    control = RunControl()
    drv = Driver(control, pause_after=2)
    t, out = run_in_thread(Trainer(cfg(epochs=1), [drv], control=control), dense(), small)
    drv.wait_pause()
    done = threading.Event()
    threading.Timer(1.0, done.set).start()  # hold the pause for a second of wall time
    assert done.wait(WAIT_S)
    control.resume()
    t.join(WAIT_S)
    r = out["result"]
    assert r.wall_s >= 1.0 and r.history[0]["images_per_s"] > 256 / (r.wall_s - 0.9)
