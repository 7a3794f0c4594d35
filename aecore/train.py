"""The trainer: whole dataset on the device, batches cut by index, callbacks.

Speed comes from doing no per-item work: the splits are converted to one
tensor each, once, and every batch is an ``index_select`` of a shuffled
permutation (see ../shared/notes/speed.md: 1.3-4x over a DataLoader here).
The loop checks a stop event before every batch, refuses to apply a step whose
loss is not finite, and reports through callbacks that a progress bar or the
dashboard can follow without knowing anything about training.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch

from aecore import distributed
from aecore.data import DataBundle, as_float
from aecore.device import bf16_support, pick_device
from aecore.errors import ConfigError
from aecore.models import Autoencoder
from aecore.normalise import Normaliser


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
        codes = model.embed(x).float().cpu().numpy()
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


class Trainer:
    """Trains one model on one dataset. Thread-safe to drive from a worker thread:
    it never touches UI code, and ``stop_event`` may be set from any thread."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: list[Any] | tuple = (),
        stop_event: threading.Event | None = None,
        snapshot_every_s: float | None = None,
        snapshot_items: int = 500,
    ):
        self.config = config
        self.callbacks = list(callbacks)
        self.stop_event = stop_event or threading.Event()
        self.snapshot_every_s = snapshot_every_s
        self.snapshot_items = snapshot_items
        self.device = pick_device(config.device)
        if config.precision == "bf16":
            ok, why = bf16_support(self.device)
            if not ok:
                raise ConfigError(f"bf16 precision is refused: {why}. Use precision fp32.")

    def _emit(self, name: str, arg) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, name, None)
            if fn is not None:
                fn(arg)

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
    ) -> TrainResult:
        """Train for ``config.epochs`` more epochs. ``history`` and
        ``optimizer_state`` continue an earlier run (resume)."""
        flush = self.device.type == "cpu"
        if flush:
            # Denormal floats take a slow microcode path on x86; tiny activations and
            # Adam moments produce them (measured 1.1-3x on the dense presets here).
            # The flag is per thread and outlives the call, so it is put back after.
            torch.set_flush_denormal(True)
        try:
            return self._fit(model, bundle, normaliser, history, optimizer_state)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(
        self,
        model: Autoencoder,
        bundle: DataBundle,
        normaliser: Normaliser,
        history: list[dict] | None,
        optimizer_state: dict | None,
    ) -> TrainResult:
        cfg, device = self.config, self.device
        history = list(history or [])
        start_epoch = len(history)
        torch.manual_seed(cfg.seed + start_epoch)
        gen = torch.Generator().manual_seed(cfg.seed + start_epoch)
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
        train_model: torch.nn.Module = model
        global_bs = cfg.batch_size
        if di.enabled:
            # Equal shards so that every process runs the same number of steps
            # (a rank with one step more would wait forever in its all-reduce).
            per = len(x) // di.world_size
            x = x[di.rank :: di.world_size][:per]
            t = None if t is None else t[di.rank :: di.world_size][:per]
            global_bs = max(cfg.batch_size // di.world_size, 1)
            gen.manual_seed(cfg.seed + start_epoch + 1000 * di.rank)
            train_model = torch.nn.parallel.DistributedDataParallel(model)
        n = len(x)
        bs = min(global_bs, n)
        steps = n // bs if cfg.drop_last else math.ceil(n / bs)
        batch_sum = getattr(model.config, "loss", None) is not None and model.config.loss.reduction == "batch_sum"
        eval_bs = bs if batch_sum else max(bs, 1024)
        snap_x = xv[: self.snapshot_items]
        snap_labels = None if bundle.val.labels is None else bundle.val.labels[: self.snapshot_items]

        opt = make_optimizer(model, cfg, device)
        if optimizer_state is not None:
            try:
                opt.load_state_dict(optimizer_state)
            except (ValueError, KeyError, RuntimeError):
                optimizer_state = None  # a changed optimizer starts fresh; weights still resume
        total_steps = steps * cfg.epochs
        sched = None
        if cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
            )

        best = min((h["val_loss"] for h in history if h.get("val_loss") is not None), default=math.inf)
        best_epoch = next((h["epoch"] for h in history if h.get("val_loss") == best), 0)
        best_state = None
        last_good = copy.deepcopy(model.state_dict())
        bad_epochs = 0
        status, message = "done", ""
        self._emit(
            "on_train_start",
            {
                "epochs": cfg.epochs,
                "steps_per_epoch": steps,
                "n_train": n,
                "start_epoch": start_epoch,
                "device": str(device),
            },
        )
        t0 = time.perf_counter()
        train_time, seen = 0.0, 0
        last_snap = time.perf_counter()
        epochs_run = 0
        try:
            for e in range(cfg.epochs):
                epoch = start_epoch + e + 1
                model.train()
                perm = torch.randperm(n, generator=gen).to(device)
                sums: dict[str, float] = {}
                epoch_seen = 0
                te = time.perf_counter()
                for s in range(steps):
                    if not di.enabled and self.stop_event.is_set():
                        status, message = "stopped", f"stopped by request during epoch {epoch}."
                        break
                    idx = perm[s * bs : (s + 1) * bs]
                    xb = x.index_select(0, idx)
                    tb = None if t is None else t.index_select(0, idx)
                    with self._autocast():
                        out = train_model(xb, tb)
                    names = list(out.terms)
                    # one device sync per step: the values feed the progress display
                    # and the divergence check before the step is applied
                    vt = torch.stack([v.detach().float() for v in out.terms.values()])
                    if di.enabled:
                        # Every rank must take the same decision (stop, diverged) at the
                        # same step, so the terms and the stop flag are reduced together.
                        flag = torch.tensor([float(self.stop_event.is_set())], device=vt.device)
                        buf = torch.cat([vt, flag])
                        torch.distributed.all_reduce(buf)
                        if buf[-1].item() > 0:
                            status, message = "stopped", f"stopped by request during epoch {epoch}."
                            break
                        vt = buf[:-1] / di.world_size
                    vals = vt.tolist()
                    loss_val = float(sum(vals))
                    if not math.isfinite(loss_val):
                        model.load_state_dict(last_good)
                        kept = (
                            f"the weights from the end of epoch {epoch - 1} were kept"
                            if epoch > 1
                            else "no epoch finished, so no trained weights exist"
                        )
                        status = "diverged"
                        message = (
                            f"training diverged: the loss became {loss_val} at epoch {epoch}, step {s + 1} "
                            f"(learning rate {cfg.lr:g}); {kept}. Lower the learning rate and try again."
                        )
                        break
                    opt.zero_grad(set_to_none=True)
                    out.loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    for k, v in zip(names, vals):
                        sums[k] = sums.get(k, 0.0) + v * len(xb) * di.world_size
                    epoch_seen += len(xb) * di.world_size
                    seen += len(xb) * di.world_size
                    if self.callbacks:
                        now = time.perf_counter()
                        elapsed_train = train_time + (now - te)
                        ips = seen / max(elapsed_train, 1e-9)
                        done_steps = e * steps + s + 1
                        eta = (total_steps - done_steps) * elapsed_train / done_steps
                        snap = None
                        if self.snapshot_every_s is not None and now - last_snap >= self.snapshot_every_s:
                            snap = take_snapshot(model, bundle, normaliser, snap_x, snap_labels)
                            last_snap = time.perf_counter()
                        self._emit(
                            "on_step_end",
                            StepEvent(
                                epoch,
                                s + 1,
                                steps,
                                done_steps,
                                loss_val,
                                dict(zip(names, vals)),
                                ips,
                                now - t0,
                                eta,
                                snap,
                            ),
                        )
                epoch_train_s = time.perf_counter() - te
                train_time += epoch_train_s
                if status == "diverged" or (status == "stopped" and epoch_seen == 0):
                    break
                train_terms = {k: v / max(epoch_seen, 1) for k, v in sums.items()}
                val_loss, val_terms = (None, {})
                if len(xv):
                    val_loss, val_terms = evaluate(model, xv, tv, eval_bs, self._autocast)
                    if not math.isfinite(val_loss):
                        model.load_state_dict(last_good)
                        status = "diverged"
                        message = (
                            f"training diverged: the validation loss became {val_loss} after epoch {epoch} "
                            f"(learning rate {cfg.lr:g}); the previous weights were kept. "
                            "Lower the learning rate and try again."
                        )
                        break
                epochs_run += 1
                if status != "diverged":
                    last_good = copy.deepcopy(model.state_dict())
                improved = val_loss is not None and val_loss < best - cfg.min_delta
                if improved:
                    best, best_epoch, bad_epochs = val_loss, epoch, 0
                    if cfg.early_stopping_patience and cfg.restore_best:
                        best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
                ips = seen / max(train_time, 1e-9)
                record = {
                    "epoch": epoch,
                    "train_loss": sum(train_terms.values()),
                    "train_terms": train_terms,
                    "val_loss": val_loss,
                    "val_terms": val_terms,
                    "images_per_s": epoch_seen / max(epoch_train_s, 1e-9),
                    "elapsed_s": time.perf_counter() - t0,
                    "partial": status == "stopped",
                }
                history.append(record)
                eta = (cfg.epochs - e - 1) * (time.perf_counter() - t0) / (e + 1)
                snap = take_snapshot(model, bundle, normaliser, snap_x, snap_labels)
                self._emit(
                    "on_epoch_end",
                    EpochEvent(
                        epoch,
                        start_epoch + cfg.epochs,
                        record["train_loss"],
                        train_terms,
                        val_loss,
                        val_terms,
                        ips,
                        time.perf_counter() - t0,
                        eta,
                        best_epoch,
                        snap,
                    ),
                )
                if status == "stopped":
                    break
                if cfg.early_stopping_patience and bad_epochs >= cfg.early_stopping_patience:
                    status = "early_stopped"
                    message = (
                        f"early stopping: no improvement of the validation loss for "
                        f"{cfg.early_stopping_patience} epochs; best was epoch {best_epoch}."
                    )
                    break
        except RuntimeError as err:
            if "out of memory" not in str(err).lower():
                raise
            model.load_state_dict(last_good)
            del x, xv, t, tv
            if device.type == "cuda":
                torch.cuda.empty_cache()
            status = "failed"
            message = f"out of memory on {device}: try a smaller batch size or model; the last good weights were kept."
        if best_state is not None and status in ("done", "early_stopped"):
            model.load_state_dict(best_state)
            if status == "early_stopped":
                message += " Its weights were restored."
        if status == "done":
            message = f"trained {epochs_run} epoch(s)."
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        wall = time.perf_counter() - t0
        result = TrainResult(
            status, message, history, epochs_run, best_epoch, wall, seen / max(train_time, 1e-9), opt.state_dict()
        )
        self._emit("on_train_end", result)
        return result
