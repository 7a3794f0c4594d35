"""Reconstruction error as an anomaly score (seed 001): outlier sets, thresholds, AUROC.

A model trained on normal data reconstructs normal items well and odd ones
badly, so its per-item error (:func:`aecore.explore.inference.per_item_errors`) ranks
inputs by how unusual they are. When no second dataset of the same shape is at
hand (8x8 digits have none), :func:`outlier_set` makes one from the normal
items themselves: inverted, flipped, shuffled or pure noise.
"""

from __future__ import annotations

import numpy as np

from aecore.errors import ConfigError

# kind -> what it does; images accept all of IMAGE_KINDS, points (N, D) VECTOR_KINDS.
OUTLIER_KINDS = {
    "invert": "inverted: 1 - x (light strokes on dark become dark on light)",
    "flip": "flipped upside down",
    "shuffle": "each item's values shuffled (same intensities, no shape)",
    "noise": "uniform noise over the data's range",
}
IMAGE_KINDS = ("invert", "flip", "shuffle", "noise")
VECTOR_KINDS = ("noise", "shuffle")


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


__all__ = [
    "IMAGE_KINDS",
    "OUTLIER_KINDS",
    "VECTOR_KINDS",
    "auroc",
    "flagged_fraction",
    "outlier_set",
    "threshold_at",
    "worst",
]
