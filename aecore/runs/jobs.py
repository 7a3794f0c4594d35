"""Training jobs that outlive a web page: a process-wide registry of background runs.

The dashboard starts a job and keeps only its id (in the URL), so a reload or a
page switch finds the same run again. Each job trains in its own process (spawned,
so it is the main thread of a fresh interpreter) and a daemon thread of the server
relays what that process reports into the job under a lock; readers take copies
with :meth:`TrainingJob.view`. Pause, step and stop reach the process through a
shared :class:`aecore.control.RunControl`. A device admits a limited number of jobs at once
(one per GPU; ``cpu_slots`` on the CPU); a job that must wait says which job it
waits for. The training process saves the finished model to the store.

Why a process and not a thread: measured on a 2-core CPU, the conv preset trains
17-30% slower in a non-main thread of a process than in its main thread (OpenMP's
team of a non-main master thread), and a thread shares the server's GIL with every
page rerun. A process also keeps a crash or the GPU memory of one run from the
server and the other runs.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field

from aecore.device import bf16_support, pick_device
from aecore.errors import ConfigError
from aecore.records import EpochRecord, epoch_record
from aecore.runs.pipeline import check_name
from aecore.runs.process import (
    Epoch,
    Paused,
    Result,
    Started,
    Status,
    Steps,
    TimelineFrame,
    TimelineStart,
    run_in_process,
)
from aecore.runs.request import TrainRequest, resume_config
from aecore.store import ModelStore
from aecore.timeline import Timeline
from aecore.train import EpochEvent, Snapshot, StepEvent

ACTIVE = ("queued", "preparing", "running", "paused", "saving")
# What Step offers: batches to train before pausing again; None is one epoch's worth
STEP_CHOICES = {"1 batch": 1, "10 batches": 10, "100 batches": 100, "one epoch": None}
# How often a live view refreshes (at least every 2 s is what a user should see), and
# so how often a job takes a snapshot of reconstructions and codes for it. Each poll
# costs the trainer CPU time (bench/speed.py's dashboard row measures it).
LIVE_POLL_S = 1.5
# Validation items whose codes a live snapshot carries (the Train page's scatter).
LIVE_SNAPSHOT_ITEMS = 256
# Steps kept for the live loss curve: older points are thinned (every other one
# dropped) rather than the list growing without bound on a long run.
MAX_STEP_POINTS = 2000


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
    history: list[EpochRecord]  # one record per finished epoch: the saved history's schema
    snapshot: Snapshot | None
    saved_as: str | None
    error: str | None
    created: float
    timeline: Timeline | None = None  # the frames recorded so far

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    @property
    def progress(self) -> float:
        if self.epochs <= 0:
            return 0.0
        done = self.epoch + (
            self.step / self.steps_per_epoch
            if self.steps_per_epoch and self.status in ("running", "paused") and self.step < self.steps_per_epoch
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
    history: list[EpochRecord] = field(default_factory=list)
    snapshot: Snapshot | None = None
    saved_as: str | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    last_seen: float = field(default_factory=time.time)
    result: Result | None = None  # what the training process returned
    exit_code: int | None = None  # the training process's
    _stride: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    timeline: Timeline | None = None
    _control: object = field(default=None, repr=False)  # shared with the training process (RunControl)

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
                None if self.timeline is None else self.timeline.view(),
            )

    def touch(self) -> None:
        """A page looked at this job: it is not abandoned."""
        self.last_seen = time.time()

    def stop(self) -> None:
        self.stop_event.set()
        if self._control is not None:
            self._control.stop()

    def pause(self) -> None:
        """Pause after the batch that runs now (the process keeps its state)."""
        if self._control is not None and self.view().status == "running":
            self._control.pause()

    def resume(self) -> None:
        if self._control is not None:
            self._control.resume()

    def step_batches(self, batches: int | None) -> None:
        """Train exactly ``batches`` more batches (None: one epoch's worth), then pause again."""
        if self._control is not None:
            self._control.step(batches or max(self.view().steps_per_epoch, 1))

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.view().active

    # --- messages of the training process, checked on arrival (aecore.runs.process) -----------
    def apply(self, msg: Started | Steps | Epoch | Paused | TimelineStart | TimelineFrame | Status) -> None:
        with self._lock:
            if isinstance(msg, Started):
                self.status, self.message = "running", "training."
                self.epochs, self.steps_per_epoch = msg.epochs, msg.steps_per_epoch
            elif isinstance(msg, Steps):
                for ev in msg.events:
                    self._step(ev)
            elif isinstance(msg, Epoch):
                self._epoch(msg.event)
            elif isinstance(msg, Paused):
                ev = msg.event
                self.status, self.step = "paused", ev.step
                where = (
                    f"before epoch {ev.epoch}"
                    if ev.step == 0
                    else f"at step {ev.step}/{ev.steps_per_epoch} of epoch {ev.epoch}"
                )
                self.message = f"paused {where}, {ev.global_step} batches into this run: Resume, Step or Stop."
                self.snapshot = ev.snapshot or self.snapshot
            elif isinstance(msg, TimelineStart):
                self.timeline = msg.timeline
            elif isinstance(msg, TimelineFrame) and self.timeline is not None:
                try:
                    self.timeline.append(msg.frame)
                except ValueError:
                    pass  # a frame that does not fit the probe: the live replay goes without it
            elif isinstance(msg, Status):
                self.status, self.message = msg.status, msg.message
                if msg.epoch is not None:
                    self.epoch = msg.epoch

    def _step(self, ev: StepEvent) -> None:
        self.step, self.steps_per_epoch = ev.step, ev.steps_per_epoch
        self.images_per_s, self.elapsed_s, self.eta_s = ev.images_per_s, ev.elapsed_s, ev.eta_s
        if ev.global_step % self._stride == 0:
            self.steps.append({"step": ev.global_step, "epoch": ev.epoch, "loss": ev.loss, **ev.terms})
            if len(self.steps) > MAX_STEP_POINTS:
                self.steps = self.steps[::2]
                self._stride *= 2
        if ev.snapshot is not None:
            self.snapshot = ev.snapshot

    def _epoch(self, ev: EpochEvent) -> None:
        self.epoch, self.epochs = ev.epoch, ev.epochs
        self.step = self.steps_per_epoch
        self.history.append(
            epoch_record(ev.epoch, ev.train_terms, ev.val_loss, ev.val_terms, ev.images_per_s, ev.elapsed_s)
        )
        self.images_per_s, self.elapsed_s, self.eta_s = ev.images_per_s, ev.elapsed_s, ev.eta_s
        if ev.snapshot is not None:
            self.snapshot = ev.snapshot

    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def _set_exit_code(self, code: int | None) -> None:
        self._set(exit_code=code)

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
                out = run_in_process("aecore.runs.process:train_in_process", spec, self)
            finally:
                registry._release(self)
            if out.error is not None:
                self._set(status="failed", message=out.message, error=out.error, finished=time.time())
            else:
                self._set(
                    result=out, status=out.status, message=out.message, saved_as=out.saved_as, finished=time.time()
                )
        except Exception as e:  # a bug in this thread, not a user error: keep the trace for the page
            self._set(
                status="failed",
                message=f"training failed: {type(e).__name__}: {e}",
                error=traceback.format_exc(),
                finished=time.time(),
            )


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

    @classmethod
    def from_env(cls, store_root: str | None = None) -> JobRegistry:
        """The dashboard's registry: a run whose browser went away (no page of its
        session has run for ``AECORE_ABANDON_AFTER_S``, default 30 min) is stopped and
        saved as far as it got; finished runs are listed for ``AECORE_KEEP_FINISHED_S``
        (default 6 h)."""
        return cls(
            store_root,
            abandon_after_s=float(os.environ.get("AECORE_ABANDON_AFTER_S", 1800)),
            keep_finished_s=float(os.environ.get("AECORE_KEEP_FINISHED_S", 6 * 3600)),
        )

    @property
    def heartbeat_s(self) -> float:
        """How often a page should say its session is still there: well inside the abandonment time."""
        return min(60.0, max(1.0, self.abandon_after_s / 4))

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
        name: str | None = None,
        *,
        resume_from: str | None = None,
        overwrite: bool = False,
        snapshot_every_s: float = 1.0,
        start: bool = True,
    ) -> TrainingJob:
        """Check what can be checked at once (the name by the pipeline's rule,
        hyper-parameters, device, what a resumed model allows), then start the
        job's thread. Data loading errors arrive as a failed job. ``name=None``:
        a unique default name."""
        train_cfg = request.train_config()  # raises ConfigError on out-of-range hyper-parameters
        device = str(pick_device(request.device))
        if train_cfg.precision == "bf16":
            ok, why = bf16_support(pick_device(request.device))
            if not ok:
                raise ConfigError(f"bf16 precision is refused: {why}. Use precision fp32.")
        store = ModelStore(self.store_root)
        name = check_name(store, name, request, overwrite, resume_from)
        if resume_from is not None:
            resume_config(request, store.load(resume_from))  # a refused change is reported now, not later
        job = TrainingJob(
            uuid.uuid4().hex[:10],
            request,
            name,
            device,
            resume_from=resume_from,
            overwrite=overwrite,
            store_root=self.store_root,
            snapshot_every_s=snapshot_every_s,
            epochs=request.epochs or train_cfg.epochs,
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


__all__ = ["ACTIVE", "JobRegistry", "JobView", "TrainingJob"]
