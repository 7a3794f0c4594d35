"""A model with what it needs to be used: its normaliser, metadata, history and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aecore.models.base import Autoencoder
from aecore.normalise import Normaliser
from aecore.records import EpochRecord, ModelMeta
from aecore.timeline import Timeline


@dataclass
class TrainedModel:
    """A model with everything needed to use it: its preprocessing, where it
    came from, and how its training went."""

    model: Autoencoder
    normaliser: Normaliser
    meta: ModelMeta
    history: list[EpochRecord] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    optimizer_state: dict | None = None
    name: str | None = None
    timeline: Timeline | None = None  # how its code space formed; loaded on request (ModelStore.timeline)

    def __post_init__(self):
        if isinstance(self.meta, dict):  # a plain dict (tests, scripts) is checked like a stored one
            self.meta = ModelMeta.from_dict(self.meta)

    @property
    def data_kind(self) -> str:
        return self.meta.data_kind

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data in its stored range ([0, 1] images) -> what the model reads."""
        p = next(self.model.parameters())
        return self.normaliser.forward(x.to(p.device, torch.float32))

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        out = self.normaliser.inverse(x.float())
        return out.clamp(0, 1) if self.data_kind == "image" else out
