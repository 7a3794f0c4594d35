"""The training process of a dashboard run, and what it may say to the server.

Each run trains in a fresh spawned process (see :mod:`aecore.runs.jobs` for why).
It talks to the server through a one-way pipe in typed messages: :class:`Started`,
:class:`Steps`, :class:`Epoch`, :class:`Paused`, :class:`Status`, the timeline's
:class:`TimelineStart` and :class:`TimelineFrame`, and finally :class:`Result`.
The server reaches the process the other way through a shared
:class:`aecore.control.RunControl` (pause, step, stop).
The server checks every message on arrival (:func:`check_message`) before it
touches the job, so a process can report progress but cannot set anything else
of the job; a message of any other shape fails the run with a sentence that says
so.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from aecore.control import RunControl
from aecore.errors import AecoreError
from aecore.timeline import Frame, Timeline
from aecore.train import EpochEvent, PauseEvent, StepEvent

# The training process sends step events in batches at most this often (and at once
# when one carries a snapshot, and at every epoch's end): a small model takes
# hundreds of steps a second, and a pipe message per step would cost it time.
RELAY_EVERY_S = 0.1
# The only statuses a training process reports while it works; how it ended comes in Result.
RELAYED_STATUSES = ("preparing", "running", "saving")
ENDINGS = ("done", "stopped", "early_stopped", "diverged", "failed")


class ProtocolError(Exception):
    """A training process sent something that is not one of its messages."""


@dataclass(frozen=True)
class Started:
    epochs: int  # epochs of the whole model after this run (a resumed run counts the earlier ones)
    steps_per_epoch: int
    start_epoch: int


@dataclass(frozen=True)
class Steps:
    events: list[StepEvent]


@dataclass(frozen=True)
class Epoch:
    event: EpochEvent


@dataclass(frozen=True)
class Paused:
    event: PauseEvent


@dataclass(frozen=True)
class TimelineStart:
    timeline: Timeline  # the probe, and the frames so far (a continued model's earlier ones too)


@dataclass(frozen=True)
class TimelineFrame:
    frame: Frame


@dataclass(frozen=True)
class Status:
    status: str  # one of RELAYED_STATUSES
    message: str
    epoch: int | None = None  # epochs the model had before this run (a resumed model)


@dataclass(frozen=True)
class Result:
    status: str  # one of ENDINGS
    message: str
    saved_as: str | None = None
    epochs_run: int = 0
    images_per_s: float = 0.0
    pid: int | None = None
    error: str | None = None  # a failure's detail (a traceback for a bug)
    notes: list[str] = field(default_factory=list)


MESSAGES = (Started, Steps, Epoch, Paused, TimelineStart, TimelineFrame, Status, Result)


def _num(v, lo: float = -math.inf) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (v != v or v >= lo)


def _frame_ok(f) -> bool:
    return (
        isinstance(f, Frame)
        and isinstance(f.step, int)
        and _num(f.epoch)
        and isinstance(f.codes, np.ndarray)
        and f.codes.ndim == 2
        and f.codes.dtype.kind == "f"
        and (f.recons is None or (isinstance(f.recons, np.ndarray) and f.recons.dtype.kind == "f"))
    )


def check_message(msg) -> Started | Steps | Epoch | Paused | TimelineStart | TimelineFrame | Status | Result:
    """``msg`` if it is a well-formed message of the protocol; ProtocolError otherwise."""

    def bad(why: str):
        raise ProtocolError(f"the training process sent {why}")

    if not isinstance(msg, MESSAGES):
        bad(f"an unknown message ({type(msg).__name__})")
    if isinstance(msg, Started) and not all(
        isinstance(v, int) and v >= 0 for v in (msg.epochs, msg.steps_per_epoch, msg.start_epoch)
    ):
        bad("a start message with counts that are not whole numbers")
    if isinstance(msg, Steps):
        if not isinstance(msg.events, list) or not all(isinstance(e, StepEvent) for e in msg.events):
            bad("steps that are not step events")
        if not all(_num(e.loss) and isinstance(e.global_step, int) for e in msg.events):
            bad("a step event without a numeric loss and step")
    if isinstance(msg, Epoch) and not (isinstance(msg.event, EpochEvent) and isinstance(msg.event.epoch, int)):
        bad("an epoch message that is not an epoch event")
    if isinstance(msg, Paused) and not (
        isinstance(msg.event, PauseEvent)
        and all(isinstance(v, int) and v >= 0 for v in (msg.event.epoch, msg.event.step, msg.event.global_step))
    ):
        bad("a pause that is not a pause event")
    if isinstance(msg, TimelineStart):
        tl = msg.timeline
        if not (
            isinstance(tl, Timeline)
            and isinstance(tl.probe_index, np.ndarray)
            and tl.probe_index.dtype.kind == "i"
            and isinstance(tl.frames, list)
            and all(map(_frame_ok, tl.frames))
        ):
            bad("a timeline that is not a timeline of frames")
    if isinstance(msg, TimelineFrame) and not _frame_ok(msg.frame):
        bad("a timeline frame without numeric codes")
    if isinstance(msg, Status):
        if msg.status not in RELAYED_STATUSES or not isinstance(msg.message, str):
            bad(f"a status {msg.status!r} that a running process cannot report")
        if msg.epoch is not None and not (isinstance(msg.epoch, int) and msg.epoch >= 0):
            bad("a status with an epoch that is not a whole number")
    if isinstance(msg, Result) and (msg.status not in ENDINGS or not isinstance(msg.message, str)):
        bad(f"a result with status {msg.status!r}")
    return msg


class Relay:
    """The trainer's callback in the training process: sends its events to the job.

    Step events are batched (``RELAY_EVERY_S``); a step that carries a snapshot,
    an epoch's end and a status change are sent at once, after the steps before them."""

    def __init__(self, conn):
        self.conn = conn
        self._steps: list[StepEvent] = []
        self._last = time.perf_counter()
        self._timeline_sent = False

    def send(self, msg) -> None:
        self.flush()
        self.conn.send(msg)

    def flush(self) -> None:
        if self._steps:
            self.conn.send(Steps(self._steps))
            self._steps = []
        self._last = time.perf_counter()

    def status(self, status: str, message: str, epoch: int | None = None) -> None:
        self.send(Status(status, message, epoch))

    def on_train_start(self, info: dict) -> None:
        self.send(Started(int(info["epochs"]), int(info["steps_per_epoch"]), int(info.get("start_epoch", 0))))

    def on_step_end(self, ev: StepEvent) -> None:
        self._steps.append(ev)
        if ev.snapshot is not None or time.perf_counter() - self._last >= RELAY_EVERY_S:
            self.flush()

    def on_epoch_end(self, ev: EpochEvent) -> None:
        self.send(Epoch(ev))

    def on_pause(self, ev: PauseEvent) -> None:
        self.send(Paused(ev))

    def on_resume(self, ev: PauseEvent) -> None:
        self.status("running", "training.")

    def on_frame(self, timeline: Timeline, frame: Frame) -> None:
        # the probe and every frame so far once, then each new frame (half a MB at most)
        self.send(TimelineFrame(frame) if self._timeline_sent else TimelineStart(timeline))
        self._timeline_sent = True

    def on_train_end(self, result) -> None:
        if result.epochs_run > 0 and result.status != "failed":
            self.status("saving", "evaluating on the test split and saving the model.")


