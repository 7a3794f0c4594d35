"""The one container every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aecore.errors import DataError


@dataclass
class Split:
    """One split. ``x`` is float32: images (N, C, H, W) in [0, 1], points (N, D),
    or token ids (N, T) as int64 for sequences. ``target`` is only set when the
    model must predict something other than its input (the sequence task)."""

    x: np.ndarray
    labels: np.ndarray | None = None
    target: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int) -> Split:
        return Split(
            self.x[:n],
            None if self.labels is None else self.labels[:n],
            None if self.target is None else self.target[:n],
        )


@dataclass
class DataBundle:
    """Train/validation/test splits of one dataset plus what describes them.

    kind: "image" (x is (N, C, H, W) in [0, 1]), "vector" (x is (N, D), any
    range) or "sequence" (x is (N, T) int64 token ids)."""

    name: str
    kind: str
    train: Split
    val: Split
    test: Split
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def limit(self, n: int | None) -> DataBundle:
        """Keep the first ``n`` training items (``--limit``); val/test untouched."""
        if n is None:
            return self
        if n < 1:
            raise DataError(f"--limit must be at least 1, got {n}.")
        return DataBundle(
            self.name, self.kind, self.train.head(n), self.val, self.test, self.class_names, dict(self.info)
        )


def split_train_val(
    x: np.ndarray, labels: np.ndarray | None, val_fraction: float, seed: int, target: np.ndarray | None = None
) -> tuple[Split, Split]:
    """Deterministic shuffled split of a training set into train and validation."""
    n = len(x)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    def take(idx):
        return Split(x[idx], None if labels is None else labels[idx], None if target is None else target[idx])

    return take(train_idx), take(val_idx)
