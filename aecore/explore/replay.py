"""Replaying a training timeline: the probe items' codes frame by frame, in one picture.

The replay must show movement that happened in code space and nothing else: a
point that barely moved between two frames must barely move on the screen.
So every frame is projected with ONE fixed 2-D basis, the PCA of the *last*
frame's codes (its mean and top two directions): the last frame is what the
model became, and the earlier frames are shown as where its points came from.
A projection onto orthonormal directions never lengthens a displacement, so
on-screen movement is at most the movement in code space. Fitting a PCA per
frame instead would rotate and flip the axes from frame to frame and make
still points jump. Codes of 1 value are drawn as (code, 0), codes of 2 values
as they are.

The axes' ranges are the min/max over all frames (padded by 5%), not a robust
percentile: an item outside them would vanish from some frames, and early
frames are exactly where far-flung points are worth seeing.

The "settled" measure works in full code space (not the projection): the mean
distance the probe items move per epoch between adjacent frames. The code
space counts as settled from the first frame after which that rate stays below
10% of its first value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aecore.timeline import RECON_ITEMS, Timeline

SETTLED_FRACTION = 0.1  # "settled": moving less than this fraction of the first rate, from then on
PAD = 0.05  # the axes' ranges are padded by this fraction of their span
UIREVISION = "timeline-replay"  # one constant: plotly keeps a user's zoom while the slider moves


@dataclass
class Replay:
    xy: np.ndarray  # (F, P, 2): every frame in the one basis
    epochs: np.ndarray  # (F,)
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    labels: np.ndarray | None  # (P,)
    label_names: list[str] | None
    rate: np.ndarray  # (F-1,): mean code-space displacement per epoch between adjacent frames
    settled_epoch: float | None  # first frame's epoch after which `rate` stays below 10% of its first value
    moved_most: str | None  # the label whose items travelled the longest mean path; None with fewer than 2 labels
    caption: str  # what a user reads under the replay
    probe_index: np.ndarray | None = None  # (P,) the items' indices in the validation split, for hover text
    latent_dim: int | None = None

    def axis_titles(self) -> tuple[str, str]:
        if self.latent_dim is not None and self.latent_dim > 2:
            return ("PC 1 of the last frame", "PC 2 of the last frame")
        return ("code 1", "code 2" if self.latent_dim == 2 else "")

    def label_name(self, v) -> str:
        names = self.label_names
        return names[int(v)] if names and 0 <= int(v) < len(names) else str(v)

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """(legend name, item positions): one per label, in label order, or one "items" group."""
        if self.labels is None:
            return [("items", np.arange(self.xy.shape[1]))]
        return [(self.label_name(v), np.flatnonzero(self.labels == v)) for v in np.unique(self.labels)]


def _basis(last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and two orthonormal directions (2, d) of the last frame's codes (P, d), d > 2.
    A numpy SVD, so the same codes always give the same axes; each direction's sign is fixed
    so that its largest entry is positive (an SVD may return either sign)."""
    mean = last.mean(0) if len(last) else np.zeros(last.shape[1])
    _, _, vt = np.linalg.svd(last - mean, full_matrices=False)
    comps = np.zeros((2, last.shape[1]))
    comps[: min(2, len(vt))] = vt[:2]  # a single item has one direction; the other axis stays 0
    for c in comps:
        if c.any() and c[np.argmax(np.abs(c))] < 0:
            c *= -1
    return mean, comps


def _project(codes: np.ndarray) -> np.ndarray:
    """(F, P, d) codes -> (F, P, 2) points, all frames in the last frame's basis."""
    f, p, d = codes.shape
    if p == 0:
        return np.zeros((f, 0, 2))
    if d == 1:
        return np.concatenate([codes, np.zeros_like(codes)], axis=2)
    if d == 2:
        return codes.copy()
    mean, comps = _basis(codes[-1])
    return (codes - mean) @ comps.T  # (F, P, d) @ (d, 2) -> (F, P, 2)


