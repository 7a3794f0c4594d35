"""The trainer: whole dataset on the device, batches cut by index, callbacks.

Speed comes from doing no per-item work: the splits are converted to one
tensor each, once, and every batch is an ``index_select`` of a shuffled
permutation (see ../shared/notes/speed.md: 1.3-4x over a DataLoader here).
The loop asks its :class:`aecore.control.RunControl` before every batch (go,
pause or stop), refuses to apply a step whose loss is not finite, and reports
through callbacks that a progress bar or the dashboard can follow without
knowing anything about training. It also records the run's timeline
(:mod:`aecore.timeline`): the codes of a fixed probe set at every epoch's end,
and within epochs for short runs, within a time budget.

``Trainer.fit`` runs its parts in order: ``_setup`` (seeds, the splits on the
device, this process's shard, the optimiser), then for each epoch
``_train_epoch`` (``get_batch`` and ``train_step`` for every batch) and
``_end_epoch`` (``estimate_loss`` on the validation split, best weights, early
stopping, the history record), and ``_finish``. What differs under DDP lives in
aecore.distributed, whose functions hand back their input when there is one process.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch

from aecore import distributed
from aecore.control import RunControl
from aecore.data import DataBundle, as_float
from aecore.device import bf16_support, pick_device
from aecore.errors import ConfigError
from aecore.models import Autoencoder
from aecore.normalise import Normaliser
from aecore.timeline import MIN_FRAMES, RECON_ITEMS, Frame, Timeline

# A frame within an epoch is taken only while such frames so far took at most this share
# of the training time, plus a fixed 20 ms so that a run of a fraction of a second (the
# built-in digits) still gets its frames. The frame before training and those at epoch
# ends are always taken (one probe pass costs less than validation's pass over all of
# the validation split). bench/speed.py's timeline section measures the total.
TIMELINE_BUDGET = 0.015
TIMELINE_FLOOR_S = 0.02


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    lr_schedule: Literal["constant", "cosine"] = "constant"
    early_stopping_patience: int | None = None
    min_delta: float = 0.0
    # Keras' EarlyStopping keeps the last weights; most users expect the best.
    restore_best: bool = True
    drop_last: bool = False
    seed: int = 0
    device: str = "auto"
    # "bf16" runs the forward and backward passes under bf16 autocast: opt-in,
    # refused where the hardware has no fast bf16 (see bench/ for its quality cost).
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self):
        def bad(msg):
            raise ConfigError(msg)

        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or not 1 <= self.epochs <= 100_000:
            bad(f"epochs must be an integer from 1 to 100000; got {self.epochs!r}.")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not 1 <= self.batch_size <= 1_000_000
        ):
            bad(f"batch size must be an integer from 1 to 1000000; got {self.batch_size!r}.")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or not 0 < self.lr <= 100:
            bad(f"learning rate must be a number above 0 and at most 100; got {self.lr!r}.")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            bad(f"optimizer must be adam, adamw or sgd; got {self.optimizer!r}.")

        def number(v) -> bool:  # from JSON anything can arrive, and lists do not compare with 0
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        if not number(self.weight_decay) or not 0 <= self.weight_decay <= 10:
            bad(f"weight decay must be between 0 and 10; got {self.weight_decay!r}.")
        if not number(self.momentum) or not 0 <= self.momentum < 1:
            bad(f"momentum must be in [0, 1); got {self.momentum!r}.")
        if self.lr_schedule not in ("constant", "cosine"):
            bad(f"lr schedule must be constant or cosine; got {self.lr_schedule!r}.")
        if self.early_stopping_patience is not None and not (
            number(self.early_stopping_patience)
            and isinstance(self.early_stopping_patience, int)
            and self.early_stopping_patience >= 1
        ):
            bad("early stopping patience must be a positive integer (or off).")
        if not isinstance(self.min_delta, (int, float)) or not 0 <= self.min_delta < math.inf:
            bad(f"early stopping min_delta must be a number from 0 up; got {self.min_delta!r}.")
        for flag in ("restore_best", "drop_last"):
            if not isinstance(getattr(self, flag), bool):
                bad(f"{flag.replace('_', ' ')} must be true or false; got {getattr(self, flag)!r}.")
        if not isinstance(self.device, str):
            bad(f"device must be a name such as auto, cpu or cuda; got {self.device!r}.")
        if self.precision not in ("fp32", "bf16"):
            bad(f"precision must be fp32 or bf16; got {self.precision!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            bad(f"seed must be a non-negative integer; got {self.seed!r}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"training options must be a JSON object; got {type(d).__name__}.")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(map(str, unknown)))}.")
        return cls(**d)


@dataclass
class Snapshot:
    """What a live view draws: originals over reconstructions (display space,
    [0, 1] images; token ids for sequences) and codes of validation items."""

    originals: np.ndarray
    reconstructions: np.ndarray
    codes: np.ndarray
    labels: np.ndarray | None


@dataclass
class StepEvent:
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    global_step: int
    loss: float
    terms: dict[str, float]
    images_per_s: float
    elapsed_s: float
    eta_s: float
    snapshot: Snapshot | None = None


@dataclass
class PauseEvent:
    epoch: int  # 1-based: the epoch the next batch belongs to
    step: int  # batches of that epoch already done
    steps_per_epoch: int
    global_step: int  # batches done in this run
    snapshot: Snapshot | None = None  # the model as it stands while paused


@dataclass
class EpochEvent:
    epoch: int
    epochs: int
    train_loss: float
    train_terms: dict[str, float]
    val_loss: float | None
    val_terms: dict[str, float]
    images_per_s: float
    elapsed_s: float
    eta_s: float
    best_epoch: int
    snapshot: Snapshot | None = None


class Callback(Protocol):
    """Any subset of these methods; the trainer calls the ones that exist."""

    def on_train_start(self, info: dict) -> None: ...
    def on_step_end(self, event: StepEvent) -> None: ...
    def on_epoch_end(self, event: EpochEvent) -> None: ...
    def on_pause(self, event: PauseEvent) -> None: ...
    def on_resume(self, event: PauseEvent) -> None: ...
    def on_frame(self, timeline: Timeline, frame: Frame) -> None: ...
    def on_train_end(self, result: TrainResult) -> None: ...


@dataclass
class TrainResult:
    status: Literal["done", "stopped", "early_stopped", "diverged", "failed"]
    message: str
    history: list[dict]
    epochs_run: int  # in this call
    best_epoch: int
    wall_s: float
    images_per_s: float
    optimizer_state: dict | None = None
    timeline_s: float = 0.0  # seconds spent recording timeline frames (bench/speed.py's timeline section)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "stopped", "early_stopped")

    @property
    def final_train_loss(self) -> float | None:
        return self.history[-1]["train_loss"] if self.history else None

    @property
    def final_val_loss(self) -> float | None:
        return self.history[-1]["val_loss"] if self.history else None


_MALLOC_TUNED = False


def tune_malloc() -> None:
    """Raise glibc's mmap and trim thresholds once per process.

    Without it every conv step maps and unmaps its large activation buffers and
    pays the page faults again (speed.md: 1.4-1.8x on the conv presets)."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1024 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows, musl): nothing to tune


