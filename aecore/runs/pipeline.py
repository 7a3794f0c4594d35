"""Train, then save: the one path from a request to a model in the store.

The CLI, the dashboard's training process (Train, Sequences, the Home quick
start and the Data page's manifold demo all submit jobs) and the benchmarks call
:func:`train_and_save`; nothing else saves a trained model. One name rule holds
everywhere: an explicit name that exists is refused unless overwriting is asked
for (or the run continues that model); a default name is made unique.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from aecore.control import RunControl
from aecore.data import DataBundle
from aecore.errors import AecoreError, StoreError
from aecore.explore.metrics import evaluate
from aecore.models.trained import TrainedModel
from aecore.runs.request import TrainRequest, load_data, prepare, resume_config
from aecore.store import ModelStore, validate_name
from aecore.timeline import Timeline, choose_probe
from aecore.train import TrainConfig, Trainer, TrainResult


@dataclass
class RunOutcome:
    tm: TrainedModel
    result: TrainResult
    bundle: DataBundle
    saved_as: str | None  # None: nothing was saved (no finished epoch, or not the saving process)
    notes: list[str] = field(default_factory=list)  # what the user should know: changed options, a changed name

    def __iter__(self):  # tm, result, bundle = train(...)
        return iter((self.tm, self.result, self.bundle))

    @property
    def message(self) -> str:
        saved = f" Saved as '{self.saved_as}'." if self.saved_as else " Nothing was saved (no finished epoch)."
        return " ".join([self.result.message + saved, *(n[0].upper() + n[1:] + "." for n in self.notes)])


def default_name(preset: str, dataset: str, store: ModelStore | None = None) -> str:
    """preset-dataset-YYYYMMDD-HHMMSS, with -2, -3... when that is taken."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{preset}-{dataset.split(':')[0]}").strip("-")[:60] or "model"
    name = f"{base}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if store is None:
        return name
    return next(c for c in (name if i == 1 else f"{name}-{i}" for i in range(1, 10_000)) if not store.exists(c))


def check_name(
    store: ModelStore, name: str | None, request: TrainRequest, overwrite: bool = False, resume_from: str | None = None
) -> str:
    """The name a run will save under, checked before it starts (see the module docstring)."""
    if resume_from is not None:
        validate_name(resume_from)
        if not store.exists(resume_from):
            raise StoreError(f"there is no saved model named '{resume_from}' to continue.")
        if name not in (None, resume_from):
            raise StoreError(f"a continued model is saved under its own name '{resume_from}', not '{name}'.")
        return resume_from
    if name is None or not name.strip():
        return default_name(request.preset, request.dataset or request.preset_obj().dataset, store)
    validate_name(name)
    if store.exists(name) and not overwrite:
        raise StoreError(
            f"a model named '{name}' already exists: choose another name, or allow overwriting it "
            "(--overwrite, or the Train page's Overwrite box)."
        )
    return name


def train(
    request: TrainRequest,
    callbacks=(),
    stop_event: threading.Event | None = None,
    snapshot_every_s: float | None = None,
    resume: TrainedModel | None = None,
    evaluate_after: bool = True,
    snapshot_items: int = 500,
    control: RunControl | None = None,
) -> RunOutcome:
    """Train a preset (or a custom model), or continue ``resume``, and evaluate it
    on the test split; its timeline is recorded (a continued model's is appended
    to). Saves nothing: :func:`train_and_save` does."""
    notes: list[str] = []
    if resume is not None:
        request = dataclasses.replace(request, dataset=request.dataset or resume.meta.dataset)
        train_cfg, notes = resume_config(request, resume)
        bundle = load_data(request)
        tm = resume
        if tuple(bundle.sample_shape) != tuple(tm.model.config.input_shape):
            raise StoreError(
                f"cannot continue on {bundle.name}: its items have shape {bundle.sample_shape}, "
                f"the model takes {tm.model.config.input_shape}."
            )
        same_optimizer = train_cfg.optimizer == tm.meta.train.get("optimizer", train_cfg.optimizer)
        optimizer_state = tm.optimizer_state if same_optimizer else None
        tm.model.train()
    else:
        bundle, tm, train_cfg = prepare(request)
        optimizer_state = None
    timeline = start_timeline(tm, bundle, train_cfg.seed, notes)
    trainer = Trainer(train_cfg, callbacks, stop_event, snapshot_every_s, snapshot_items, control)
    result = trainer.fit(tm.model, bundle, tm.normaliser, tm.history, optimizer_state, timeline)
    tm.timeline = timeline if timeline is not None and timeline.frames else tm.timeline
    metrics = record_run(tm, result, train_cfg)
    if evaluate_after and result.epochs_run > 0 and result.status != "failed":
        metrics.update(evaluate(tm, bundle))
    return RunOutcome(tm, result, bundle, None, notes)


