"""aecore.train: stopping, divergence, early stopping, determinism, callbacks, resume."""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pytest
import torch

from aecore.device import bf16_support, pick_device
from aecore.errors import ConfigError
from aecore.models import DenseConfig, Sparsity, build_model
from aecore.normalise import Normaliser
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest
from aecore.train import TrainConfig, Trainer, evaluate, split_tensors

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def small(digits):
    return digits.limit(256)  # 256 train, full val (144) and test


def dense(seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = dict(input_shape=SHAPE, hidden=[32], latent_dim=8)
    cfg.update(kw)
    return build_model(DenseConfig(**cfg))


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder:
    """Keeps every event, and the model's weights at each epoch end."""

    def __init__(self, model=None):
        self.model = model
        self.start, self.steps, self.epochs, self.end = None, [], [], None
        self.weights: dict[int, dict] = {}

    def on_train_start(self, info):
        self.start = info

    def on_step_end(self, ev):
        self.steps.append(ev)

    def on_epoch_end(self, ev):
        self.epochs.append(ev)
        if self.model is not None:
            self.weights[ev.epoch] = state(self.model)

    def on_train_end(self, result):
        self.end = result


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=32, lr=1e-3, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


# --- stopping ------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 5, 11])
def test_stop_event_is_honoured_within_one_batch(small, k):
    stop = threading.Event()

    class StopAt(Recorder):
        def on_step_end(self, ev):
            super().on_step_end(ev)
            if ev.global_step == k:
                stop.set()

    rec = StopAt()
    result = Trainer(cfg(epochs=5, batch_size=32), [rec], stop_event=stop).fit(dense(), small, Normaliser("unit"))
    assert result.status == "stopped"
    assert len(rec.steps) == k  # exactly k steps ran: the event is checked before every batch
    assert rec.steps[-1].global_step == k
    steps_per_epoch = rec.start["steps_per_epoch"]
    assert result.history[-1]["epoch"] == (k - 1) // steps_per_epoch + 1
    assert rec.end is result


def test_stop_from_another_thread(small):
    stop = threading.Event()
    started = threading.Event()

    class Signal(Recorder):
        def on_step_end(self, ev):
            super().on_step_end(ev)
            started.set()

    rec = Signal()
    box = {}
    worker = threading.Thread(
        target=lambda: box.setdefault(
            "r", Trainer(cfg(epochs=100_000), [rec], stop_event=stop).fit(dense(), small, Normaliser("unit"))
        ),
        daemon=True,
    )  # a trainer that ignored the event must not keep pytest from exiting
    worker.start()
    assert started.wait(30)
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    assert box["r"].status == "stopped"


# --- divergence ------------------------------------------------------------------------------
def test_divergence_stops_training_and_keeps_finite_weights(small):
    # a linear output and plain SGD with a huge step: the loss overflows within the first epoch
    model = dense(output_activation="linear")
    initial = state(model)
    rec = Recorder(model)
    result = Trainer(cfg(epochs=4, batch_size=16, lr=100.0, optimizer="sgd"), [rec]).fit(
        model, small, Normaliser("unit")
    )
    assert result.status == "diverged"
    assert not result.ok
    assert "diverged" in result.message and "learning rate" in result.message
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    # no epoch ever finished cleanly, so the weights are the ones training started from
    assert same_state(state(model), initial)
    # and training stopped there: nothing ran after the epoch in which the loss blew up
    assert {ev.epoch for ev in rec.steps} == {1}, [(ev.epoch, ev.step) for ev in rec.steps]


def test_divergence_restores_the_last_good_epoch(small):
    model = dense()

    class BlowUp(Recorder):
        def on_step_end(self, ev):
            super().on_step_end(ev)
            if ev.epoch == 3 and ev.step == 1:  # weights turn NaN after epoch 2: the next loss is NaN
                with torch.no_grad():
                    model.encoder_layers[0].weight.fill_(float("nan"))

    rec = BlowUp(model)
    result = Trainer(cfg(epochs=5, batch_size=32), [rec]).fit(model, small, Normaliser("unit"))
    assert result.status == "diverged"
    assert "diverged" in result.message and "learning rate" in result.message
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    # nothing trained after the divergence in epoch 3 ...
    assert max(ev.epoch for ev in rec.steps) == 3, [(ev.epoch, ev.step) for ev in rec.steps]
    # ... and the weights are those of the end of epoch 2, the last good one
    assert same_state(state(model), rec.weights[2])
    assert [h["epoch"] for h in result.history][:2] == [1, 2]


def test_out_of_memory_ends_the_run_with_a_message_and_the_last_good_weights(small):
    model = dense()
    real_forward = model.forward

    class Oom(Recorder):
        armed = False

        def on_epoch_end(self, ev):
            super().on_epoch_end(ev)
            self.armed = ev.epoch == 2  # the first step of epoch 3 runs out of memory

    rec = Oom(model)

    def forward(*a, **kw):
        if rec.armed:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*a, **kw)

    model.forward = forward
    result = Trainer(cfg(epochs=5), [rec]).fit(model, small, Normaliser("unit"))
    assert result.status == "failed"
    assert "out of memory" in result.message and "smaller batch size" in result.message
    assert same_state(state(model), rec.weights[2])
    assert [h["epoch"] for h in result.history] == [1, 2]


