"""The timeline every run records: through the pipeline and the CLI into the store,
after a restart, continued by a resumed run, and what it costs to get wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import run_python

from aecore.explore import inference
from aecore.explore.replay import replay
from aecore.runs.pipeline import train_and_save
from aecore.runs.request import TrainRequest, model_data
from aecore.store import ModelStore
from aecore.timeline import FILE, MIN_FRAMES, PROBE_ITEMS, RECON_ITEMS


def req(epochs=3, **kw) -> TrainRequest:
    return TrainRequest(preset="vanilla", dataset="digits", epochs=epochs, latent_dim=8, device="cpu", **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = ModelStore(tmp_path_factory.mktemp("tl") / "store")
    out = train_and_save(req(3), store, "tl-run")
    return store, out


def test_a_short_run_records_at_least_min_frames_from_the_untrained_model_on(trained):
    store, out = trained
    tl = out.tm.timeline
    steps = 3 * math.ceil(len(out.bundle.train) / out.tm.meta.train["batch_size"])
    assert len(tl.frames) >= min(MIN_FRAMES, steps + 1)  # at most one frame per step, and the untrained one
    assert tl.frames[0].step == 0 and tl.frames[0].epoch == 0 and tl.frames[0].train_loss is None
    steps = [f.step for f in tl.frames]
    assert steps == sorted(set(steps))
    # every epoch's end is a frame, with its validation loss from the history
    ends = {f.epoch: f.val_loss for f in tl.frames if f.val_loss is not None}
    assert ends == pytest.approx({h["epoch"]: h["val_loss"] for h in out.tm.history})
    n_val = len(out.bundle.val)
    assert len(tl.probe_index) == min(PROBE_ITEMS, n_val) and tl.probe_index.max() < n_val
    assert np.array_equal(tl.labels, np.asarray(out.bundle.val.labels)[tl.probe_index])
    assert tl.originals.shape == (RECON_ITEMS, 1, 8, 8) and tl.frames[-1].recons.shape == tl.originals.shape


def test_the_last_frame_is_the_saved_model(trained):
    store, out = trained
    tm = store.load("tl-run")
    bundle = model_data(tm)
    tl = store.timeline("tl-run")  # read from disk, as after a restart
    codes = inference.encode(tm, bundle.val.x[tl.probe_index])
    np.testing.assert_allclose(tl.frames[-1].codes, codes, rtol=1e-5, atol=1e-5)
    first = tl.frames[0].codes
    assert not np.allclose(first, codes, atol=1e-3)  # the untrained codes were somewhere else


def test_a_resumed_run_appends_to_the_timeline(tmp_path):
    store = ModelStore(tmp_path / "store")
    train_and_save(req(2), store, "grow")
    before = store.timeline("grow")
    train_and_save(req(2), store, "grow", resume_from="grow")
    after = ModelStore(tmp_path / "store").timeline("grow")
    n = len(before.frames)
    assert len(after.frames) > n
    assert np.array_equal(after.probe_index, before.probe_index)
    for a, b in zip(after.frames[:n], before.frames):
        assert (a.step, a.epoch) == (b.step, b.epoch) and np.array_equal(a.codes, b.codes)
    assert [f.step for f in after.frames] == sorted({f.step for f in after.frames})
    assert after.frames[-1].epoch == 4 and after.frames[n].epoch > 2


def test_a_damaged_timeline_loses_the_replay_not_the_model(tmp_path):
    store = ModelStore(tmp_path / "store")
    train_and_save(req(1), store, "hurt")
    (store.path("hurt") / FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(Exception, match="hurt"):
        store.timeline("hurt")
    assert store.load("hurt").model is not None
    out = train_and_save(req(1), store, "hurt", resume_from="hurt")
    assert any("new timeline starts" in n for n in out.notes), out.notes
    assert len(store.timeline("hurt").frames) >= 2


def test_a_model_whose_weights_do_not_change_draws_identical_frames(trained):
    store, out = trained
    tl = store.timeline("tl-run")
    # a second frame of the same weights: what the recorder writes for a model that did not move
    same = tl.thinned()
    same.frames = [tl.frames[-1], tl.frames[-1].__class__(**{**tl.frames[-1].__dict__, "step": tl.frames[-1].step + 1})]
    rp = replay(same)
    assert np.array_equal(rp.xy[0], rp.xy[1])


def test_recording_leaves_training_as_it_was(tmp_path):
    """The probe passes run in eval mode and draw no random numbers: a run trains to
    the same weights with its timeline as the same run's trainer does without one."""
    from aecore.runs.request import prepare
    from aecore.train import Trainer

    store = ModelStore(tmp_path / "store")
    out = train_and_save(req(2), store, "with-tl")
    bundle, tm, cfg = prepare(req(2))
    Trainer(cfg).fit(tm.model, bundle, tm.normaliser)
    saved = store.load("with-tl").model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in tm.model.state_dict().items())
    assert out.tm.timeline is not None


def test_the_cli_records_a_timeline(tmp_path):
    r = run_python(
        ["-m", "aecore", "train", "--preset", "vanilla", "--dataset", "digits", "--epochs", "2", "--name", "cli-tl"],
        env={"AECORE_STORE": str(tmp_path / "store")},
    )
    assert r.returncode == 0, r.stderr
    tl = ModelStore(tmp_path / "store").timeline("cli-tl")
    assert tl is not None and len(tl.frames) >= 2 * 6 + 1 and tl.frames[-1].epoch == 2  # 6 batches an epoch


def test_replayed_frames_move_less_between_neighbours_than_from_first_to_last(trained):
    store, _ = trained
    rp = replay(store.timeline("tl-run"))
    steps = np.linalg.norm(np.diff(rp.xy, axis=0), axis=2).mean(axis=1)  # (F-1,) mean move per frame
    whole = np.linalg.norm(rp.xy[-1] - rp.xy[0], axis=1).mean()
    assert steps.max() < whole
    lo, hi = rp.xy.min(axis=(0, 1)), rp.xy.max(axis=(0, 1))
    assert rp.x_range[0] <= lo[0] and hi[0] <= rp.x_range[1] and rp.y_range[0] <= lo[1] and hi[1] <= rp.y_range[1]