def split_tensors(
    bundle: DataBundle, split: str, normaliser: Normaliser, device: torch.device, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One split as model-space tensors on the device, converted once."""
    s = getattr(bundle, split)
    if bundle.kind == "sequence":
        x = torch.as_tensor(s.x, dtype=torch.long, device=device)
        t = torch.as_tensor(s.target, dtype=torch.long, device=device)
        return x, t
    x = torch.as_tensor(as_float(s.x, bundle), dtype=torch.float32).to(device)
    x = normaliser.forward(x)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    t = None if s.target is None else normaliser.forward(torch.as_tensor(s.target, dtype=torch.float32).to(device))
    return x, t


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused Adam does the whole update in one kernel per dtype (speed.md: +5-20%).
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    except (RuntimeError, TypeError):
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def has_conv(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@torch.no_grad()
def evaluate(
    model: Autoencoder, x: torch.Tensor, target: torch.Tensor | None, batch_size: int, autocast=contextlib.nullcontext
) -> tuple[float, dict[str, float]]:
    """Mean loss and terms over a split, weighting batches by their size."""
    model.eval()
    totals: dict[str, float] = {}
    n = len(x)
    for i in range(0, n, batch_size):
        xb = x[i : i + batch_size]
        tb = None if target is None else target[i : i + batch_size]
        with autocast():
            out = model(xb, tb)
        for k, v in out.terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(xb)
    terms = {k: v / n for k, v in totals.items()}
    return sum(terms.values()), terms


@torch.no_grad()
def take_snapshot(
    model: Autoencoder,
    bundle: DataBundle,
    normaliser: Normaliser,
    x: torch.Tensor,
    labels: np.ndarray | None,
    n_images: int = 8,
) -> Snapshot:
    was_training = model.training
    model.eval()
    try:
        # in chunks: 2,000 conv items at once would hold ~200 MB of activations
        codes = np.concatenate(
            [model.embed(x[i : i + 512]).float().cpu().numpy() for i in range(0, max(len(x), 1), 512)]
        )
        xs = x[:n_images]
        if bundle.kind == "sequence":
            orig, rec = xs.cpu().numpy(), model.reconstruct(xs).cpu().numpy()
        else:
            rec_t = normaliser.inverse(model.reconstruct(xs).float())
            orig_t = normaliser.inverse(xs.float())
            if bundle.kind == "image":
                rec_t, orig_t = rec_t.clamp(0, 1), orig_t.clamp(0, 1)
            orig, rec = orig_t.cpu().numpy(), rec_t.cpu().numpy()
    finally:
        model.train(was_training)
    return Snapshot(orig, rec, codes, labels)


@dataclass(eq=False)
class _Run:
    """One call of ``fit``: the data on the device, the optimiser, and what one
    epoch hands on to the next (best loss, last good weights, counters, outcome)."""

    model: Autoencoder
    train_model: torch.nn.Module  # the model, or its DDP wrapper (distributed.wrap)
    bundle: DataBundle
    normaliser: Normaliser
    dist: distributed.DistInfo
    # None once released after running out of memory
    x: torch.Tensor | None  # this process's shard of the training split
    t: torch.Tensor | None
    xv: torch.Tensor | None
    tv: torch.Tensor | None
    snap_x: torch.Tensor
    snap_labels: np.ndarray | None
    gen: torch.Generator
    n: int  # training items on this process
    bs: int  # items per step on this process
    steps: int  # per epoch
    total_steps: int
    eval_bs: int
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR | None
    channels_last: bool
    history: list[dict]
    start_epoch: int
    best: float
    best_epoch: int
    last_good: dict
    best_state: dict | None = None
    bad_epochs: int = 0
    status: Literal["done", "stopped", "early_stopped", "diverged", "failed"] = "done"
    message: str = ""
    epochs_run: int = 0
    seen: int = 0  # items trained on, all processes together
    train_time: float = 0.0  # seconds in the epochs' steps, validation excluded
    t0: float = 0.0
    last_snap: float = 0.0
    timeline: Timeline | None = None  # recorded on the main process only
    probe_x: torch.Tensor | None = None  # the timeline's probe items, model space, on the device
    frame_every: int | None = None  # steps between frames within epochs (short runs)
    base_step: int = 0  # the timeline's steps before this run
    record_s: float = 0.0  # seconds spent recording timeline frames
    within_s: float = 0.0  # of which frames within epochs (the ones TIMELINE_BUDGET limits)


@dataclass
class _Epoch:
    index: int  # 0-based within this call of fit
    number: int  # 1-based over the whole history: a resumed run counts on
    sums: dict[str, float] = field(default_factory=dict)  # term -> its sum over the items
    seen: int = 0  # items, all processes together
    train_s: float = 0.0
    paused_s: float = 0.0  # not training: speed and time left leave it out
    steps_done: int = 0  # batches applied


@dataclass
class _Step:
    outcome: Literal["applied", "stopped", "diverged"]
    loss: float = math.nan
    terms: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Trains one model on one dataset. Thread-safe to drive from a worker thread:
    it never touches UI code, and ``stop_event`` may be set (or ``control``
    paused, stepped and stopped) from any thread, or from another process when
    the control was made for it."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: list[Any] | tuple = (),
        stop_event: threading.Event | None = None,
        snapshot_every_s: float | None = None,
        snapshot_items: int = 500,
        control: RunControl | None = None,
    ):
        self.config = config
        self.callbacks = list(callbacks)
        self.control = control or RunControl(stop_event)
        self.stop_event = self.control.stop_event
        self.snapshot_every_s = snapshot_every_s
        self.snapshot_items = snapshot_items
        self.device = pick_device(config.device)
        if config.precision == "bf16":
            ok, why = bf16_support(self.device)
            if not ok:
                raise ConfigError(f"bf16 precision is refused: {why}. Use precision fp32.")

    def _emit(self, name: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, name, None)
            if fn is not None:
                fn(*args)

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fit(
        self,
        model: Autoencoder,
        bundle: DataBundle,
        normaliser: Normaliser,
        history: list[dict] | None = None,
        optimizer_state: dict | None = None,
        timeline: Timeline | None = None,
    ) -> TrainResult:
        """Train for ``config.epochs`` more epochs. ``history`` and
        ``optimizer_state`` continue an earlier run (resume). Frames are appended
        to ``timeline`` (its probe indices name validation items)."""
        flush = self.device.type == "cpu"
        if flush:
            # Denormal floats take a slow microcode path on x86; tiny activations and
            # Adam moments produce them (measured 1.1-3x on the dense presets here).
            # The flag is per thread and outlives the call, so it is put back after.
            torch.set_flush_denormal(True)
        try:
            run = self._setup(model, bundle, normaliser, history, optimizer_state)
            self._setup_timeline(run, timeline)
            return self._fit(run)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, run: _Run) -> TrainResult:
        self._emit(
            "on_train_start",
            {
                "epochs": self.config.epochs,
                "steps_per_epoch": run.steps,
                "n_train": run.n,
                "start_epoch": run.start_epoch,
                "device": str(self.device),
            },
        )
        run.t0 = run.last_snap = time.perf_counter()
        if run.timeline is not None and not run.timeline.frames:
            self._record_frame(run, 0, float(run.start_epoch), None, None)  # the untrained code space
        try:
            for e in range(self.config.epochs):
                ep = self._train_epoch(run, e)
                # a stop before the epoch's first step leaves nothing to record
                if run.status == "diverged" or (run.status == "stopped" and ep.seen == 0):
                    break
                if not self._end_epoch(run, ep):
                    break
        except RuntimeError as err:
            if "out of memory" not in str(err).lower():
                raise
            self._out_of_memory(run)
        return self._finish(run)

    def _setup(
        self,
        model: Autoencoder,
        bundle: DataBundle,
        normaliser: Normaliser,
        history: list[dict] | None,
        optimizer_state: dict | None,
    ) -> _Run:
        """Seeds, the model and the splits on the device, this process's shard,
        the optimiser and its schedule, and the best epoch so far."""
        cfg, device = self.config, self.device
        history = list(history or [])
        start_epoch = len(history)
        # seeded by the epoch too, so that a resumed run does not replay the first epochs' draws
        torch.manual_seed(cfg.seed + start_epoch)
        if device.type == "cpu":
            tune_malloc()
        channels_last = device.type == "cpu" and has_conv(model)
        model.to(device)
        if channels_last:
            # NHWC lets oneDNN run the convolutions without reordering (speed.md: 1.6-1.7x).
            model.to(memory_format=torch.channels_last)
        model.data_range = normaliser.model_range()

        x, t = split_tensors(bundle, "train", normaliser, device, channels_last)
        xv, tv = split_tensors(bundle, "val", normaliser, device, channels_last)
        di = distributed.current()
        x, t = distributed.shard(x, t, di)
        gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + start_epoch, di))
        n = len(x)
        bs = min(distributed.local_batch_size(cfg.batch_size, di), n)
        steps = n // bs if cfg.drop_last else math.ceil(n / bs)
        # A batch-summed loss grows with the batch, so validation must use the
        # training batch size for its numbers to compare with the training loss.
        batch_sum = getattr(model.config, "loss", None) is not None and model.config.loss.reduction == "batch_sum"
        eval_bs = bs if batch_sum else max(bs, 1024)

        opt = make_optimizer(model, cfg, device)
        if optimizer_state is not None:
            try:
                opt.load_state_dict(optimizer_state)
            except (ValueError, KeyError, RuntimeError):
                pass  # a changed optimizer starts fresh; weights still resume
        total_steps = steps * cfg.epochs
        sched = None
        if cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
            )

        best = min((h["val_loss"] for h in history if h.get("val_loss") is not None), default=math.inf)
        return _Run(
            model=model,
            train_model=distributed.wrap(model, di),
            bundle=bundle,
            normaliser=normaliser,
            dist=di,
            x=x,
            t=t,
            xv=xv,
            tv=tv,
            snap_x=xv[: self.snapshot_items],
            snap_labels=None if bundle.val.labels is None else bundle.val.labels[: self.snapshot_items],
            gen=gen,
            n=n,
            bs=bs,
            steps=steps,
            total_steps=total_steps,
            eval_bs=eval_bs,
            opt=opt,
            sched=sched,
            channels_last=channels_last,
            history=history,
            start_epoch=start_epoch,
            best=best,
            best_epoch=next((h["epoch"] for h in history if h.get("val_loss") == best), 0),
            last_good=copy.deepcopy(model.state_dict()),
        )

    def _setup_timeline(self, run: _Run, timeline: Timeline | None) -> None:
        """The probe items on the device, and when frames fall: at every epoch's end
        and, in a run of fewer than MIN_FRAMES epochs, every ``frame_every`` steps."""
        if timeline is None or not run.dist.is_main or not len(run.xv):
            return
        idx = torch.as_tensor(timeline.probe_index, dtype=torch.long, device=run.xv.device)
        if not len(idx) or int(idx.min()) < 0 or int(idx.max()) >= len(run.xv):
            raise ConfigError(
                f"the timeline's probe items are not in this validation split of {len(run.xv)} items; "
                "start a new timeline for this data."
            )
        run.timeline, run.probe_x = timeline, run.xv.index_select(0, idx)
        run.base_step = timeline.frames[-1].step if timeline.frames else run.start_epoch * run.steps
        if self.config.epochs < MIN_FRAMES:
            run.frame_every = max(1, run.total_steps // MIN_FRAMES)

    def _record_frame(
        self, run: _Run, done: int, epoch: float, train_loss: float | None, val_loss: float | None = None
    ) -> None:
        """One timeline frame after ``done`` batches of this run: the probe's codes and
        the first RECON_ITEMS probe items' reconstructions, display space."""
        tl, t = run.timeline, time.perf_counter()
        snap = take_snapshot(run.model, run.bundle, run.normaliser, run.probe_x, None, RECON_ITEMS)
        images = run.bundle.kind != "sequence"  # token ids are not pictures: codes only
        if tl.originals is None and images:
            tl.originals = snap.originals.astype(np.float32)
        codes = snap.codes.reshape(len(snap.codes), -1).astype(np.float32)  # (P, ...) -> (P, latent_dim)
        recons = snap.reconstructions.astype(np.float32) if images else None
        frame = Frame(run.base_step + done, epoch, codes, recons, train_loss, val_loss)
        try:
            tl.append(frame)
        except ValueError:  # non-finite codes of a diverging step: the replay goes without them
            return
        finally:
            run.record_s += time.perf_counter() - t
        self._emit("on_frame", tl, frame)

    def get_batch(self, run: _Run, perm: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch ``s`` of the epoch: the items at ``perm[s * bs : (s + 1) * bs]``
        (the last batch may be short), gathered on the device."""
        idx = perm[s * run.bs : (s + 1) * run.bs]
        xb = run.x.index_select(0, idx)
        tb = None if run.t is None else run.t.index_select(0, idx)
        return xb, tb

    def train_step(self, run: _Run, xb: torch.Tensor, tb: torch.Tensor | None) -> _Step:
        """Forward, then backward and an optimiser step, unless the loss is not
        finite or a stop was asked for (under DDP: by any process)."""
        with self._autocast():
            out = run.train_model(xb, tb)
        # one device sync per step: the values feed the progress display
        # and the divergence check before the step is applied
        vt = torch.stack([v.detach().float() for v in out.terms.values()])  # (n_terms,)
        vt, stop = distributed.reduce_terms_and_stop(vt, self.stop_event.is_set(), run.dist)
        if stop:
            return _Step("stopped")
        terms = dict(zip(out.terms, vt.tolist()))
        loss = float(sum(terms.values()))
        if not math.isfinite(loss):
            return _Step("diverged", loss, terms)
        run.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        run.opt.step()
        if run.sched is not None:
            run.sched.step()
        return _Step("applied", loss, terms)

    def _train_epoch(self, run: _Run, e: int) -> _Epoch:
        """One pass over this process's shard in a fresh order. It ends early on a
        stop request or a non-finite loss; ``run.status`` then says which."""
        ep = _Epoch(index=e, number=run.start_epoch + e + 1)
        run.model.train()
        perm = torch.randperm(run.n, generator=run.gen).to(self.device)
        te = time.perf_counter()
        for s in range(run.steps):
            # Alone, a pause or stop is taken before the batch; under DDP (no controls
            # but stop) only through the step's reduce, so every process stops at one step.
            if not run.dist.enabled and not self._gate(run, ep, s):
                run.status, run.message = "stopped", f"stopped by request during epoch {ep.number}."
                break
            xb, tb = self.get_batch(run, perm, s)
            step = self.train_step(run, xb, tb)
            if step.outcome == "stopped":
                run.status, run.message = "stopped", f"stopped by request during epoch {ep.number}."
                break
            if step.outcome == "diverged":
                kept = (
                    f"the weights from the end of epoch {ep.number - 1} were kept"
                    if ep.number > 1
                    else "no epoch finished, so no trained weights exist"
                )
                self._diverge(
                    run,
                    f"training diverged: the loss became {step.loss} at epoch {ep.number}, step {s + 1} "
                    f"(learning rate {self.config.lr:g}); {kept}. Lower the learning rate and try again.",
                )
                break
            for k, v in step.terms.items():
                ep.sums[k] = ep.sums.get(k, 0.0) + v * len(xb) * run.dist.world_size
            ep.seen += len(xb) * run.dist.world_size
            ep.steps_done += 1
            run.seen += len(xb) * run.dist.world_size
            if self.callbacks:
                self._report_step(run, ep, s, step, te)
            if run.frame_every and s + 1 < run.steps and (ep.index * run.steps + s + 1) % run.frame_every == 0:
                train_so_far = run.train_time + time.perf_counter() - te - ep.paused_s
                if run.within_s <= TIMELINE_BUDGET * train_so_far + TIMELINE_FLOOR_S:
                    t = time.perf_counter()
                    self._record_frame(
                        run, ep.index * run.steps + s + 1, ep.number - 1 + (s + 1) / run.steps, step.loss
                    )
                    run.within_s += time.perf_counter() - t
                    ep.paused_s += time.perf_counter() - t  # a frame is not training time
        ep.train_s = time.perf_counter() - te - ep.paused_s
        run.train_time += ep.train_s
        return ep

    def _gate(self, run: _Run, ep: _Epoch, s: int) -> bool:
        """Ask the control before batch ``s``: True to train it. A pause shows the
        model as it stands (``on_pause`` carries a snapshot) and waits; the time
        paused counts neither for speed nor for the time left."""
        g = self.control.gate()
        if g == "pause":
            done = ep.index * run.steps + s
            snap = take_snapshot(run.model, run.bundle, run.normaliser, run.snap_x, run.snap_labels)
            event = PauseEvent(ep.number, s, run.steps, done, snap)
            self._emit("on_pause", event)
            t = time.perf_counter()
            while g == "pause":
                self.control.wait()
                g = self.control.gate()
            ep.paused_s += time.perf_counter() - t
            run.last_snap = time.perf_counter()
            if g == "go":
                self._emit("on_resume", dataclasses.replace(event, snapshot=None))
        return g == "go"

    def _report_step(self, run: _Run, ep: _Epoch, s: int, step: _Step, te: float) -> None:
        """``on_step_end``, with a snapshot when ``snapshot_every_s`` has passed since the last."""
        now = time.perf_counter()
        elapsed_train = run.train_time + (now - te) - ep.paused_s
        ips = run.seen / max(elapsed_train, 1e-9)
        done_steps = ep.index * run.steps + s + 1
        eta = (run.total_steps - done_steps) * elapsed_train / done_steps
        snap = None
        if self.snapshot_every_s is not None and now - run.last_snap >= self.snapshot_every_s:
            snap = take_snapshot(run.model, run.bundle, run.normaliser, run.snap_x, run.snap_labels)
            run.last_snap = time.perf_counter()
        self._emit(
            "on_step_end",
            StepEvent(ep.number, s + 1, run.steps, done_steps, step.loss, step.terms, ips, now - run.t0, eta, snap),
        )

    def estimate_loss(self, run: _Run) -> tuple[float | None, dict[str, float]]:
        """The validation loss and its terms; (None, {}) without a validation split."""
        if not len(run.xv):
            return None, {}
        return evaluate(run.model, run.xv, run.tv, run.eval_bs, self._autocast)

    def _end_epoch(self, run: _Run, ep: _Epoch) -> bool:
        """Validation, the best and last good weights, the history record and
        ``on_epoch_end``. False when training ends here: a non-finite validation
        loss, a stop request, or early stopping."""
        cfg = self.config
        train_terms = {k: v / max(ep.seen, 1) for k, v in ep.sums.items()}
        val_loss, val_terms = self.estimate_loss(run)
        if val_loss is not None and not math.isfinite(val_loss):
            self._diverge(
                run,
                f"training diverged: the validation loss became {val_loss} after epoch {ep.number} "
                f"(learning rate {cfg.lr:g}); the previous weights were kept. "
                "Lower the learning rate and try again.",
            )
            return False
        run.epochs_run += 1
        run.last_good = copy.deepcopy(run.model.state_dict())
        self._track_best(run, ep, val_loss)
        ips = run.seen / max(run.train_time, 1e-9)
        record = {
            "epoch": ep.number,
            "train_loss": sum(train_terms.values()),
            "train_terms": train_terms,
            "val_loss": val_loss,
            "val_terms": val_terms,
            "images_per_s": ep.seen / max(ep.train_s, 1e-9),
            "elapsed_s": time.perf_counter() - run.t0,
            "partial": run.status == "stopped",
        }
        run.history.append(record)
        eta = (cfg.epochs - ep.index - 1) * (time.perf_counter() - run.t0) / (ep.index + 1)
        snap = take_snapshot(run.model, run.bundle, run.normaliser, run.snap_x, run.snap_labels)
        if run.timeline is not None:
            done = ep.index * run.steps + ep.steps_done
            self._record_frame(
                run, done, run.start_epoch + ep.index + ep.steps_done / run.steps, record["train_loss"], val_loss
            )
        self._emit(
            "on_epoch_end",
            EpochEvent(
                ep.number,
                run.start_epoch + cfg.epochs,
                record["train_loss"],
                train_terms,
                val_loss,
                val_terms,
                ips,
                time.perf_counter() - run.t0,
                eta,
                run.best_epoch,
                snap,
            ),
        )
        if run.status == "stopped":
            return False
        if cfg.early_stopping_patience and run.bad_epochs >= cfg.early_stopping_patience:
            run.status = "early_stopped"
            run.message = (
                f"early stopping: no improvement of the validation loss for "
                f"{cfg.early_stopping_patience} epochs; best was epoch {run.best_epoch}."
            )
            return False
        return True

    def _track_best(self, run: _Run, ep: _Epoch, val_loss: float | None) -> None:
        """Early stopping's bookkeeping: the best validation loss, its epoch and
        (when they are to be restored) its weights, and the epochs since."""
        cfg = self.config
        if val_loss is not None and val_loss < run.best - cfg.min_delta:
            run.best, run.best_epoch, run.bad_epochs = val_loss, ep.number, 0
            if cfg.early_stopping_patience and cfg.restore_best:
                run.best_state = copy.deepcopy(run.model.state_dict())
        else:
            run.bad_epochs += 1

    def _diverge(self, run: _Run, message: str) -> None:
        run.model.load_state_dict(run.last_good)
        run.status, run.message = "diverged", message

    def _out_of_memory(self, run: _Run) -> None:
        run.model.load_state_dict(run.last_good)
        # the splits go first, so that the allocator's cache has their memory to hand back
        run.x = run.t = run.xv = run.tv = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        run.status = "failed"
        run.message = (
            f"out of memory on {self.device}: try a smaller batch size or model; the last good weights were kept."
        )

    def _finish(self, run: _Run) -> TrainResult:
        """The best weights back where early stopping asks for them, the final
        message, the model's usual memory layout, and ``on_train_end``."""
        if run.best_state is not None and run.status in ("done", "early_stopped"):
            run.model.load_state_dict(run.best_state)
            if run.status == "early_stopped":
                run.message += " Its weights were restored."
        if run.status == "done":
            run.message = f"trained {run.epochs_run} epoch(s)."
        if run.channels_last:
            run.model.to(memory_format=torch.contiguous_format)
        result = TrainResult(
            run.status,
            run.message,
            run.history,
            run.epochs_run,
            run.best_epoch,
            time.perf_counter() - run.t0,
            run.seen / max(run.train_time, 1e-9),
            run.opt.state_dict(),
            run.record_s,
        )
        self._emit("on_train_end", result)
        return result