# --- early stopping --------------------------------------------------------------------------
@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_at_patience(small, restore_best):
    # min_delta far above any possible gain: only epoch 1 counts as an improvement
    model = dense()
    rec = Recorder(model)
    result = Trainer(cfg(epochs=20, early_stopping_patience=3, min_delta=1e9, restore_best=restore_best), [rec]).fit(
        model, small, Normaliser("unit")
    )
    assert result.status == "early_stopped"
    assert len(result.history) == 1 + 3  # best epoch, then `patience` epochs without improvement
    assert result.best_epoch == 1
    assert not same_state(rec.weights[1], rec.weights[4])
    expected = rec.weights[1] if restore_best else rec.weights[4]
    assert same_state(state(model), expected)


def test_early_stopping_keeps_going_while_improving(small):
    result = Trainer(cfg(epochs=4, early_stopping_patience=2, lr=3e-3)).fit(dense(), small, Normaliser("unit"))
    val = [h["val_loss"] for h in result.history]
    assert result.status == "done" and len(val) == 4
    assert all(b < a for a, b in zip(val, val[1:]))  # it improved every epoch, so it never stopped


# --- determinism -----------------------------------------------------------------------------
def test_same_seed_same_losses_other_seed_differs(small):
    model = dense()

    def run(seed):
        m = copy.deepcopy(model)
        r = Trainer(cfg(epochs=2, seed=seed)).fit(m, small, Normaliser("unit"))
        return [h["train_loss"] for h in r.history] + [h["val_loss"] for h in r.history]

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c


def test_same_request_seed_reproduces_a_run():
    """What a user sees: the same preset, data and seed train to the same losses."""

    def run():
        req = TrainRequest(preset="vanilla", dataset="digits", epochs=2, limit=200, device="cpu", seed=3)
        _, result, _ = train(req, evaluate_after=False)
        return [h["train_loss"] for h in result.history]

    torch.manual_seed(123)
    first = run()
    torch.rand(10)  # whatever ran in between must not matter
    assert run() == first


# --- callbacks -------------------------------------------------------------------------------
def test_callbacks_receive_terms_val_speed_and_snapshots(small):
    model = dense(latent_dim=6, code_activation="sigmoid", sparsity=Sparsity(l1=1e-3, kl=0.1))
    rec = Recorder()
    result = Trainer(cfg(epochs=2), [rec]).fit(model, small, Normaliser("unit"))
    assert result.status == "done"
    terms = {"recon", "l1", "sparsity_kl"}
    assert rec.start["epochs"] == 2 and rec.start["n_train"] == len(small.train)
    assert len(rec.steps) == 2 * rec.start["steps_per_epoch"]
    for ev in rec.steps:
        assert set(ev.terms) == terms
        assert ev.loss == pytest.approx(sum(ev.terms.values()))
        assert ev.images_per_s > 0 and ev.eta_s >= 0
    assert [e.epoch for e in rec.epochs] == [1, 2]
    for ev in rec.epochs:
        assert set(ev.train_terms) == terms and set(ev.val_terms) == terms
        assert ev.val_loss is not None and math.isfinite(ev.val_loss)
        assert ev.val_loss == pytest.approx(sum(ev.val_terms.values()))
        assert ev.images_per_s > 0
        snap = ev.snapshot
        assert snap is not None
        n_val = len(small.val)
        assert snap.originals.shape == snap.reconstructions.shape == (min(8, n_val), *SHAPE)
        for a in (snap.originals, snap.reconstructions):
            assert a.min() >= 0 and a.max() <= 1
        np.testing.assert_allclose(snap.originals, small.val.x[: len(snap.originals)], atol=1e-6)
        assert snap.codes.shape == (min(500, n_val), 6)
        assert len(snap.labels) == len(snap.codes)
    # the reported validation loss is the final model's loss on the validation split
    xv, tv = split_tensors(small, "val", Normaliser("unit"), torch.device("cpu"))
    val_loss, _ = evaluate(model, xv, tv, 1024)
    assert rec.epochs[-1].val_loss == pytest.approx(val_loss, rel=1e-5)
    assert result.history[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-5)


def test_snapshot_every_zero_gives_step_snapshots(small):
    rec = Recorder()
    Trainer(cfg(epochs=1), [rec], snapshot_every_s=0).fit(dense(), small, Normaliser("unit"))
    assert rec.steps and all(ev.snapshot is not None for ev in rec.steps)
    assert rec.steps[0].snapshot.codes.shape[1] == 8
    rec2 = Recorder()
    Trainer(cfg(epochs=1), [rec2]).fit(dense(), small, Normaliser("unit"))
    assert all(ev.snapshot is None for ev in rec2.steps)  # none unless asked for


