"""Reconstruction error as an anomaly score (seed 001): outlier sets, thresholds, AUROC.

A model trained on normal data reconstructs normal items well and odd ones
badly, so its per-item error (:func:`aecore.explore.inference.per_item_errors`) ranks
inputs by how unusual they are. When no second dataset of the same shape is at
hand (8x8 digits have none), :func:`outlier_set` makes one from the normal
items themselves: inverted, flipped, shuffled or pure noise. The Anomalies
page shows :func:`score_view` (threshold, flagged rates, AUROC, histogram bins)
and :func:`worst_view` (the worst-reconstructed items) over these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aecore.data import DATASETS, DataBundle, as_float, load_dataset
from aecore.errors import AecoreError, ConfigError
from aecore.explore import figures, inference
from aecore.models.trained import TrainedModel

# kind -> what it does; images accept all of IMAGE_KINDS, points (N, D) VECTOR_KINDS.
OUTLIER_KINDS = {
    "invert": "inverted: 1 - x (light strokes on dark become dark on light)",
    "flip": "flipped upside down",
    "shuffle": "each item's values shuffled (same intensities, no shape)",
    "noise": "uniform noise over the data's range",
}
IMAGE_KINDS = ("invert", "flip", "shuffle", "noise")
VECTOR_KINDS = ("noise", "shuffle")
MAX_OUTLIERS = 10_000  # test items scored from another dataset
GRID_WIDTH = 720  # px the worst items' grid is enlarged towards


def outlier_set(x: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Items that are *not* like ``x``, as float32 in ``x``'s shape and range.

    ``x`` is images (N, C, H, W) in [0, 1] (uint8 is divided by 255) or points
    (N, D). Images: "invert" (1 - x), "flip" (upside down), "shuffle" (each
    image's pixels permuted), "noise" (uniform in [0, 1]). Points: "noise"
    (uniform over the data's bounding box widened by 10% per side, where almost
    every point is off a low-dimensional manifold) and "shuffle" (each point's
    coordinates permuted). Deterministic for a given ``seed``."""
    x = np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim not in (2, 4) or len(x) == 0:
        raise ConfigError(f"outlier_set takes images (N, C, H, W) or points (N, D); got shape {x.shape}.")
    image = x.ndim == 4
    allowed = IMAGE_KINDS if image else VECTOR_KINDS
    if kind not in allowed:
        raise ConfigError(
            f"outlier kind for {'images' if image else 'points'} must be one of {', '.join(allowed)}; got {kind!r}."
        )
    rng = np.random.default_rng(seed)
    if kind == "invert":
        return 1.0 - x
    if kind == "flip":
        return np.ascontiguousarray(x[:, :, ::-1, :])  # rows reversed: upside down
    if kind == "shuffle":
        flat = x.reshape(len(x), -1)  # (N, ...) -> (N, D)
        idx = rng.random(flat.shape).argsort(axis=1)  # an independent permutation per item
        return np.take_along_axis(flat, idx, axis=1).reshape(x.shape)
    if image:
        return rng.random(x.shape, dtype=np.float32)
    lo, hi = x.min(0), x.max(0)
    pad = 0.1 * (hi - lo)
    return rng.uniform(lo - pad, hi + pad, x.shape).astype(np.float32)


def threshold_at(errors: np.ndarray, quantile: float) -> float:
    """The error below which a fraction ``quantile`` of ``errors`` lies (linear
    interpolation, numpy's default). Items scoring above it are flagged."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        raise ConfigError("a threshold needs at least one error.")
    if not 0.0 <= quantile <= 1.0:  # also refuses NaN
        raise ConfigError(f"the quantile must be between 0 and 1; got {quantile!r}.")
    return float(np.quantile(e, quantile))


def flagged_fraction(errors: np.ndarray, threshold: float) -> float:
    """Fraction of items whose error is strictly above ``threshold`` (0.0 for none)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    return float(np.mean(e > threshold)) if e.size else 0.0


