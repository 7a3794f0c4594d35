"""Fully connected autoencoders (seeds 000, 002, 003)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecore.errors import ConfigError
from aecore.models.base import ACTIVATIONS, Autoencoder, ModelConfig, activation, check_choice, check_positive_int

Init = Literal["default", "xavier", "xavier_zero_decoder"]


@dataclass
class DenseConfig(ModelConfig):
    """input -> hidden[0] -> ... -> latent -> ... reversed hidden -> input.

    ``activations`` gives one activation per hidden layer (the decoder mirrors
    them); a single entry applies to all. ``init``: "default" is PyTorch's,
    "xavier" is Glorot-uniform weights with zero biases (Keras' default, so the
    Keras seeds start where they did), "xavier_zero_decoder" also zeroes the
    decoder weights (seed 002's ``w2 = tf.zeros``)."""

    kind: ClassVar[str] = "dense"
    hidden: list[int] = field(default_factory=list)
    latent_dim: int = 32
    activations: list[str] = field(default_factory=lambda: ["relu"])
    code_activation: str = "relu"
    output_activation: str = "sigmoid"
    tied: bool = False
    init: Init = "default"

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("latent_dim", self.latent_dim)
        if len(self.hidden) > 20:
            raise ConfigError("at most 20 hidden layers are supported.")
        for i, h in enumerate(self.hidden):
            check_positive_int(f"hidden[{i}]", h)
        if not self.activations:
            raise ConfigError("activations needs at least one entry.")
        if len(self.activations) not in (1, len(self.hidden)) and self.hidden:
            raise ConfigError(
                f"give one activation or one per hidden layer ({len(self.hidden)}); got {len(self.activations)}."
            )
        for a in [*self.activations, self.code_activation, self.output_activation]:
            check_choice("activation", a, tuple(ACTIVATIONS))
        check_choice("init", self.init, ("default", "xavier", "xavier_zero_decoder"))

    def layer_activations(self) -> list[str]:
        return list(self.activations) * len(self.hidden) if len(self.activations) == 1 else list(self.activations)


class DenseAE(Autoencoder):
    config_class = DenseConfig

    def __init__(self, config: DenseConfig):
        super().__init__(config)
        sizes = [config.input_dim, *config.hidden, config.latent_dim]
        acts = config.layer_activations()
        self.encoder_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.encoder_acts = nn.ModuleList([*(activation(a) for a in acts), activation(config.code_activation)])
        dec_sizes = sizes[::-1]
        dec_acts = [*reversed(acts), config.output_activation]
        if config.tied:
            # Tied weights (decoder = encoder transposed) only need the decoder
            # biases; the weights are read from the encoder at every call.
            self.decoder_biases = nn.ParameterList(nn.Parameter(torch.zeros(b)) for b in dec_sizes[1:])
            self.decoder_layers = None
        else:
            self.decoder_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec_sizes[:-1], dec_sizes[1:]))
        self.decoder_acts = nn.ModuleList(activation(a) for a in dec_acts)
        self._init(config.init)

    def _init(self, init: str) -> None:
        if init == "default":
            return
        for layer in self.encoder_layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.decoder_layers is not None:
            for layer in self.decoder_layers:
                if init == "xavier_zero_decoder":
                    nn.init.zeros_(layer.weight)
                else:
                    nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: Tensor) -> Tensor:
        h = x.flatten(1)  # (B, C, H, W) -> (B, C*H*W)
        for layer, act in zip(self.encoder_layers, self.encoder_acts):
            h = act(layer(h))
        return h

    def decode(self, z: Tensor) -> Tensor:
        h = z
        if self.decoder_layers is None:
            weights = [layer.weight.t() for layer in reversed(self.encoder_layers)]
            for w, b, act in zip(weights, self.decoder_biases, self.decoder_acts):
                h = act(F.linear(h, w, b))
        else:
            for layer, act in zip(self.decoder_layers, self.decoder_acts):
                h = act(layer(h))
        return h.view(-1, *self.config.input_shape)  # (B, D) -> (B, *input_shape)

    def first_layer_weight(self) -> Tensor:
        return self.encoder_layers[0].weight  # (units, input_dim)
