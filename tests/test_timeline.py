"""The training timeline's file format (aecore.timeline) and its replay (aecore.explore.replay).

Timelines are built from numpy arrays directly: no model is trained here."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from aecore import timeline as T
from aecore.errors import StoreError
from aecore.explore import replay as R
from aecore.explore.latent import project_2d
from aecore.timeline import Frame, Timeline, choose_probe, load_timeline, save_timeline


def make_tl(
    n_frames: int = 5,
    p: int = 30,
    d: int = 4,
    kind: str = "image",
    labels: bool = True,
    recon_shape: tuple[int, ...] | None = (1, 8, 8),
    seed: int = 0,
) -> Timeline:
    rng = np.random.default_rng(seed)
    originals = None if recon_shape is None else rng.random((T.RECON_ITEMS, *recon_shape), dtype=np.float32)
    tl = Timeline(
        kind,
        np.sort(rng.choice(10 * p, p, replace=False)),
        rng.integers(0, 3, p) if labels else None,
        originals,
    )
    for i in range(n_frames):
        recons = None if originals is None else rng.random(originals.shape, dtype=np.float32)
        tl.append(Frame(10 * (i + 1), 0.5 * (i + 1), rng.normal(size=(p, d)).astype(np.float32), recons, 1.0 / (i + 1)))
    return tl


def assert_same(a: Timeline, b: Timeline) -> None:
    assert a.kind == b.kind
    np.testing.assert_array_equal(a.probe_index, b.probe_index)
    for x, y in ((a.labels, b.labels), (a.originals, b.originals)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert len(a.frames) == len(b.frames)
    for f, g in zip(a.frames, b.frames):
        assert (f.step, f.epoch, f.train_loss, f.val_loss) == (g.step, g.epoch, g.train_loss, g.val_loss)
        np.testing.assert_array_equal(f.codes, g.codes)
        assert (f.recons is None) == (g.recons is None)
        if f.recons is not None:
            np.testing.assert_array_equal(f.recons, g.recons)


# --- the file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,labels,recon_shape",
    [("image", True, (1, 8, 8)), ("vector", False, (3,)), ("sequence", True, None), ("sequence", False, None)],
)
def test_round_trip(tmp_path, kind, labels, recon_shape):
    tl = make_tl(6, kind=kind, labels=labels, recon_shape=recon_shape)
    tl.frames[2].val_loss = 0.25
    save_timeline(tl, tmp_path / T.FILE)
    back = load_timeline(tmp_path / T.FILE, "m")
    assert_same(tl, back)
    assert back.latent_dim == 4 and back.epochs.tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert (back.labels is None) == (not labels) and (back.originals is None) == (recon_shape is None)
    assert not list(tmp_path.glob("*.tmp"))  # written beside the target and renamed


def test_non_finite_losses_are_stored_as_null(tmp_path):
    tl = make_tl(3)
    tl.frames[1].train_loss = math.nan
    tl.frames[2].val_loss = math.inf
    save_timeline(tl, tmp_path / T.FILE)
    back = load_timeline(tmp_path / T.FILE, "m")
    assert back.frames[1].train_loss is None and back.frames[2].val_loss is None
    assert back.frames[0].train_loss == 1.0


def test_empty_timeline_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="without frames"):
        save_timeline(make_tl(0), tmp_path / T.FILE)
    assert not (tmp_path / T.FILE).exists()


def test_thinned_keeps_first_last_and_even_spacing():
    tl = make_tl(100, p=3, d=2, recon_shape=None)
    th = tl.thinned(10)
    steps = th.steps
    assert len(th.frames) == 10 and len(tl.frames) == 100  # a copy: the original keeps all its frames
    assert steps[0] == tl.frames[0].step and steps[-1] == tl.frames[-1].step
    gaps = np.diff(steps) // 10  # in index steps: frames are 10 optimiser steps apart
    assert gaps.max() - gaps.min() <= 1
    assert tl.thinned(200).steps.tolist() == tl.steps.tolist()  # already within: unchanged
    with pytest.raises(ValueError, match="at least 2"):
        tl.thinned(1)


BIG = (100, 5243)  # codes of about 2 MiB a frame, so that only about 9 frames fit in MAX_BYTES


def test_save_keeps_a_long_timeline_under_max_bytes(tmp_path):
    codes = np.zeros(BIG, np.float32)
    tl = Timeline("vector", np.arange(BIG[0]), None, None, [Frame(i + 1, float(i), codes + i, None) for i in range(14)])
    k = tl.max_frames()
    assert 5 <= k < 14 and len(tl.frames) == 14  # frames handed to the constructor are kept, not thinned
    path = tmp_path / T.FILE
    save_timeline(tl, path)
    assert path.stat().st_size <= T.MAX_BYTES
    back = load_timeline(path, "m")
    assert len(back.frames) == k
    assert back.frames[0].step == 1 and back.frames[-1].step == 14
    assert back.frames[-1].codes[0, 0] == 13


def test_append_bounds_memory_and_keeps_steps_even():
    tl = Timeline("vector", np.arange(BIG[0]), None, None)
    codes = np.zeros(BIG, np.float32)
    most = 0
    for i in range(150):
        codes[0, 0] = i  # append copies, so a recorder may reuse its buffer
        tl.append(Frame(i + 1, float(i + 1), codes, None))
        most = max(most, len(tl.frames))
    k = tl.max_frames()
    assert k < most <= 2 * k and 150 > 2 * k  # it grew past k, and thinning was needed
    steps = tl.steps
    assert steps[0] == 1 and steps[-1] == 150 and tl.frames[-1].codes[0, 0] == 149
    # spread evenly over steps, the recent part no denser than the early one (the last gap may be short)
    gaps = np.diff(steps)[:-1]
    assert gaps.max() <= 2 * gaps.min()
    assert [f.codes[0, 0] for f in tl.frames] == [s - 1 for s in steps]  # each frame kept its own codes


def test_append_refuses_mismatches():
    tl = make_tl(2, p=30, d=4, recon_shape=(1, 8, 8))
    good = np.zeros((30, 4), np.float32)
    recons = np.zeros((T.RECON_ITEMS, 1, 8, 8), np.float32)
    cases = [
        (Frame(100, 5.0, np.zeros((29, 4)), recons), r"shape \(30, latent_dim\)"),
        (Frame(100, 5.0, np.zeros((30, 5)), recons), "earlier frames have 4"),
        (Frame(100, 5.0, good, np.zeros((T.RECON_ITEMS, 1, 8, 9))), "originals have"),
        (Frame(100, 5.0, good, None), "does not match"),
        (Frame(20, 5.0, good, recons), "step order"),  # equal to the last step
        (Frame(5, 5.0, good, recons), "step order"),
        (Frame(100, 0.1, good, recons), "epoch order"),
        (Frame(100, 5.0, np.full((30, 4), np.nan), recons), "not finite"),
        (Frame(100.5, 5.0, good, recons), "whole number"),
    ]
    for frame, msg in cases:
        with pytest.raises(ValueError, match=msg):
            tl.append(frame)
    assert len(tl.frames) == 2  # nothing refused was kept
    tl.append(Frame(100, 5.0, good, recons))
    seq = make_tl(1, kind="sequence", recon_shape=None)
    with pytest.raises(ValueError, match="no reconstructions"):
        seq.append(Frame(100, 5.0, good, recons))


def test_timeline_checks_its_fixed_parts():
    with pytest.raises(ValueError, match="kind"):
        Timeline("audio", np.arange(3), None, None)
    with pytest.raises(ValueError, match="increasing order"):
        Timeline("vector", np.array([3, 1, 2]), None, None)
    with pytest.raises(ValueError, match="one per probe item"):
        Timeline("vector", np.arange(3), np.arange(2), None)
    with pytest.raises(ValueError, match="no originals"):
        Timeline("sequence", np.arange(3), None, np.zeros((8, 4), np.float32))


def test_choose_probe():
    a = choose_probe(60000, 7, 32)
    assert a.dtype == np.int64 and len(a) == T.PROBE_ITEMS
    assert np.all(np.diff(a) > 0) and a[0] >= 0 and a[-1] < 60000  # sorted, unique, in range
    np.testing.assert_array_equal(a, choose_probe(60000, 7, 32))
    assert not np.array_equal(a, choose_probe(60000, 8, 32))
    np.testing.assert_array_equal(choose_probe(150, 0, 8), np.arange(150))  # fewer items than asked: all of them
    assert len(choose_probe(0, 0, 8)) == 0 and len(choose_probe(1, 0, 8)) == 1
    for d in (1000, 10_000):
        p = len(choose_probe(60000, 0, d))
        assert 1 <= p < T.PROBE_ITEMS
        assert 2 * T.MIN_FRAMES * p * d * 4 <= T.MAX_BYTES
        assert p > 0.9 * T.MAX_BYTES / (2 * T.MIN_FRAMES * d * 4)  # not needlessly small
        tl = Timeline("vector", choose_probe(60000, 0, d), None, None, [Frame(0, 0.0, np.zeros((p, d)), None)])
        assert tl.max_frames() >= 2 * T.MIN_FRAMES
    assert len(choose_probe(60000, 0, 10**7)) == 1  # at least one item, however wide the codes


# --- hostile files -----------------------------------------------------------------


def valid_parts(n_frames: int = 3, p: int = 5, d: int = 2) -> tuple[dict, dict]:
    tensors = {
        "codes": np.zeros((n_frames, p, d), np.float32),
        "probe_index": np.arange(p, dtype=np.int64),
    }
    frames = [{"step": i + 1, "epoch": float(i + 1), "train_loss": None, "val_loss": None} for i in range(n_frames)]
    return tensors, {"format": T.FORMAT, "kind": "vector", "frames": json.dumps(frames)}


class Trap:
    """A pickle that creates ``marker`` when it is unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _raw(tensors_edit=None, meta_edit=None):
    def build(path: Path):
        tensors, meta = valid_parts()
        if tensors_edit:
            tensors_edit(tensors)
        if meta_edit:
            meta_edit(meta)
        save_file(tensors, str(path), metadata=meta)

    return build


