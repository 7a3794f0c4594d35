"""The model registry: ``kind`` in config.json -> (config class, model class)."""

from __future__ import annotations

import torch

from aecore.errors import ConfigError
from aecore.models.base import (
    MAX_PARAMETERS,
    AEOutput,
    Autoencoder,
    Corruption,
    LossSpec,
    ModelConfig,
    Sparsity,
    count_parameters,
)
from aecore.models.conv import ConvAE, ConvConfig
from aecore.models.dense import DenseAE, DenseConfig
from aecore.models.seq import Seq2SeqConfig, Seq2SeqLSTM
from aecore.models.vae import ConvVAE, ConvVAEConfig, DenseVAE, DenseVAEConfig

MODELS: dict[str, type[Autoencoder]] = {
    "dense": DenseAE,
    "conv": ConvAE,
    "vae": DenseVAE,
    "conv_vae": ConvVAE,
    "seq2seq": Seq2SeqLSTM,
}


def config_from_dict(d: dict) -> ModelConfig:
    kind = d.get("kind") if isinstance(d, dict) else None
    if not isinstance(kind, str) or kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r}; known kinds: {', '.join(MODELS)}.")
    return MODELS[kind].config_class.from_dict(d)


def parameter_count(config: ModelConfig) -> int:
    """Parameters the config would allocate, counted on the meta device (no memory used)."""
    with torch.device("meta"):
        return count_parameters(MODELS[config.kind](config))


def build_model(config: ModelConfig) -> Autoencoder:
    """Build a model, refusing absurd sizes before anything is allocated."""
    if config.kind not in MODELS:
        raise ConfigError(f"unknown model kind {config.kind!r}; known kinds: {', '.join(MODELS)}.")
    n = parameter_count(config)
    if n > MAX_PARAMETERS:
        raise ConfigError(
            f"this model would have {n:,} parameters, above the limit of {MAX_PARAMETERS:,}; "
            "use fewer or smaller layers."
        )
    return MODELS[config.kind](config)


__all__ = [
    "MODELS",
    "AEOutput",
    "Autoencoder",
    "ConvAE",
    "ConvConfig",
    "ConvVAE",
    "ConvVAEConfig",
    "Corruption",
    "DenseAE",
    "DenseConfig",
    "DenseVAE",
    "DenseVAEConfig",
    "LossSpec",
    "ModelConfig",
    "Seq2SeqConfig",
    "Seq2SeqLSTM",
    "Sparsity",
    "build_model",
    "config_from_dict",
    "parameter_count",
]