def _process_main(conn, control: RunControl, target: str, payload) -> None:
    """Entry point of a training process: ``target`` ("module:function") is called
    with ``(payload, relay, control)`` and the :class:`Result` it returns is the last message."""
    # Ctrl+C in the server's terminal reaches the whole process group; the server
    # decides when its runs end, so a training process does not die of it mid-save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        module, fn = target.split(":")
        func = getattr(importlib.import_module(module), fn)
        relay = Relay(conn)
        out = func(payload, relay, control)
        relay.flush()
        conn.send(out)
    except AecoreError as e:  # the user's to fix: the message is enough
        conn.send(Result("failed", str(e), error=str(e)))
    except BaseException as e:  # a bug: keep the trace for the page's details
        conn.send(Result("failed", f"training failed: {type(e).__name__}: {e}", error=traceback.format_exc()))
    finally:
        conn.close()


def run_in_process(target: str, payload, job, poll_s: float = 0.2) -> Result:
    """Run ``target`` in a fresh (spawned) process and apply its messages to ``job``
    (a :class:`aecore.runs.jobs.TrainingJob`) until it ends; return its Result.
    The job's stop event reaches the process, and so do pause and step through
    the shared control (``job._control``).

    A process that dies without a result (killed, out of memory), or that sends
    something outside the protocol, gives a failed Result that says so."""
    ctx = mp.get_context("spawn")  # fork would copy a threaded server and its OpenMP state
    reader, writer = ctx.Pipe(duplex=False)
    control = RunControl.for_process(ctx)
    job._control = control
    if job.stop_event.is_set():
        control.stop()
    proc = ctx.Process(
        target=_process_main, args=(writer, control, target, payload), name=f"aecore-train-{job.id}", daemon=True
    )
    proc.start()
    writer.close()  # the child holds the only writer: EOF here means it has gone
    result = None
    try:
        while True:
            if job.stop_event.is_set() and not control.stopped:
                control.stop()
            if not reader.poll(poll_s):
                if not proc.is_alive() and not reader.poll(0):
                    break
                continue
            try:
                msg = check_message(reader.recv())
            except (EOFError, OSError):
                break
            except ProtocolError as e:
                result = Result("failed", f"{e}; the run was ended.", error=str(e))
                proc.kill()
                break
            if isinstance(msg, Result):
                result = msg
            else:
                job.apply(msg)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        reader.close()
        job._set_exit_code(proc.exitcode)
    if result is None:
        code = proc.exitcode
        why = (
            f"killed by signal {-code}" + (" (perhaps the system ran out of memory)" if code == -9 else "")
            if code is not None and code < 0
            else f"exit code {code}"
        )
        msg = f"the training process ended unexpectedly ({why}); nothing was saved by it."
        result = Result("failed", msg, error=msg)
    return result


def train_in_process(spec: dict, relay: Relay, control: RunControl) -> Result:
    """What a dashboard run does in its training process: train, then save."""
    import torch

    from aecore.runs.pipeline import train_and_save
    from aecore.store import ModelStore

    torch.set_num_threads(spec["threads"])
    relay.status("preparing", "loading the data and building the model.")
    store = ModelStore(spec["store_root"])
    if spec["resume_from"]:
        relay.status("preparing", "loading the saved model.", epoch=len(store.load(spec["resume_from"]).history))
    out = train_and_save(
        spec["request"],
        store,
        spec["name"],
        overwrite=spec["overwrite"],
        resume_from=spec["resume_from"],
        callbacks=[relay],
        snapshot_every_s=spec["snapshot_every_s"],
        snapshot_items=spec["snapshot_items"],
        control=control,
    )
    r = out.result
    return Result(r.status, out.message, out.saved_as, r.epochs_run, r.images_per_s, os.getpid(), notes=out.notes)


__all__ = [
    "Epoch",
    "Paused",
    "ProtocolError",
    "Relay",
    "Result",
    "Started",
    "Status",
    "Steps",
    "TimelineFrame",
    "TimelineStart",
    "check_message",
    "run_in_process",
    "train_in_process",
]