def _truncated(path: Path):
    save_timeline(make_tl(3), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_header(path: Path):
    save_timeline(make_tl(3), path)
    path.write_bytes(path.read_bytes()[:40])


def _huge(path: Path):
    with open(path, "wb") as fh:  # sparse: costs no disk and no time
        fh.truncate(2 * T.MAX_BYTES + 1)


HOSTILE = {
    "random bytes": (
        lambda p: p.write_bytes(np.random.default_rng(3).bytes(5000).replace(b"{", b"x")),
        "is not a safetensors file",
    ),
    "empty": (lambda p: p.write_bytes(b""), "is not a safetensors file"),
    "truncated": (_truncated, "ends before its data does"),
    "truncated header": (_truncated_header, "ends inside its header"),
    "too large": (_huge, "larger than the 40 MiB"),
    "folder": (lambda p: p.mkdir(), "not a regular file"),
    "no format": (_raw(meta_edit=lambda m: m.pop("format")), "has no format marker"),
    "wrong format": (_raw(meta_edit=lambda m: m.update(format="aecore-model/1")), "has format 'aecore-model/1'"),
    "unknown kind": (_raw(meta_edit=lambda m: m.update(kind="audio")), "unknown data kind"),
    "frames not json": (_raw(meta_edit=lambda m: m.update(frames="[{step: 1")), "not valid JSON"),
    "frames not objects": (_raw(meta_edit=lambda m: m.update(frames="[1, 2, 3]")), "whole-number step"),
    "step not whole": (
        _raw(meta_edit=lambda m: m.update(frames=m["frames"].replace('"step": 2', '"step": 2.5'))),
        "whole-number step",
    ),
    "epoch NaN": (
        _raw(meta_edit=lambda m: m.update(frames=m["frames"].replace('"epoch": 2.0', '"epoch": NaN'))),
        "numeric epoch",
    ),
    "frame count": (
        _raw(meta_edit=lambda m: m.update(frames=json.dumps(json.loads(m["frames"])[:2]))),
        "3 frames of codes but 2 frame records",
    ),
    "steps out of order": (
        _raw(meta_edit=lambda m: m.update(frames=m["frames"].replace('"step": 3', '"step": 1'))),
        "is inconsistent: frames must come in step order",
    ),
    "no codes": (_raw(tensors_edit=lambda t: t.pop("codes")), "lacks the tensor(s) codes"),
    "recons without originals": (
        _raw(tensors_edit=lambda t: t.update(recons=np.zeros((3, 8, 2), np.float32))),
        "lacks the tensor(s) originals",
    ),
    "recons vs originals": (
        _raw(
            tensors_edit=lambda t: t.update(
                recons=np.zeros((3, 8, 2), np.float32), originals=np.zeros((8, 3), np.float32)
            )
        ),
        "do not match 3 frames of its originals",
    ),
    "probe length": (
        _raw(tensors_edit=lambda t: t.update(probe_index=np.arange(4, dtype=np.int64))),
        "codes of 5 items but probe indices",
    ),
    "labels length": (
        _raw(tensors_edit=lambda t: t.update(labels=np.arange(6, dtype=np.int64))),
        "codes of 5 items but labels",
    ),
    "codes not float": (
        _raw(tensors_edit=lambda t: t.update(codes=np.zeros((3, 5, 2), np.int32))),
        "expected float numbers",
    ),
    "codes NaN": (
        _raw(tensors_edit=lambda t: t.update(codes=np.full((3, 5, 2), np.nan, np.float32))),
        "codes that are not finite",
    ),
    "no frames": (
        _raw(
            tensors_edit=lambda t: t.update(codes=np.zeros((0, 5, 2), np.float32)),
            meta_edit=lambda m: m.update(frames="[]"),
        ),
        "has no frames",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_with_a_clear_message(tmp_path, case):
    build, fragment = HOSTILE[case]
    path = tmp_path / T.FILE
    build(path)
    with pytest.raises(StoreError, match="model 'm'") as err:
        load_timeline(path, "m")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(StoreError, match="model 'm' has no timeline"):
        load_timeline(tmp_path / T.FILE, "m")


def test_a_renamed_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / T.FILE
    path.write_bytes(pickle.dumps(Trap(marker)))
    pickle.loads(path.read_bytes())  # the trap works: unpickling it makes the marker
    assert marker.exists()
    marker.unlink()
    with pytest.raises(StoreError, match="is not a safetensors file"):
        load_timeline(path, "m")
    assert not marker.exists()


# --- the replay --------------------------------------------------------------------


def moving_tl(n_frames: int, p: int = 40, d: int = 6, ratio: float = 0.6, seed: int = 0, labels=None) -> Timeline:
    """Codes moving from a random start towards a fixed end, each step ``ratio`` times the last."""
    rng = np.random.default_rng(seed)
    start, end = rng.normal(size=(p, d)) * 3, rng.normal(size=(p, d))
    tl = Timeline("vector", np.arange(p), labels, None)
    for f in range(n_frames):
        codes = end + (start - end) * ratio**f
        tl.append(Frame(f + 1, float(f + 1), codes.astype(np.float32), None))
    return tl


def test_replay_moves_points_no_more_than_their_codes_moved():
    tl = moving_tl(12)
    rp = R.replay(tl)
    codes = np.stack([f.codes for f in tl.frames]).astype(np.float64)
    assert rp.xy.shape == (12, 40, 2) and rp.epochs.tolist() == list(range(1, 13))
    screen = np.linalg.norm(np.diff(rp.xy, axis=0), axis=2)  # (F-1, P)
    code = np.linalg.norm(np.diff(codes, axis=0), axis=2)
    # one fixed orthonormal basis: no point jumps further on screen than in code space
    assert np.all(screen <= code + 1e-4)
    assert screen.mean() < np.linalg.norm(rp.xy[-1] - rp.xy[0], axis=1).mean()
    for xy in rp.xy:  # the fixed ranges hold every point of every frame
        assert np.all((xy[:, 0] >= rp.x_range[0]) & (xy[:, 0] <= rp.x_range[1]))
        assert np.all((xy[:, 1] >= rp.y_range[0]) & (xy[:, 1] <= rp.y_range[1]))


def test_replay_uses_the_last_frames_basis():
    rng = np.random.default_rng(1)
    first = np.zeros((50, 4))  # both frames centred, so the last frame's mean is 0
    first[:, 2:] = rng.normal(size=(50, 2)) * 5  # the first frame spreads along axes 2 and 3
    last = np.zeros((50, 4))
    last[:, :2] = rng.normal(size=(50, 2)) * [3, 1]  # the last along axes 0 and 1
    last -= last.mean(0)
    tl = Timeline("vector", np.arange(50), None, None)
    for i, c in enumerate([first, (first + last) / 2, last, last]):
        tl.append(Frame(i + 1, float(i + 1), c.astype(np.float32), None))
    rp = R.replay(tl)
    np.testing.assert_array_equal(rp.xy[2], rp.xy[3])  # identical frames, identical points
    ref = project_2d(last)
    for k in range(2):  # the last frame's own PCA, up to the sign of each axis
        sign = np.sign(ref[:, k] @ rp.xy[-1][:, k])
        np.testing.assert_allclose(rp.xy[-1][:, k], sign * ref[:, k], atol=1e-4)
    # the first frame seen through the last frame's axes: its spread lies off them, so it sits near 0
    assert np.abs(rp.xy[0]).max() < 1e-4 < np.abs(project_2d(first)).max()


def test_replay_of_narrow_codes():
    one = R.replay(moving_tl(3, d=1))
    assert np.all(one.xy[..., 1] == 0)
    np.testing.assert_array_equal(one.xy[..., 0], np.stack([f.codes[:, 0] for f in moving_tl(3, d=1).frames]))
    two = moving_tl(3, d=2)
    np.testing.assert_array_equal(R.replay(two).xy, np.stack([f.codes for f in two.frames]))


def geometric_tl(n_frames: int, q: float, labels=None, far=None) -> Timeline:
    """Every item moves r0 * q**k along its own fixed direction between frames k and k+1
    (items in ``far`` move 10 times as far), so the rates are exactly geometric."""
    rng = np.random.default_rng(2)
    p, d = 30, 5
    dirs = rng.normal(size=(p, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    if far is not None:
        dirs[far] *= 10
    codes = rng.normal(size=(p, d))
    tl = Timeline("vector", np.arange(p), labels, None)
    for f in range(n_frames):
        tl.append(Frame(f + 1, float(f + 1), codes.astype(np.float32), None))
        codes = codes + 2.0 * q**f * dirs
    return tl


def test_settled_epoch_and_caption():
    rp = R.replay(geometric_tl(10, 0.5))
    np.testing.assert_allclose(rp.rate, 2.0 * 0.5 ** np.arange(9), rtol=1e-4)
    # rates 2, 1, 0.5, 0.25, 0.125: from frame 5 (epoch 5) on every rate is below 0.2
    assert rp.settled_epoch == 5.0
    assert "the code space settled after epoch 5 " in rp.caption
    assert "Points moved 2 code units per epoch at first and 0.00781 at the end" in rp.caption
    assert rp.moved_most is None and "labelled" not in rp.caption and "..." not in rp.caption


def test_still_moving_caption():
    rp = R.replay(geometric_tl(6, 0.9))
    assert rp.settled_epoch is None
    last_pct = 100 * 0.9**4
    assert f"still moving at the end: the last rate is {last_pct:.3g}% of the first." in rp.caption


def test_a_brief_dip_is_not_settling():
    assert R._settled(np.array([1.0, 0.05, 0.5, 0.05]), np.arange(5.0)) == 3.0  # only after the rise back
    assert R._settled(np.array([1.0, 0.5]), np.arange(3.0)) is None


def test_moved_most_names_the_label_that_travelled_furthest():
    labels = np.repeat([0, 1, 2], 10)
    rp = R.replay(geometric_tl(5, 0.5, labels=labels, far=slice(10, 20)), class_names=["zero", "one", "two"])
    assert rp.moved_most == "one"
    assert rp.caption.endswith("Items labelled 'one' travelled furthest.")
    assert R.replay(geometric_tl(5, 0.5, labels=labels, far=slice(20, 30))).moved_most == "2"  # no names: the number


def test_short_replays():
    one = R.replay(moving_tl(1))
    assert one.caption == "One frame so far: the replay needs at least two."
    assert one.rate.shape == (0,) and one.settled_epoch is None and one.xy.shape == (1, 40, 2)
    two = R.replay(moving_tl(2))
    assert two.settled_epoch is None and "between the two frames" in two.caption
    assert len(R.replay(moving_tl(0)).xy) == 0


def test_frame_label():
    tl = Timeline("vector", np.arange(2), None, None)
    for i, e in enumerate([3.0, 2.5 + 1, 4.333333, 5.10, 6.999]):
        tl.append(Frame(i + 1, e, np.zeros((2, 2)), None))
    assert [R.frame_label(tl, i) for i in range(5)] == ["epoch 3", "epoch 3.5", "epoch 4.33", "epoch 5.1", "epoch 7"]
    assert R.frame_label([0.25, 12.0], 1) == "epoch 12"
    assert R.frame_label(R.replay(tl), 2) == "epoch 4.33"


def test_frame_strip():
    tl = make_tl(2, recon_shape=(1, 8, 8))
    strip = R.frame_strip(tl, 1)
    assert strip.dtype == np.uint8 and strip.ndim == 2
    h, w = 2 * 8 + 3 * 2, T.RECON_ITEMS * 8 + (T.RECON_ITEMS + 1) * 2  # two rows of 8x8 tiles, 2 px apart
    f = strip.shape[0] // h
    assert f > 1 and strip.shape == (h * f, w * f)
    # the top-left tile is the first original, the one below it frame 1's first reconstruction
    top = strip[2 * f : 10 * f : f, 2 * f : 10 * f : f]
    bottom = strip[12 * f : 20 * f : f, 2 * f : 10 * f : f]
    np.testing.assert_array_equal(top, np.rint(tl.originals[0, 0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(bottom, np.rint(tl.frames[1].recons[0, 0] * 255).astype(np.uint8))
    assert R.frame_strip(make_tl(2, kind="vector", recon_shape=(3,)), 0) is None
    assert R.frame_strip(make_tl(2, kind="image", recon_shape=None), 0) is None


def test_frame_figure():
    labels = np.repeat([0, 1, 2], 10)
    rp = R.replay(geometric_tl(4, 0.5, labels=labels), class_names=["zero", "one", "two"])
    figs = [R.frame_figure(rp, i) for i in range(4)]
    fig = figs[2]
    assert [t.name for t in fig.data] == ["zero", "one", "two"]
    assert all(t.type == "scattergl" for t in fig.data)
    assert sum(len(t.x) for t in fig.data) == 30
    np.testing.assert_allclose(fig.data[1].x, rp.xy[2][labels == 1, 0])
    for g in figs:
        assert tuple(g.layout.xaxis.range) == rp.x_range and tuple(g.layout.yaxis.range) == rp.y_range
        assert g.layout.xaxis.autorange is False and g.layout.yaxis.autorange is False
    assert len({g.layout.uirevision for g in figs}) == 1 and figs[0].layout.uirevision is not None
    assert fig.layout.title.text == "codes of 30 validation items, epoch 3"
    assert R.frame_figure(rp, 0, title="mine").layout.title.text == "mine"
    plain = R.frame_figure(R.replay(moving_tl(3)), 0)
    assert [t.name for t in plain.data] == ["items"] and len(plain.data[0].x) == 40
