"""The training timeline: what a run's codes and reconstructions looked like as it trained.

At chosen moments ("frames") a run records the codes of a fixed *probe set* of
validation items (chosen once per run, :func:`choose_probe`), the
reconstructions of a few fixed items and the losses. The dashboard replays the
frames with an epoch slider (``aecore.explore.replay``).

Design:

- The probe set and the reconstructed items never change within a run, so a
  point in frame 3 is the same item as in frame 30 and the replay can show it
  moving. Only the codes, reconstructions and losses are stored per frame.
- The file stays small whatever the run's length: a timeline holds at most
  :meth:`Timeline.max_frames` frames on disk (MAX_BYTES in all). While
  recording, :meth:`Timeline.append` lets the list grow to twice that and then
  halves it, so memory stays bounded during a run of any length; the halving
  keeps frames spread evenly over *steps*, not over list positions, because
  frames recorded after a halving arrive more densely than the survivors and
  position-based halving would leave early training (where codes move most)
  ever sparser.
- One safetensors file, JSON metadata, no torch (the module is numpy only) and
  nothing is ever unpickled: a file that is not what :func:`save_timeline`
  writes is refused by :func:`load_timeline` with one sentence naming the model.

File layout (safetensors, all tensors little-endian)::

    codes        (F, P, d) float32    the probe items' codes, frame by frame
    recons       (F, R, ...) float32  reconstructions in display space (absent for sequences)
    originals    (R, ...) float32     the items they reconstruct (absent with recons)
    probe_index  (P,) int64           sorted indices into the validation split
    labels       (P,) int64           the probe items' labels (absent for unlabelled data)
    metadata     {"format": FORMAT, "kind": ..., "frames": JSON list of
                  {"step", "epoch", "train_loss", "val_loss"}}
"""

from __future__ import annotations

import copy
import json
import math
import os
import stat
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from aecore.errors import StoreError

FORMAT = "aecore-timeline/1"
FILE = "timeline.safetensors"
MAX_BYTES = 20 * 2**20  # a saved timeline stays under this (codes + reconstructions)
PROBE_ITEMS = 2000
RECON_ITEMS = 8
MIN_FRAMES = 20  # a run of fewer than 20 epochs records frames within epochs too, to reach this

KINDS = ("image", "vector", "sequence")
# Room kept in MAX_BYTES for the safetensors header: the tensors' entries, plus
# each frame's JSON record (about 130 characters, more once the metadata string
# is escaped a second time inside the header).
_HEADER_BYTES = 4096
_META_BYTES_PER_FRAME = 200


@dataclass
class Frame:
    step: int  # optimiser steps over the model's whole life (a resumed run counts on)
    epoch: float  # epochs over the model's whole life; fractional between epoch ends
    codes: np.ndarray  # (P, latent_dim) float32: the probe items' codes
    recons: np.ndarray | None  # (R, *sample_shape) float32 in display space (images in [0, 1]); None for sequences
    train_loss: float | None = None
    val_loss: float | None = None


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _loss(v) -> float | None:
    if v is None:
        return None
    if not _is_real(v):
        raise ValueError(f"a frame's loss must be a number or None; got {v!r}.")
    return float(v)