def auroc(normal_scores: np.ndarray, outlier_scores: np.ndarray) -> float:
    """Area under the ROC curve of "score > t means outlier": the probability
    that a random outlier scores above a random normal item, ties counting one
    half (the Mann-Whitney U statistic over n_normal * n_outlier). 1.0 is a
    perfect separation, 0.5 chance."""
    a = np.asarray(normal_scores, dtype=np.float64).ravel()
    b = np.asarray(outlier_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ConfigError("AUROC needs at least one normal and one outlier score.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("AUROC needs finite scores.")
    both = np.concatenate([a, b])
    # average ranks (1-based), tied values sharing the mean of their ranks
    values, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    u = ranks[a.size :].sum() - b.size * (b.size + 1) / 2.0
    return float(u / (a.size * b.size))


def worst(errors: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest errors, largest first (ties by index)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be a non-negative integer; got {k!r}.")
    return np.argsort(-e, kind="stable")[:k]


# The page's view of the scores. A source names a set of items: "test" (the
# model's own test split), "dataset:NAME" (another dataset's test split),
# "synthetic:KIND" (the test split made odd by outlier_set) or "none".

Loader = Callable[[str], DataBundle]


@dataclass(frozen=True)
class Items:
    x: np.ndarray  # float, images in [0, 1]
    labels: np.ndarray | None
    class_names: list[str] | None


@dataclass(frozen=True)
class ScoreView:
    """What the threshold makes of the normal and the outlier errors.

    ``*_axis`` are the errors (and the threshold) on the chart's axis, log10 or
    linear; ``edges`` are histogram bins shared by both sets so they overlay."""

    threshold: float
    flagged: np.ndarray  # (N,) bool: the normal items above the threshold
    flagged_normal: float  # fraction: the false-alarm rate
    flagged_outliers: float | None  # fraction: the detection rate; None without outliers
    auroc: float | None  # None without outliers, or when the scores are not finite
    normal_axis: np.ndarray
    outlier_axis: np.ndarray | None
    threshold_axis: float
    edges: np.ndarray


@dataclass(frozen=True)
class WorstView:
    """The ``k`` worst items, worst first, as table columns (rank, item, label when
    known, error, flagged, and for points each coordinate beside its
    reconstruction) and, for images, originals over reconstructions."""

    columns: dict[str, np.ndarray | list]
    grid: np.ndarray | None  # uint8, enlarged by a whole factor; None for points


def _loader(data_dir: str | None, load: Loader | None) -> Loader:
    return load if load is not None else (lambda name: load_dataset(name, data_dir))


def describe(source: str) -> str:
    """A source in words, as the outlier-set choice and the chart legend show it."""
    kind, _, arg = source.partition(":")
    if kind == "dataset":
        return f"{arg} (its test split)"
    return f"synthetic: test items {OUTLIER_KINDS[arg]}" if kind == "synthetic" else "no outlier set"


def outlier_sources(bundle: DataBundle, data_dir: str | None = None, load: Loader | None = None) -> list[str]:
    """Sources of outliers for a model of ``bundle``, best first: the test splits of
    the other datasets here whose items have its shape, the synthetic kinds its
    data allows, then "none". ``load`` (name -> bundle, e.g. a cached loader) is
    used to learn a dataset's item shape."""
    load = _loader(data_dir, load)
    same = []
    for name, spec in DATASETS.items():
        if name == bundle.name or spec.kind != bundle.kind or not spec.available(data_dir):
            continue
        # torchvision's raw-layout files are 28x28 grey by format: no need to read 60,000 images to know
        shape = (1, 28, 28) if spec.folder else load(name).sample_shape
        if tuple(shape) == tuple(bundle.sample_shape):
            same.append(f"dataset:{name}")
    kinds = IMAGE_KINDS if bundle.kind == "image" else VECTOR_KINDS
    return same + [f"synthetic:{k}" for k in kinds] + ["none"]


def source_items(
    bundle: DataBundle,
    source: str,
    data_dir: str | None = None,
    load: Loader | None = None,
    max_items: int = MAX_OUTLIERS,
) -> Items:
    """The items of a source, as floats, with their labels and class names. Another
    dataset gives its first ``max_items`` test items; a synthetic set is made from
    the whole test split with seed 0, so it is the same on every call."""
    kind, _, arg = source.partition(":")
    if kind == "dataset":
        other = _loader(data_dir, load)(arg)
        labels = None if other.test.labels is None else other.test.labels[:max_items]
        return Items(as_float(other.test.x[:max_items], other), labels, other.class_names)
    if source != "test" and kind != "synthetic":
        raise ConfigError(f"a source is 'test', 'dataset:NAME' or 'synthetic:KIND'; got {source!r}.")
    x = as_float(bundle.test.x, bundle)
    return Items(x if source == "test" else outlier_set(x, arg, seed=0), bundle.test.labels, bundle.class_names)


def error_axis(errors: np.ndarray, log: bool) -> np.ndarray:
    """Errors as the chart plots them: log10 (an error of 0 at 1e-12) or as they are."""
    e = np.asarray(errors)  # float32 stays float32: half the bytes in a chart of 10,000 items
    return np.log10(np.maximum(e, 1e-12)) if log else e


def score_view(
    normal: np.ndarray, outliers: np.ndarray | None, percentile: float, log: bool = True, bins: int = 60
) -> ScoreView:
    """The threshold at ``percentile`` (0-100) of the normal errors and what it flags."""
    threshold = threshold_at(normal, percentile / 100)
    auc = None
    if outliers is not None:
        try:
            auc = auroc(normal, outliers)
        except AecoreError:  # a model that outputs NaN has no ranking to score
            auc = None
    normal_axis = error_axis(normal, log)
    outlier_axis = None if outliers is None else error_axis(outliers, log)
    both = np.concatenate([normal_axis] + ([] if outlier_axis is None else [outlier_axis]))
    finite = both[np.isfinite(both)]  # NaN errors have no bin; numpy refuses a NaN range
    return ScoreView(
        threshold=threshold,
        flagged=np.asarray(normal) > threshold,
        flagged_normal=flagged_fraction(normal, threshold),
        flagged_outliers=None if outliers is None else flagged_fraction(outliers, threshold),
        auroc=auc,
        normal_axis=normal_axis,
        outlier_axis=outlier_axis,
        threshold_axis=float(error_axis(np.array([threshold]), log)[0]),
        edges=np.histogram_bin_edges(finite if finite.size else np.zeros(1), bins=bins),
    )


def worst_view(
    tm: TrainedModel, items: Items, errors: np.ndarray, k: int, threshold: float, width: int = GRID_WIDTH
) -> WorstView:
    """The ``k`` items of ``items`` with the largest ``errors``, and the model's reconstructions of them."""
    idx = worst(errors, k)
    x = items.x[idx]
    rec = inference.reconstruct(tm, x)
    e = np.asarray(errors)[idx]
    columns: dict[str, np.ndarray | list] = {"rank": np.arange(1, len(idx) + 1), "item": idx}
    if items.labels is not None:
        names = items.class_names
        columns["label"] = [names[int(v)] if names else str(v) for v in items.labels[idx]]
    columns |= {"error": e, "flagged": e > threshold}
    if x.ndim == 4:
        return WorstView(columns, figures.enlarge(figures.image_grid([x, rec]), width, max_factor=8))
    for d in range(x.shape[1]):
        columns[f"x{d}"], columns[f"reconstructed x{d}"] = x[:, d], rec[:, d]
    return WorstView(columns, None)


__all__ = [
    "IMAGE_KINDS",
    "MAX_OUTLIERS",
    "OUTLIER_KINDS",
    "VECTOR_KINDS",
    "Items",
    "ScoreView",
    "WorstView",
    "auroc",
    "describe",
    "error_axis",
    "flagged_fraction",
    "outlier_set",
    "outlier_sources",
    "score_view",
    "source_items",
    "threshold_at",
    "worst",
    "worst_view",
]
