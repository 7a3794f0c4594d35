"""Datasets that need no files and no network.

The manifold demos restate the seeds' intuition: data that lives on a
low-dimensional curve inside a higher-dimensional space. Their labels are the
true curve parameter cut into ten bins, so a plot of the learned code coloured
by label shows whether the code recovered the curve's order.
"""

from __future__ import annotations

import numpy as np

from aecore.data.base import DataBundle, Split, split_train_val


def _three_way(name, kind, x, labels, seed, test_fraction=0.2, val_fraction=0.1, target=None, **info):
    train, test = split_train_val(x, labels, test_fraction, seed + 1, target)
    train, val = split_train_val(train.x, train.labels, val_fraction, seed, train.target)
    return DataBundle(name, kind, train, val, test, info=info)


def digits(seed: int = 0) -> DataBundle:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 8, 8) in 0..16 -> (N, 1, 8, 8) in [0, 1]
    b = _three_way(
        "digits",
        "image",
        x,
        d.target.astype(np.int64),
        seed,
        source="scikit-learn load_digits (UCI optical digits, 8x8)",
    )
    b.class_names = [str(i) for i in range(10)]
    return b


def _binned(t: np.ndarray) -> np.ndarray:
    edges = np.quantile(t, np.linspace(0, 1, 11)[1:-1])
    return np.digitize(t, edges).astype(np.int64)


def line2d(seed: int = 0, n: int = 2000) -> DataBundle:
    """Points on a line in 2-D: one number (the position along it) is enough."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, n)
    x = np.stack([t, 0.6 * t + 0.2], 1) + rng.normal(0, 0.01, (n, 2))
    return _three_way(
        "line2d",
        "vector",
        x.astype(np.float32),
        _binned(t),
        seed,
        source="synthetic: y = 0.6x + 0.2 plus noise 0.01 (seed 000)",
        true_dim=1,
    )


def sine(seed: int = 0, n: int = 2000) -> DataBundle:
    """Points on a sine wave: 1-D, but no straight line through the plane follows it."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-np.pi, np.pi, n)
    x = np.stack([t / np.pi, np.sin(t)], 1) + rng.normal(0, 0.01, (n, 2))
    return _three_way(
        "sine",
        "vector",
        x.astype(np.float32),
        _binned(t),
        seed,
        source="synthetic: y = sin(x) on [-pi, pi] (seed 000)",
        true_dim=1,
    )


def helix3d(seed: int = 0, n: int = 3000) -> DataBundle:
    """Points on a 3-D helix: theta = f(x, y, z) describes each with one number (seed 001)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 4 * np.pi, n)
    x = np.stack([np.cos(theta), np.sin(theta), theta / (4 * np.pi)], 1) + rng.normal(0, 0.01, (n, 3))
    return _three_way(
        "helix3d",
        "vector",
        x.astype(np.float32),
        _binned(theta),
        seed,
        source="synthetic: (cos t, sin t, t/4pi), t in [0, 4pi] (seed 001)",
        true_dim=1,
    )


def reverse_seq(
    seed: int = 0,
    n_train: int = 100_000,
    n_val: int = 5_000,
    n_test: int = 10_000,
    length: int = 6,
    out_len: int = 3,
    vocab: int = 51,
) -> DataBundle:
    """Seed 000's task: 6 random ints in 1..50; the target is the first 3 reversed."""
    rng = np.random.default_rng(seed)

    def make(n):
        x = rng.integers(1, vocab, size=(n, length), dtype=np.int64)
        return Split(x, None, np.ascontiguousarray(x[:, :out_len][:, ::-1]))

    return DataBundle(
        "reverse-seq",
        "sequence",
        make(n_train),
        make(n_val),
        make(n_test),
        info={"source": "synthetic (seed 000)", "vocab": vocab, "output_len": out_len},
    )
