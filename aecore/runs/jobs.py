"""Training jobs that outlive a web page: a process-wide registry of background runs.

The dashboard starts a job and keeps only its id (in the URL), so a reload or a
page switch finds the same run again. Each job trains in its own process (spawned,
so it is the main thread of a fresh interpreter) and a daemon thread of the server
relays what that process reports into the job under a lock; readers take copies
with :meth:`TrainingJob.view`. A device admits a limited number of jobs at once
(one per GPU; ``cpu_slots`` on the CPU); a job that must wait says which job it
waits for. The training process saves the finished model to the store.

Why a process and not a thread: measured on a 2-core CPU, the conv preset trains
17-30% slower in a non-main thread of a process than in its main thread (OpenMP's
team of a non-main master thread), and a thread shares the server's GIL with every
page rerun. A process also keeps a crash or the GPU memory of one run from the
server and the other runs.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import re
import signal
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field

import numpy as np

from aecore.device import bf16_support, pick_device
from aecore.errors import AecoreError, ConfigError, StoreError
from aecore.models.trained import TrainedModel
from aecore.runs.request import TrainRequest
from aecore.store import ModelStore, validate_name
from aecore.train import EpochEvent, Snapshot, StepEvent

ACTIVE = ("queued", "preparing", "running", "saving")
# How often a live view refreshes (at least every 2 s is what a user should see), and
# so how often a job takes a snapshot of reconstructions and codes for it. Each poll
# costs the trainer CPU time (bench/speed.py's dashboard row measures it).
LIVE_POLL_S = 1.5
# Validation items whose codes a live snapshot carries (the Train page's scatter).
LIVE_SNAPSHOT_ITEMS = 256
# Steps kept for the live loss curve: older points are thinned (every other one
# dropped) rather than the list growing without bound on a long run.
MAX_STEP_POINTS = 2000
# The training process sends step events in batches at most this often (and at once
# when one carries a snapshot, and at every epoch's end): a small model takes
# hundreds of steps a second, and a pipe message per step would cost it time.
RELAY_EVERY_S = 0.1


@dataclass
class JobView:
    """A consistent copy of a job's progress, safe to read from any thread."""

    id: str
    name: str
    status: str
    message: str
    preset: str
    dataset: str
    device: str
    epochs: int
    epoch: int  # epochs finished
    step: int
    steps_per_epoch: int
    images_per_s: float
    elapsed_s: float
    eta_s: float | None
    steps: list[dict]  # {"step", "epoch", "loss", **terms}
    history: list[dict]  # one record per finished epoch (train/val loss and terms)
    snapshot: Snapshot | None
    saved_as: str | None
    error: str | None
    created: float

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        if self.epochs <= 0:
            return 0.0
        done = self.epoch + (
            self.step / self.steps_per_epoch
            if self.steps_per_epoch and self.status == "running" and self.step < self.steps_per_epoch
            else 0
        )
        return float(min(max(done / self.epochs, 0.0), 1.0))


