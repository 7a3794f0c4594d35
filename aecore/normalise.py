"""Maps data between its stored range and the range a model trains in.

Datasets keep images in [0, 1]; a preset says what the model sees: "unit"
(unchanged), "symmetric" ([-1, 1], seed 001's ``Normalize([0.5], [0.5])`` with
a tanh output), or "standardize" (per-feature zero mean and unit variance from
the training split, seed 002's ``StandardScaler``). The fitted statistics are
saved with the model, so uploads are preprocessed exactly as training data was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from aecore.errors import ConfigError

NORMALISATIONS = ("unit", "symmetric", "standardize")


@dataclass
class Normaliser:
    kind: str = "unit"
    mean: Tensor | None = None  # (*sample_shape) for "standardize"
    std: Tensor | None = None

    def __post_init__(self):
        if self.kind not in NORMALISATIONS:
            raise ConfigError(f"normalisation must be one of {', '.join(NORMALISATIONS)}; got {self.kind!r}.")

    @classmethod
    def fit(cls, kind: str, train_x: np.ndarray) -> Normaliser:
        if kind != "standardize":
            return cls(kind)
        x = torch.as_tensor(train_x, dtype=torch.float64)
        mean, std = x.mean(0), x.std(0, unbiased=False)
        # StandardScaler's rule: a constant feature keeps scale 1 instead of dividing by zero.
        std = torch.where(std < 1e-8, torch.ones_like(std), std)
        return cls(kind, mean.float(), std.float())

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "symmetric":
            return x * 2 - 1
        if self.kind == "standardize":
            return (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x

    def inverse(self, x: Tensor) -> Tensor:
        if self.kind == "symmetric":
            return (x + 1) / 2
        if self.kind == "standardize":
            return x * self.std.to(x.device) + self.mean.to(x.device)
        return x

    def model_range(self, data_lo: float = 0.0, data_hi: float = 1.0) -> tuple[float, float]:
        """The range of model-space values, for clipping corrupted inputs."""
        if self.kind == "symmetric":
            return (2 * data_lo - 1, 2 * data_hi - 1)
        if self.kind == "standardize":
            lo = ((data_lo - self.mean) / self.std).min().item()
            hi = ((data_hi - self.mean) / self.std).max().item()
            return (lo, hi)
        return (data_lo, data_hi)

    def state_tensors(self) -> dict[str, Tensor]:
        if self.kind != "standardize":
            return {}
        return {"normaliser.mean": self.mean.contiguous(), "normaliser.std": self.std.contiguous()}

    @classmethod
    def from_state(cls, kind: str, tensors: dict[str, Tensor], sample_shape: tuple[int, ...]) -> Normaliser:
        if kind != "standardize":
            return cls(kind)
        try:
            mean, std = tensors["normaliser.mean"], tensors["normaliser.std"]
        except KeyError as e:
            raise ConfigError("the saved model lacks its standardisation statistics.") from e
        if tuple(mean.shape) != tuple(sample_shape) or tuple(std.shape) != tuple(sample_shape):
            raise ConfigError("the saved standardisation statistics do not match the model's input shape.")
        return cls(kind, mean.float(), std.float())