# --- resume ----------------------------------------------------------------------------------
def test_resume_continues_history_and_optimizer(store):
    req = TrainRequest(preset="vanilla", dataset="digits", epochs=2, limit=200, batch_size=64, device="cpu")
    tm, first, _ = train(req, evaluate_after=False)
    steps_per_epoch = math.ceil(200 / 64)
    store.save("resume-me", tm)
    loaded = store.load("resume-me", with_optimizer=True)
    assert loaded.optimizer_state is not None
    assert [h["epoch"] for h in loaded.history] == [1, 2]
    saved_history = copy.deepcopy(loaded.history)
    tm2, second, _ = train(
        TrainRequest(preset="vanilla", epochs=2, limit=200, device="cpu"), resume=loaded, evaluate_after=False
    )
    assert second.status == "done"
    assert [h["epoch"] for h in tm2.history] == [1, 2, 3, 4]
    assert tm2.history[:2] == saved_history
    # Adam's step count went on from the saved state instead of starting over
    steps = {float(s["step"]) for s in second.optimizer_state["state"].values()}
    assert steps == {4.0 * steps_per_epoch}
    store.save("resume-me", tm2, overwrite=True)
    assert [h["epoch"] for h in store.load("resume-me").history] == [1, 2, 3, 4]


# --- precision and validation ------------------------------------------------------------------
def test_bf16_trains_or_is_refused_with_a_reason(small):
    ok, why = bf16_support(pick_device("cpu"))
    if ok:
        result = Trainer(cfg(epochs=1, precision="bf16")).fit(dense(), small, Normaliser("unit"))
        assert result.status == "done" and math.isfinite(result.final_train_loss)
    else:
        with pytest.raises(ConfigError, match="bf16") as err:
            Trainer(cfg(epochs=1, precision="bf16"))
        assert why and why in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"epochs": -1},
        {"epochs": 2.5},
        {"lr": -1.0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"lr": float("inf")},
        {"batch_size": 0},
        {"optimizer": "rmsprop"},
        {"precision": "fp8"},
        {"early_stopping_patience": 0},
        {"momentum": 1.0},
        {"seed": -1},
        {"lr_schedule": "step"},
        {"min_delta": -1.0},
        {"min_delta": float("nan")},
        {"weight_decay": float("nan")},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_train_config_refuses_bad_values(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_fit_leaves_the_threads_denormal_handling_as_it_found_it(small):
    import numpy as np

    tiny = np.float32(1e-40)  # a denormal: flushed to zero while the trainer's flag is on
    Trainer(cfg(epochs=1)).fit(dense(), small, Normaliser("unit"))
    assert torch.tensor([tiny]).mul(1.0).item() != 0.0


# --- the loop's parts ----------------------------------------------------------------------------
def test_get_batch_cuts_the_permutation_and_an_epoch_sees_every_item_once(small):
    trainer = Trainer(cfg(batch_size=100))
    run = trainer._setup(dense(), small, Normaliser("unit"), None, None)
    run.t = -run.x  # a target that must stay paired with its input
    perm = torch.randperm(run.n, generator=torch.Generator().manual_seed(5))
    batches = [trainer.get_batch(run, perm, s) for s in range(run.steps)]
    assert [len(xb) for xb, _ in batches] == [100, 100, 56]  # 256 items: the last batch is short
    for s, (xb, tb) in enumerate(batches):
        assert torch.equal(xb, run.x[perm[s * 100 : (s + 1) * 100]])
        assert torch.equal(tb, -xb)
    assert torch.equal(torch.cat([xb for xb, _ in batches]), run.x[perm])


def test_drop_last_leaves_out_the_short_batch(small):
    run = Trainer(cfg(batch_size=100, drop_last=True))._setup(dense(), small, Normaliser("unit"), None, None)
    assert run.steps == 2


def test_train_step_applies_a_finite_step_only(small):
    model = dense()
    trainer = Trainer(cfg(batch_size=64))
    run = trainer._setup(model, small, Normaliser("unit"), None, None)
    xb, tb = trainer.get_batch(run, torch.arange(run.n), 0)
    before = state(model)
    step = trainer.train_step(run, xb, tb)
    assert step.outcome == "applied"
    assert step.loss == pytest.approx(sum(step.terms.values())) and math.isfinite(step.loss)
    assert not same_state(state(model), before)

    applied = state(model)
    step = trainer.train_step(run, torch.full_like(xb, float("nan")), tb)
    assert step.outcome == "diverged" and math.isnan(step.loss)
    assert same_state(state(model), applied)  # the non-finite loss was never stepped on

    trainer.stop_event.set()
    assert trainer.train_step(run, xb, tb).outcome == "stopped"
    assert same_state(state(model), applied)  # a stop seen after the forward takes no step