@dataclass
class TrainingJob:
    id: str
    request: TrainRequest
    name: str
    device: str
    resume_from: str | None = None
    overwrite: bool = False
    store_root: str | None = None
    snapshot_every_s: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    status: str = "queued"
    message: str = "waiting to start."
    epochs: int = 0
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    images_per_s: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    steps: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    snapshot: Snapshot | None = None
    saved_as: str | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    last_seen: float = field(default_factory=time.time)
    result: dict | None = None  # what the training process returned (status, message, saved_as, ...)
    exit_code: int | None = None  # the training process's
    _stride: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _proc_stop: object = field(default=None, repr=False)  # the training process's stop event

    # --- reading -----------------------------------------------------------------------
    def view(self) -> JobView:
        with self._lock:
            return JobView(
                self.id,
                self.name,
                self.status,
                self.message,
                self.request.preset,
                self.request.dataset or "",
                self.device,
                self.epochs,
                self.epoch,
                self.step,
                self.steps_per_epoch,
                self.images_per_s,
                self.elapsed_s,
                self.eta_s,
                list(self.steps),
                list(self.history),
                self.snapshot,
                self.saved_as,
                self.error,
                self.created,
            )

    def touch(self) -> None:
        """A page looked at this job: it is not abandoned."""
        self.last_seen = time.time()

    def stop(self) -> None:
        self.stop_event.set()
        if self._proc_stop is not None:
            self._proc_stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.view().active

    # --- trainer callbacks (relayed from the training process by the job's thread) ---------
    def on_train_start(self, info: dict) -> None:
        with self._lock:
            self.status, self.message = "running", "training."

    def on_step_end(self, ev: StepEvent) -> None:
        with self._lock:
            self.step, self.steps_per_epoch = ev.step, ev.steps_per_epoch
            self.images_per_s, self.elapsed_s, self.eta_s = ev.images_per_s, ev.elapsed_s, ev.eta_s
            if ev.global_step % self._stride == 0:
                self.steps.append({"step": ev.global_step, "epoch": ev.epoch, "loss": ev.loss, **ev.terms})
                if len(self.steps) > MAX_STEP_POINTS:
                    self.steps = self.steps[::2]
                    self._stride *= 2
            if ev.snapshot is not None:
                self.snapshot = ev.snapshot

    def on_epoch_end(self, ev: EpochEvent) -> None:
        with self._lock:
            self.epoch, self.epochs = ev.epoch, ev.epochs
            self.step = self.steps_per_epoch
            self.history.append(
                {
                    "epoch": ev.epoch,
                    "train_loss": ev.train_loss,
                    "val_loss": ev.val_loss,
                    **{f"train_{k}": v for k, v in ev.train_terms.items()},
                    **{f"val_{k}": v for k, v in ev.val_terms.items()},
                }
            )
            self.images_per_s, self.elapsed_s, self.eta_s = ev.images_per_s, ev.elapsed_s, ev.eta_s
            if ev.snapshot is not None:
                self.snapshot = ev.snapshot

    def apply(self, kind: str, data) -> None:
        """One message of the training process (see :class:`Relay`)."""
        if kind == "start":
            self.on_train_start(data)
        elif kind == "steps":
            for ev in data:
                self.on_step_end(ev)
        elif kind == "epoch":
            self.on_epoch_end(data)
        elif kind == "set":
            self._set(**data)

    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    # --- the job's thread -------------------------------------------------------------
    def _run(self, registry: JobRegistry) -> None:
        try:
            if not registry._acquire(self):
                self._set(status="stopped", message="stopped before it started.", finished=time.time())
                return
            try:
                self._set(status="preparing", message="starting the training process.")
                import torch

                spec = {
                    "request": self.request,
                    "name": self.name,
                    "resume_from": self.resume_from,
                    "overwrite": self.overwrite,
                    "store_root": self.store_root,
                    "snapshot_every_s": self.snapshot_every_s,
                    "snapshot_items": LIVE_SNAPSHOT_ITEMS,
                    # as many threads as the server's own torch uses (tests pin 1)
                    "threads": torch.get_num_threads(),
                }
                out = run_in_process("aecore.runs.jobs:train_in_process", spec, self)
            finally:
                registry._release(self)
            if out.get("error") is not None:
                self._set(status="failed", message=out["message"], error=out["error"], finished=time.time())
            else:
                self._set(
                    result=out,
                    status=out["status"],
                    message=out["message"],
                    saved_as=out.get("saved_as"),
                    finished=time.time(),
                )
        except Exception as e:  # a bug in this thread, not a user error: keep the trace for the page
            self._set(
                status="failed",
                message=f"training failed: {type(e).__name__}: {e}",
                error=traceback.format_exc(),
                finished=time.time(),
            )


# --------------------------------------------------------------------------------------------
# The training process
# --------------------------------------------------------------------------------------------
class Relay:
    """The trainer's callback in the training process: sends its events to the job.

    Messages are ``(kind, data)`` pairs that :meth:`TrainingJob.apply` understands.
    Step events are batched (``RELAY_EVERY_S``); a step that carries a snapshot,
    an epoch's end and a status change are sent at once, after the steps before them."""

    def __init__(self, conn):
        self.conn = conn
        self._steps: list[StepEvent] = []
        self._last = time.perf_counter()

    def send(self, kind: str, data) -> None:
        self.flush()
        self.conn.send((kind, data))

    def flush(self) -> None:
        if self._steps:
            self.conn.send(("steps", self._steps))
            self._steps = []
        self._last = time.perf_counter()

    def set(self, **fields) -> None:
        self.send("set", fields)

    def on_train_start(self, info: dict) -> None:
        self.send("start", {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool, type(None)))})

    def on_step_end(self, ev: StepEvent) -> None:
        self._steps.append(ev)
        if ev.snapshot is not None or time.perf_counter() - self._last >= RELAY_EVERY_S:
            self.flush()

    def on_epoch_end(self, ev: EpochEvent) -> None:
        self.send("epoch", ev)


def _process_main(conn, stop, target: str, payload) -> None:
    """Entry point of a training process: ``target`` ("module:function") is called
    with ``(payload, relay, stop)`` and what it returns is the last message."""
    # Ctrl+C in the server's terminal reaches the whole process group; the server
    # decides when its runs end, so a training process does not die of it mid-save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        module, fn = target.split(":")
        func = getattr(importlib.import_module(module), fn)
        relay = Relay(conn)
        out = func(payload, relay, stop)
        relay.flush()
        conn.send(("result", out))
    except AecoreError as e:  # the user's to fix: the message is enough
        conn.send(("result", {"status": "failed", "message": str(e), "error": str(e)}))
    except BaseException as e:  # a bug: keep the trace for the page's details
        conn.send(
            (
                "result",
                {
                    "status": "failed",
                    "message": f"training failed: {type(e).__name__}: {e}",
                    "error": traceback.format_exc(),
                },
            )
        )
    finally:
        conn.close()