def _range(v: np.ndarray) -> tuple[float, float]:
    if v.size == 0:
        return (-1.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo
    pad = PAD * span if span > 0 else max(1.0, abs(lo)) * 0.5  # a flat axis still gets a visible range
    return (lo - pad, hi + pad)


def _epoch_text(e: float) -> str:
    return f"{e:.2f}".rstrip("0").rstrip(".")


def frame_label(tl_or_epochs, i: int) -> str:
    """What the dashboard's slider shows for frame ``i``: "epoch 3", "epoch 2.5" (at most
    2 decimals). Takes a Timeline, a Replay or the epochs themselves."""
    epochs = getattr(tl_or_epochs, "epochs", tl_or_epochs)
    return f"epoch {_epoch_text(float(np.asarray(epochs, dtype=np.float64)[i]))}"


def _settled(rate: np.ndarray, epochs: np.ndarray) -> float | None:
    if len(rate) < 2 or not rate[0] > 0:
        return None
    below = rate < SETTLED_FRACTION * rate[0]
    if not below[-1]:
        return None
    j = len(below) - int(np.argmax(~below[::-1]))  # one past the last interval not below
    return float(epochs[j])


def _caption(rp: Replay) -> str:
    n = len(rp.epochs)
    if n == 0:
        return "No frames recorded yet: the replay needs at least two."
    if n == 1:
        return "One frame so far: the replay needs at least two."
    first, last = float(rp.rate[0]), float(rp.rate[-1])
    if n == 2:
        text = (
            f"Points moved {first:.3g} code units per epoch between the two frames; "
            "more frames are needed to tell whether the code space has settled."
        )
    elif first == 0 and last == 0:
        text = "Points did not move between the first two frames nor between the last two."
    elif first == 0:
        text = f"Points did not move at first and moved {last:.3g} code units per epoch at the end."
    else:
        text = f"Points moved {first:.3g} code units per epoch at first and {last:.3g} at the end; "
        if rp.settled_epoch is not None:
            text += (
                f"the code space settled after epoch {_epoch_text(rp.settled_epoch)} "
                f"(moving less than {SETTLED_FRACTION:.0%} of its first rate)."
            )
        else:
            text += f"still moving at the end: the last rate is {100 * last / first:.3g}% of the first."
    if rp.moved_most is not None:
        text += f" Items labelled {rp.moved_most!r} travelled furthest."
    return text


def replay(tl: Timeline, class_names: Sequence[str] | None = None) -> Replay:
    """Every frame of ``tl`` in one fixed 2-D basis, with the movement measures and a caption.
    ``class_names`` name the labels (label v is class_names[v]); without them labels show as numbers."""
    epochs = tl.epochs
    d = tl.latent_dim or 1
    codes = np.stack([f.codes for f in tl.frames]).astype(np.float64) if tl.frames else np.zeros((0, tl.n_probe, d))
    xy = _project(codes) if len(codes) else np.zeros((0, tl.n_probe, 2))
    step = np.linalg.norm(np.diff(codes, axis=0), axis=2)  # (F-1, P): each item's move between adjacent frames
    de = np.diff(epochs)
    de = np.where(de > 0, de, 1.0)  # two frames within one epoch's rounding: a rate per frame, not a division by 0
    rate = step.mean(1) / de if step.shape[1] else np.zeros(len(de))
    names = list(class_names) if class_names is not None else None
    rp = Replay(
        xy=xy.astype(np.float32),
        epochs=epochs,
        x_range=_range(xy[..., 0]),
        y_range=_range(xy[..., 1]),
        labels=None if tl.labels is None else tl.labels.copy(),
        label_names=names,
        rate=rate,
        settled_epoch=_settled(rate, epochs),
        moved_most=None,
        caption="",
        probe_index=tl.probe_index.copy(),
        latent_dim=tl.latent_dim,
    )
    if rp.labels is not None and len(step) and len(np.unique(rp.labels)) >= 2:
        path = step.sum(0)  # (P,): each item's path length over the whole run
        means = [(path[idx].mean(), name) for name, idx in rp.groups()]
        rp.moved_most = max(means, key=lambda m: m[0])[1]
    rp.caption = _caption(rp)
    return rp


def frame_strip(tl: Timeline, i: int) -> np.ndarray | None:
    """Images only: a uint8 picture of the originals (top row) over frame ``i``'s
    reconstructions (bottom row), enlarged by whole pixels. None for vector or
    sequence data and for timelines recorded without reconstructions."""
    frame = tl.frames[i]
    if tl.kind != "image" or tl.originals is None or frame.recons is None:
        return None
    # imported here: aecore.explore.figures loads torch, which replaying codes does not need
    from aecore.explore.figures import enlarge, recon_grid

    return enlarge(recon_grid(tl.originals, frame.recons, n=RECON_ITEMS))


def frame_figure(rp: Replay, i: int, title: str | None = None):
    """Frame ``i`` as a plotly figure: one Scattergl trace per label (or one "items"),
    on axes fixed to the whole replay's ranges, so moving the slider moves only the points."""
    import plotly.graph_objects as go  # here: the CLI never loads plotly

    pts = rp.xy[i]  # (P, 2)
    probe = rp.probe_index if rp.probe_index is not None else np.arange(len(pts))
    fig = go.Figure()
    for name, idx in rp.groups():
        fig.add_trace(
            go.Scattergl(
                x=pts[idx, 0],
                y=pts[idx, 1],
                mode="markers",
                name=name,
                marker={"size": 5, "opacity": 0.8},
                customdata=probe[idx],
                # the name from the trace, not pasted in: a class name may hold plotly's "%{"
                hovertemplate="%{fullData.name}<br>validation item %{customdata}<extra></extra>",
            )
        )
    x_title, y_title = rp.axis_titles()
    if title is None:
        title = f"codes of {pts.shape[0]} validation items, {frame_label(rp, i)}"
    fig.update_layout(
        template="plotly_dark",
        height=420,
        title=title,
        uirevision=UIREVISION,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        xaxis={"range": list(rp.x_range), "autorange": False, "title": x_title},
        yaxis={"range": list(rp.y_range), "autorange": False, "title": y_title},
    )
    return fig