@dataclass
class Timeline:
    kind: str  # "image", "vector" or "sequence" (the data kind)
    probe_index: np.ndarray  # (P,) int64, sorted: indices into the validation split
    labels: np.ndarray | None  # (P,) int64 labels of the probe items, or None
    originals: np.ndarray | None  # (R, *sample_shape) float32 display space; None for sequences
    frames: list[Frame] = field(default_factory=list)
    # the fewest steps between kept frames, set by append's thinning (0: keep every frame)
    _min_gap: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"a timeline's kind must be one of {', '.join(KINDS)}; got {self.kind!r}.")
        idx = np.asarray(self.probe_index)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"probe_index must be a 1-D array of integers; got {idx.dtype} of shape {idx.shape}.")
        idx = idx.astype(np.int64)
        if idx.size and (idx[0] < 0 or np.any(np.diff(idx) <= 0)):
            raise ValueError("probe_index must hold distinct non-negative indices in increasing order.")
        self.probe_index = idx
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.shape != idx.shape or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
                raise ValueError(f"labels must be {len(idx)} integers, one per probe item; got shape {lab.shape}.")
            self.labels = lab.astype(np.int64)
        if self.originals is not None:
            if self.kind == "sequence":
                raise ValueError("a sequence timeline holds no originals (sequences have no picture to show).")
            orig = np.asarray(self.originals, dtype=np.float32)
            if orig.ndim < 2 or len(orig) == 0:
                raise ValueError(f"originals must be a batch of items (R, ...); got shape {orig.shape}.")
            if not np.isfinite(orig).all():
                raise ValueError("originals hold values that are not finite numbers.")
            self.originals = orig
        given, self.frames = list(self.frames), []
        for f in given:  # checked like appended frames, but a given list is never thinned
            self.frames.append(self._checked(f))

    def view(self) -> Timeline:
        """A copy that later appends do not change: the same checked frames in a list of
        its own (no arrays are copied, nothing is checked again; what a live job hands out)."""
        out = copy.copy(self)
        out.frames = list(self.frames)
        return out

    # --- sizes -----------------------------------------------------------------
    @property
    def n_probe(self) -> int:
        return len(self.probe_index)

    @property
    def latent_dim(self) -> int | None:
        return int(self.frames[0].codes.shape[1]) if self.frames else None

    @property
    def epochs(self) -> np.ndarray:
        return np.array([f.epoch for f in self.frames], dtype=np.float64)  # (F,)

    @property
    def steps(self) -> np.ndarray:
        return np.array([f.step for f in self.frames], dtype=np.int64)  # (F,)

    def frame_bytes(self) -> int:
        """Bytes one frame takes in the file: its codes and reconstructions, float32."""
        d = self.latent_dim or 0
        recon = 0 if self.originals is None else self.originals.size
        return 4 * (self.n_probe * d + recon)

    def _fixed_bytes(self) -> int:
        fixed = 8 * self.n_probe * (1 if self.labels is None else 2)
        return fixed + (0 if self.originals is None else self.originals.nbytes) + _HEADER_BYTES

    def max_frames(self) -> int:
        """How many frames fit in MAX_BYTES beside the fixed part; at least 2 (first and last)."""
        per = self.frame_bytes() + _META_BYTES_PER_FRAME
        return max(2, (MAX_BYTES - self._fixed_bytes()) // per)

    # --- recording -------------------------------------------------------------
    def _checked(self, frame: Frame) -> Frame:
        """A validated copy of ``frame`` (copied, so a caller's reused buffer cannot change a recorded frame)."""
        if not _is_int(frame.step) or frame.step < 0:
            raise ValueError(f"a frame's step must be a non-negative whole number; got {frame.step!r}.")
        if not _is_real(frame.epoch) or not math.isfinite(frame.epoch) or frame.epoch < 0:
            raise ValueError(f"a frame's epoch must be a finite number >= 0; got {frame.epoch!r}.")
        if self.frames:
            last = self.frames[-1]
            if frame.step <= last.step:
                raise ValueError(f"frames must come in step order: step {frame.step} after step {last.step}.")
            if frame.epoch < last.epoch:
                raise ValueError(f"frames must come in epoch order: epoch {frame.epoch} after epoch {last.epoch}.")
        codes = np.array(frame.codes, dtype=np.float32)
        d = self.latent_dim
        if codes.ndim != 2 or codes.shape[0] != self.n_probe or codes.shape[1] < 1:
            raise ValueError(f"a frame's codes must have shape ({self.n_probe}, latent_dim); got {codes.shape}.")
        if d is not None and codes.shape[1] != d:
            raise ValueError(f"a frame's codes have {codes.shape[1]} values per item; earlier frames have {d}.")
        if not np.isfinite(codes).all():
            # a diverged run: the loader refuses such a file, so the frame is refused here instead
            raise ValueError("a frame's codes hold values that are not finite numbers (NaN or infinity).")
        recons = None
        if frame.recons is not None or self.originals is not None:
            if frame.recons is None or self.originals is None:
                want = "no reconstructions" if self.originals is None else f"reconstructions {self.originals.shape}"
                raise ValueError(f"this timeline's frames hold {want}; the frame does not match.")
            recons = np.array(frame.recons, dtype=np.float32)
            if recons.shape != self.originals.shape:
                raise ValueError(
                    f"a frame's reconstructions have shape {recons.shape}; the originals have {self.originals.shape}."
                )
            if not np.isfinite(recons).all():
                raise ValueError("a frame's reconstructions hold values that are not finite numbers.")
        return replace(
            frame,
            step=int(frame.step),
            epoch=float(frame.epoch),
            codes=codes,
            recons=recons,
            train_loss=_loss(frame.train_loss),
            val_loss=_loss(frame.val_loss),
        )

    def append(self, frame: Frame) -> None:
        """Add a frame (checked, see :meth:`_checked`); past 2 * max_frames() the frames are
        thinned in place to max_frames(), evenly over steps, so a long run's memory stays bounded.

        After a thinning, frames keep at least the spacing in steps the thinning left: a frame
        arriving sooner than that after the last kept one replaces the previous newest frame
        instead of adding one. So the newest frame is always there, and the list stays even over
        steps between thinnings too (a recorder with a fixed cadence would otherwise leave the
        recent part of the run far denser than the rest, and :meth:`thinned` picks by position)."""
        new = self._checked(frame)
        f = self.frames
        if len(f) >= 2 and f[-1].step - f[-2].step < self._min_gap:
            f[-1] = new  # the previous newest was only standing in for "the last frame"
        else:
            f.append(new)
        k = self.max_frames()
        if len(f) > 2 * k:
            self.frames = [f[i] for i in _even_by_value(self.steps, k)]
            self._min_gap = (self.frames[-1].step - self.frames[0].step) / (k - 1)

    def thinned(self, max_frames: int | None = None) -> Timeline:
        """A copy with at most ``max_frames`` frames (default :meth:`max_frames`), chosen evenly
        over the frame list and always keeping the first and the last. Frames are shared, not copied."""
        k = self.max_frames() if max_frames is None else max_frames
        if not _is_int(k) or k < 2:
            raise ValueError(f"a thinned timeline keeps at least 2 frames (the first and the last); got {k!r}.")
        n = len(self.frames)
        keep = range(n) if n <= k else np.unique(np.rint(np.linspace(0, n - 1, k)).astype(np.int64))
        out = replace(self, frames=[])  # __post_init__ on an empty list: nothing re-checked
        out.frames = [self.frames[int(i)] for i in keep]
        return out


def _even_by_value(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of at most ``k`` of the increasing ``values``: for each of k evenly spaced
    targets from the first value to the last, the nearest one (so first and last stay)."""
    targets = np.linspace(values[0], values[-1], k)
    right = np.clip(np.searchsorted(values, targets), 1, len(values) - 1)
    left = right - 1
    nearest = np.where(targets - values[left] <= values[right] - targets, left, right)
    return np.unique(nearest)


def choose_probe(n_val: int, seed: int, latent_dim: int, items: int = PROBE_ITEMS) -> np.ndarray:
    """Sorted int64 indices of min(items, n_val) validation items, drawn with numpy's
    default_rng(seed) without replacement; fewer when latent_dim is so large that
    MIN_FRAMES * 2 frames of P*latent_dim float32 codes would not fit in MAX_BYTES
    (so a capped timeline still has enough frames); at least 1 item when n_val >= 1;
    an empty array when n_val == 0.

    Only codes are counted here: reconstructions of RECON_ITEMS items up to about
    3x64x64 add less than the codes' share, so such a run still keeps MIN_FRAMES frames."""
    for what, v, least in (("n_val", n_val, 0), ("latent_dim", latent_dim, 1), ("items", items, 0)):
        if not _is_int(v) or v < least:
            raise ValueError(f"{what} must be a whole number >= {least}; got {v!r}.")
    # each probe item costs its codes in 2*MIN_FRAMES frames plus its index and label (int64) once
    per_item = 2 * MIN_FRAMES * 4 * latent_dim + 16
    cap = max(1, (MAX_BYTES - _HEADER_BYTES - 2 * MIN_FRAMES * _META_BYTES_PER_FRAME) // per_item)
    k = min(int(items), int(n_val), cap)
    if k == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(int(n_val), size=k, replace=False)).astype(np.int64)


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def save_timeline(tl: Timeline, path: str | os.PathLike) -> None:
    """Write ``tl.thinned()`` to one safetensors file (layout in the module docstring).
    Non-finite losses are stored as null. The file is written beside ``path`` and renamed
    into place, so a reader never sees half a file. Raises ValueError for a timeline
    without frames, or one whose fixed part alone is too big to be loaded again."""
    t = tl.thinned()
    if not t.frames:
        raise ValueError("a timeline without frames is not saved; record at least one frame first.")
    tensors: dict[str, np.ndarray] = {
        "codes": np.stack([f.codes for f in t.frames]),  # F x (P, d) -> (F, P, d)
        "probe_index": t.probe_index,
    }
    if t.originals is not None:
        tensors["recons"] = np.stack([f.recons for f in t.frames])  # F x (R, ...) -> (F, R, ...)
        tensors["originals"] = t.originals
    if t.labels is not None:
        tensors["labels"] = t.labels
    size = sum(a.nbytes for a in tensors.values()) + _HEADER_BYTES + _META_BYTES_PER_FRAME * len(t.frames)
    if size > 2 * MAX_BYTES:
        # only possible when two frames of reconstructions alone are this big: the loader would refuse it
        raise ValueError(
            f"this timeline would take {size / 2**20:.1f} MiB even with two frames; "
            f"record it without reconstructions (the limit is {2 * MAX_BYTES // 2**20} MiB)."
        )
    records = [
        {
            "step": f.step,
            "epoch": f.epoch,
            "train_loss": _finite_or_none(f.train_loss),
            "val_loss": _finite_or_none(f.val_loss),
        }
        for f in t.frames
    ]
    meta = {"format": FORMAT, "kind": t.kind, "frames": json.dumps(records, allow_nan=False)}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- loading -------------------------------------------------------------------


def _check_header(path: Path, size: int, what: str) -> None:
    """Tell a truncated safetensors file from something that never was one, before
    the safetensors reader gives one message for both. A safetensors file is an
    8-byte little-endian header length, a JSON header, then the tensor data."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        first = fh.read(1)
        if n < 2 or first != b"{":
            raise StoreError(f"{what} is not a safetensors file.")
        if 8 + n > size:
            raise StoreError(f"{what} is truncated: it ends inside its header (an interrupted save?).")
        try:
            header = json.loads(first + fh.read(n - 1))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise StoreError(f"{what} is not a safetensors file (its header is not JSON).") from e
    if not isinstance(header, dict):
        raise StoreError(f"{what} is not a safetensors file (its header is not a JSON object).")
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)
        if len(v["data_offsets"]) == 2 and _is_int(v["data_offsets"][1])
    ]
    if ends and 8 + n + max(ends) > size:
        raise StoreError(f"{what} is truncated: it ends before its data does (an interrupted save?).")


def _frame_records(raw: str | None, what: str) -> list[dict]:
    if raw is None:
        raise StoreError(f"{what} has no frame records.")
    try:
        records = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as e:
        raise StoreError(f"{what} has frame records that are not valid JSON ({e}).") from e

    def whole(v) -> bool:
        return _is_int(v) or (isinstance(v, float) and v.is_integer())

    def number(v) -> bool:
        return _is_real(v) and math.isfinite(v)

    ok = isinstance(records, list) and all(
        isinstance(r, dict)
        and whole(r.get("step"))
        and number(r.get("epoch"))
        and all(r.get(k) is None or number(r[k]) for k in ("train_loss", "val_loss"))
        for r in records
    )
    if not ok:
        raise StoreError(
            f"{what} has frame records that are not a list of objects with a whole-number step, "
            "a numeric epoch and numeric or null losses."
        )
    return records


def _tensor(f, key: str, what: str, kind: str) -> np.ndarray:
    try:
        a = f.get_tensor(key)
    except (SafetensorError, TypeError, ValueError) as e:  # e.g. bfloat16, which numpy has no type for
        raise StoreError(f"{what} holds {key} that cannot be read as numbers ({e}).") from e
    want = np.floating if kind == "float" else np.integer
    if not np.issubdtype(a.dtype, want):
        raise StoreError(f"{what} holds {key} of type {a.dtype}; expected {kind} numbers.")
    return a.astype(np.float32 if kind == "float" else np.int64, copy=False)


def load_timeline(path: str | os.PathLike, name: str) -> Timeline:
    """Read a file written by :func:`save_timeline`. ``name`` is the model's name, for
    messages: every problem is a StoreError with one sentence naming the model."""
    path = Path(path)
    what = f"the timeline of model {name!r}"
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise StoreError(f"model {name!r} has no timeline ({path.name}).") from e
    except OSError as e:
        raise StoreError(f"{what} cannot be read ({e.strerror}).") from e
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{what} is not a regular file.")  # a FIFO or a device would never finish reading
    if st.st_size > 2 * MAX_BYTES:
        raise StoreError(
            f"{what} is {st.st_size / 2**20:.0f} MiB, larger than the {2 * MAX_BYTES // 2**20} MiB a timeline may take."
        )
    try:
        _check_header(path, st.st_size, what)
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            fmt = meta.get("format")
            if fmt is None:
                raise StoreError(f"{what} has no format marker; it was not written as a training timeline.")
            if fmt != FORMAT:
                raise StoreError(f"{what} has format {fmt!r}; this version reads {FORMAT!r}.")
            kind = meta.get("kind")
            if kind not in KINDS:
                raise StoreError(f"{what} has an unknown data kind {kind!r}; expected one of {', '.join(KINDS)}.")
            missing = [k for k in ("codes", "probe_index") if k not in keys]
            if ("recons" in keys) != ("originals" in keys):
                missing.append("originals" if "recons" in keys else "recons")
            if missing:
                raise StoreError(f"{what} lacks the tensor(s) {', '.join(missing)}.")
            records = _frame_records(meta.get("frames"), what)
            codes = _tensor(f, "codes", what, "float")
            probe = _tensor(f, "probe_index", what, "int")
            labels = _tensor(f, "labels", what, "int") if "labels" in keys else None
            recons = _tensor(f, "recons", what, "float") if "recons" in keys else None
            originals = _tensor(f, "originals", what, "float") if "originals" in keys else None
    except OSError as e:
        raise StoreError(f"{what} cannot be read ({e.strerror or e}).") from e
    except SafetensorError as e:
        raise StoreError(f"{what} is not a readable safetensors file ({e}).") from e

    if codes.ndim != 3 or codes.shape[2] < 1:
        raise StoreError(f"{what} has codes of shape {codes.shape}; expected (frames, items, latent_dim).")
    n_frames, n_probe = codes.shape[:2]
    if n_frames == 0:
        raise StoreError(f"{what} has no frames.")
    if len(records) != n_frames:
        raise StoreError(f"{what} has {n_frames} frames of codes but {len(records)} frame records.")
    if probe.ndim != 1 or len(probe) != n_probe:
        raise StoreError(f"{what} has codes of {n_probe} items but probe indices of shape {probe.shape}.")
    if labels is not None and labels.shape != probe.shape:
        raise StoreError(f"{what} has codes of {n_probe} items but labels of shape {labels.shape}.")
    if recons is not None and recons.shape != (n_frames, *originals.shape):
        raise StoreError(
            f"{what} has reconstructions of shape {recons.shape}, which do not match {n_frames} frames "
            f"of its originals of shape {originals.shape}."
        )
    if not np.isfinite(codes).all():
        raise StoreError(f"{what} has codes that are not finite numbers (NaN or infinity).")
    try:
        tl = Timeline(kind, probe, labels, originals)
        for i, r in enumerate(records):
            frame = Frame(
                int(r["step"]),
                float(r["epoch"]),
                codes[i],
                None if recons is None else recons[i],
                r.get("train_loss"),
                r.get("val_loss"),
            )
            tl.frames.append(tl._checked(frame))  # not append(): a loaded timeline is never thinned
    except ValueError as e:
        raise StoreError(f"{what} is inconsistent: {e}") from e
    return tl