def run_in_process(target: str, payload, job: TrainingJob, poll_s: float = 0.2) -> dict:
    """Run ``target`` in a fresh (spawned) process and relay its messages into ``job``
    until it ends; return its result. The job's stop event reaches the process.

    A process that dies without a result (killed, out of memory) gives a failed
    result that says so."""
    ctx = mp.get_context("spawn")  # fork would copy a threaded server and its OpenMP state
    reader, writer = ctx.Pipe(duplex=False)
    stop = ctx.Event()
    job._proc_stop = stop
    if job.stop_event.is_set():
        stop.set()
    proc = ctx.Process(
        target=_process_main, args=(writer, stop, target, payload), name=f"aecore-train-{job.id}", daemon=True
    )
    proc.start()
    writer.close()  # the child holds the only writer: EOF here means it has gone
    result = None
    try:
        while True:
            if job.stop_event.is_set() and not stop.is_set():
                stop.set()
            if not reader.poll(poll_s):
                if not proc.is_alive() and not reader.poll(0):
                    break
                continue
            try:
                kind, data = reader.recv()
            except (EOFError, OSError):
                break
            if kind == "result":
                result = data
            else:
                job.apply(kind, data)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        reader.close()
        job._set(exit_code=proc.exitcode)
    if result is None:
        code = proc.exitcode
        why = (
            f"killed by signal {-code}" + (" (perhaps the system ran out of memory)" if code == -9 else "")
            if code is not None and code < 0
            else f"exit code {code}"
        )
        msg = f"the training process ended unexpectedly ({why}); nothing was saved by it."
        result = {"status": "failed", "message": msg, "error": msg}
    return result


def train_in_process(spec: dict, relay: Relay, stop) -> dict:
    """What a dashboard run does in its training process: train, then save."""
    import torch

    from aecore.runs import request as workflow

    torch.set_num_threads(spec["threads"])
    relay.set(status="preparing", message="loading the data and building the model.")
    store = ModelStore(spec["store_root"])
    resume = None
    if spec["resume_from"]:
        resume = store.load(spec["resume_from"], with_optimizer=True)
        relay.set(epoch=len(resume.history))
    tm, result, _ = workflow.train(
        spec["request"],
        callbacks=[relay],
        stop_event=stop,
        snapshot_every_s=spec["snapshot_every_s"],
        resume=resume,
        snapshot_items=spec["snapshot_items"],
    )
    saved = None
    if result.epochs_run > 0 and result.status != "failed":
        relay.set(status="saving", message="saving the model.")
        saved = _save(store, tm, spec["name"], spec["overwrite"] or spec["resume_from"] == spec["name"])
    note = f" Saved as '{saved}'." if saved else " Nothing was saved (no finished epoch)."
    return {
        "status": result.status,
        "message": result.message + note,
        "saved_as": saved,
        "epochs_run": result.epochs_run,
        "images_per_s": result.images_per_s,
        "pid": os.getpid(),
    }


def _save(store: ModelStore, tm: TrainedModel, name: str, overwrite: bool) -> str:
    if overwrite:
        store.save(name, tm, overwrite=True)
        return name
    # Another session may have taken the name while this one trained: keep both.
    for i in range(1, 1000):
        candidate = name if i == 1 else f"{name}-{i}"
        try:
            store.save(candidate, tm, overwrite=False)
            return candidate
        except StoreError:
            if not store.exists(candidate):
                raise
    raise StoreError(f"could not find a free name next to '{name}'.")