def start_timeline(tm: TrainedModel, bundle: DataBundle, seed: int, notes: list[str]) -> Timeline | None:
    """The timeline a run records into: the model's own, continued, when its probe
    items are still this validation split's; else a new one over a seeded probe
    (None without validation items: there is nothing to probe)."""
    old, n_val = tm.timeline, len(bundle.val)
    if old is not None:
        if old.kind == bundle.kind and len(old.probe_index) and int(old.probe_index.max()) < n_val:
            return old
        notes.append("its earlier timeline does not fit this data, so a new one starts")
    if n_val == 0:
        return None
    probe = choose_probe(n_val, seed, tm.model.latent_dim)
    labels = None if bundle.val.labels is None else np.asarray(bundle.val.labels)[probe].astype(np.int64)
    return Timeline(bundle.kind, probe, labels, None)


def record_run(tm: TrainedModel, result: TrainResult, train_cfg: TrainConfig) -> dict:
    """Write what a finished ``Trainer.fit`` learned into ``tm``: its history,
    optimizer state, how it ended and the run's metrics (returned, to add test
    metrics to). Also what a benchmark that drives the Trainer itself records."""
    tm.history = result.history
    tm.optimizer_state = result.optimizer_state
    tm.meta.status, tm.meta.message = result.status, result.message
    tm.meta.train = train_cfg.to_dict()
    tm.meta.trained_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tm.model.eval()
    tm.metrics = {
        "status": result.status,
        "epochs": len(result.history),
        "images_per_s": result.images_per_s,
        "wall_s": result.wall_s,
        "final_train_loss": result.final_train_loss,
        "final_val_loss": result.final_val_loss,
        "best_epoch": result.best_epoch,
    }
    return tm.metrics


def train_and_save(
    request: TrainRequest,
    store: ModelStore,
    name: str | None = None,
    *,
    overwrite: bool = False,
    resume_from: str | None = None,
    callbacks=(),
    stop_event: threading.Event | None = None,
    snapshot_every_s: float | None = None,
    snapshot_items: int = 500,
    save: bool = True,
    world_size: int = 1,
    control: RunControl | None = None,
) -> RunOutcome:
    """Check the name, train (or continue ``resume_from``), evaluate, save.

    A run that finished no epoch, or failed, saves nothing. ``save=False`` (a
    non-zero rank under torchrun) trains and evaluates nothing but its shard."""
    name = check_name(store, name, request, overwrite, resume_from)
    resume, notes = (store.load(resume_from, with_optimizer=True) if resume_from else None), []
    if resume is not None:
        try:
            resume.timeline = store.timeline(resume_from)
        except AecoreError as e:  # the weights are fine; only the replay of the earlier epochs is lost
            notes.append(f"{e} A new timeline starts with this run")
    out = train(request, callbacks, stop_event, snapshot_every_s, resume, save, snapshot_items, control)
    out.notes[:0] = notes
    out.tm.meta.world_size = world_size
    if save and out.result.epochs_run > 0 and out.result.status != "failed":
        out.saved_as = _save(store, out.tm, name, overwrite or resume_from is not None)
        if out.saved_as != name:
            out.notes.append(f"'{name}' was taken by another model while this one trained, so it is '{out.saved_as}'")
    return out


def _save(store: ModelStore, tm: TrainedModel, name: str, overwrite: bool) -> str:
    if overwrite:
        store.save(name, tm, overwrite=True)
        return name
    # The name was free when the run started; another session may have taken it
    # since. Losing the trained model would be worse than a suffix.
    for i in range(1, 1000):
        candidate = name if i == 1 else f"{name}-{i}"
        try:
            store.save(candidate, tm, overwrite=False)
            return candidate
        except StoreError:
            if not store.exists(candidate):
                raise
    raise StoreError(f"could not find a free name next to '{name}'.")


__all__ = ["RunOutcome", "check_name", "default_name", "record_run", "train", "train_and_save"]