class JobRegistry:
    """Every training job of this process. Thread-safe; one instance per server.

    ``abandon_after_s``: a running job that no page has looked at for this long
    is stopped (its model is saved as far as it got). ``keep_finished_s``: how long
    a finished job stays listed."""

    def __init__(
        self,
        store_root: str | None = None,
        cpu_slots: int = 2,
        abandon_after_s: float = 1800.0,
        keep_finished_s: float = 6 * 3600.0,
    ):
        if cpu_slots < 1:
            raise ConfigError("cpu_slots must be at least 1.")
        self.store_root = store_root
        self.cpu_slots = cpu_slots
        self.abandon_after_s = abandon_after_s
        self.keep_finished_s = keep_finished_s
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running: dict[str, list[str]] = {}  # device -> ids of jobs holding it
        self._janitor: threading.Thread | None = None

    def start_janitor(self, every_s: float | None = None) -> None:
        """Run :meth:`cleanup` in a daemon thread, so that abandoned runs stop even
        when nobody submits a new one. Idempotent."""
        with self._lock:
            if self._janitor is not None:
                return
            interval = every_s or max(1.0, min(60.0, self.abandon_after_s / 4))

            def loop():
                while True:
                    time.sleep(interval)
                    self.cleanup()

            self._janitor = threading.Thread(target=loop, name="aecore-job-janitor", daemon=True)
            self._janitor.start()

    def capacity(self, device: str) -> int:
        return self.cpu_slots if device == "cpu" else 1

    def submit(
        self,
        request: TrainRequest,
        name: str,
        *,
        resume_from: str | None = None,
        overwrite: bool = False,
        snapshot_every_s: float = 1.0,
        start: bool = True,
    ) -> TrainingJob:
        """Check what can be checked at once (name, hyper-parameters, device), then
        start the job's thread. Data loading errors arrive as a failed job."""
        validate_name(name)
        train_cfg = request.train_config()  # raises ConfigError on out-of-range hyper-parameters
        device = str(pick_device(request.device))
        if train_cfg.precision == "bf16":
            ok, why = bf16_support(pick_device(request.device))
            if not ok:
                raise ConfigError(f"bf16 precision is refused: {why}. Use precision fp32.")
        store = ModelStore(self.store_root)
        if resume_from is not None:
            validate_name(resume_from)
            if not store.exists(resume_from):
                raise StoreError(f"there is no saved model named '{resume_from}' to continue.")
        elif store.exists(name) and not overwrite:
            raise StoreError(f"a model named '{name}' already exists: choose another name or allow overwriting.")
        job = TrainingJob(
            uuid.uuid4().hex[:10],
            request,
            name,
            device,
            resume_from=resume_from,
            overwrite=overwrite,
            store_root=self.store_root,
            snapshot_every_s=snapshot_every_s,
            epochs=request.epochs or request.train_config().epochs,
        )
        self.cleanup()
        with self._lock:
            self._jobs[job.id] = job
        if start:
            job._thread = threading.Thread(target=job._run, args=(self,), name=f"aecore-job-{job.id}", daemon=True)
            job._thread.start()
        return job

    def get(self, job_id: str | None) -> TrainingJob | None:
        if not job_id:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[TrainingJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def active(self) -> list[TrainingJob]:
        return [j for j in self.jobs() if j.view().active]

    def stop_all(self, timeout: float = 30.0) -> None:
        for j in self.jobs():
            j.stop()
        for j in self.jobs():
            j.join(timeout)

    def cleanup(self, now: float | None = None) -> list[str]:
        """Stop abandoned jobs and forget long-finished ones; returns the ids forgotten."""
        now = time.time() if now is None else now
        gone = []
        for j in self.jobs():
            v = j.view()
            if v.active and now - j.last_seen > self.abandon_after_s and not j.stop_event.is_set():
                j.stop()
            elif not v.active and j.finished is not None and now - j.finished > self.keep_finished_s:
                gone.append(j.id)
        with self._lock:
            for i in gone:
                self._jobs.pop(i, None)
        return gone

    # --- device slots ----------------------------------------------------------------
    def _acquire(self, job: TrainingJob) -> bool:
        with self._cond:
            while True:
                if job.stop_event.is_set():
                    return False
                holders = self._running.setdefault(job.device, [])
                if len(holders) < self.capacity(job.device):
                    holders.append(job.id)
                    return True
                names = ", ".join(f"'{self._jobs[i].name}'" for i in holders if i in self._jobs)
                msg = (
                    f"waiting: {job.device} is busy with {names}; at most {self.capacity(job.device)} "
                    f"job(s) train on it at a time. It starts when one finishes."
                )
                with job._lock:
                    job.status, job.message = "queued", msg
                self._cond.wait(0.5)

    def _release(self, job: TrainingJob) -> None:
        with self._cond:
            holders = self._running.get(job.device, [])
            if job.id in holders:
                holders.remove(job.id)
            self._cond.notify_all()


def default_name(preset: str, dataset: str) -> str:
    """A model name that says what it is and does not collide: preset-dataset-HHMMSS."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{preset}-{dataset}").strip("-")[:60] or "model"
    return f"{base}-{time.strftime('%H%M%S')}"


def step_frame(view: JobView) -> dict[str, np.ndarray]:
    """Columns for the live loss chart: step and every loss term, NaN where absent."""
    keys = sorted({k for s in view.steps for k in s} - {"step", "epoch"})
    return {
        "step": np.array([s["step"] for s in view.steps]),
        **{k: np.array([s.get(k, np.nan) for s in view.steps], dtype=float) for k in keys},
    }


__all__ = ["JobRegistry", "TrainingJob", "JobView", "Relay", "run_in_process", "default_name", "step_frame", "ACTIVE"]
