"""Convolutional autoencoders (seed 003, after the Keras blog's examples).

Any image size works: the encoder pools with Keras' "same" rounding
(28 -> 14 -> 7 -> 4), the decoder doubles back, and whatever that overshoots is
cropped. The seed's decoder shrinks 16 -> 14 with one "valid" convolution so
that 4 -> 28 comes out exactly; that layer is kept where it lands on the input
size and replaced by a "same" one (and the change recorded) where it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import Tensor, nn

from aecore.errors import ConfigError
from aecore.models.base import ACTIVATIONS, Autoencoder, ModelConfig, activation, check_choice, check_positive_int


@dataclass
class ConvConfig(ModelConfig):
    """channels: encoder conv widths, each followed by a 2x down-sampling;
    decoder_channels default to the reverse. ``valid_layer`` is the index of
    the decoder conv that uses "valid" padding (the seed's trick), or None.
    ``latent_dim``: None keeps the last feature map as the code (the seed's
    8x4x4 = 128 values); a number adds a dense bottleneck of that size."""

    kind: ClassVar[str] = "conv"
    channels: list[int] = field(default_factory=lambda: [16, 8, 8])
    decoder_channels: list[int] | None = None
    kernel_size: int = 3
    downsample: Literal["maxpool", "stride"] = "maxpool"
    valid_layer: int | None = None
    latent_dim: int | None = None
    activation: str = "relu"
    output_activation: str = "sigmoid"
    init: Literal["default", "xavier"] = "default"

    def __post_init__(self):
        super().__post_init__()
        if len(self.input_shape) != 3:
            raise ConfigError(
                f"a convolutional model needs image data (channels, height, width); got shape {self.input_shape}."
            )
        if not (1 <= len(self.channels) <= 6):
            raise ConfigError("channels needs 1 to 6 entries.")
        for i, c in enumerate(self.channels):
            check_positive_int(f"channels[{i}]", c, hi=1024)
        if self.decoder_channels is not None:
            if len(self.decoder_channels) != len(self.channels):
                raise ConfigError("decoder_channels needs as many entries as channels.")
            for i, c in enumerate(self.decoder_channels):
                check_positive_int(f"decoder_channels[{i}]", c, hi=1024)
        check_positive_int("kernel_size", self.kernel_size, hi=15)
        if self.kernel_size % 2 == 0:
            raise ConfigError("kernel_size must be odd so that 'same' padding is symmetric.")
        if self.latent_dim is not None:
            check_positive_int("latent_dim", self.latent_dim)
        if self.valid_layer is not None and not (0 <= self.valid_layer < len(self.channels)):
            raise ConfigError("valid_layer must index a decoder conv layer.")
        check_choice("downsample", self.downsample, ("maxpool", "stride"))
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("output_activation", self.output_activation, tuple(ACTIVATIONS))
        check_choice("init", self.init, ("default", "xavier"))


def _plan(cfg: ConvConfig) -> tuple[list[int], list[int], int | None, list[str]]:
    """Spatial sizes of the bottleneck, the decoder's output size, which valid
    layer survives, and notes on what was adapted."""
    _, H, W = cfg.input_shape
    L = len(cfg.channels)
    bottleneck = [H, W]
    for _ in range(L):
        bottleneck = [math.ceil(s / 2) for s in bottleneck]
    notes = []
    if min(bottleneck) < 1:
        raise ConfigError("the image is too small for that many down-sampling steps.")

    def out_size(s: int, valid: int | None) -> int:
        for j in range(L):
            s = (s - (cfg.kernel_size - 1) if j == valid else s) * 2
        return s

    valid = cfg.valid_layer
    if valid is not None:
        sizes = [out_size(s, valid) for s in bottleneck]
        if sizes != [H, W]:
            notes.append(
                f"decoder layer {valid} uses 'same' instead of 'valid' padding: "
                f"'valid' fits only inputs where it lands on the size, not {H}x{W}"
            )
            valid = None
    out = [out_size(s, valid) for s in bottleneck]
    if out != [H, W]:
        notes.append(f"decoder output {out[0]}x{out[1]} is cropped to the input's {H}x{W}")
    return bottleneck, out, valid, notes


class ConvEncoder(nn.Module):
    def __init__(self, cfg: ConvConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.input_shape[0]
        for c in cfg.channels:
            if cfg.downsample == "stride":
                layers += [
                    nn.Conv2d(c_in, c, cfg.kernel_size, stride=2, padding=cfg.kernel_size // 2),
                    activation(cfg.activation),
                ]
            else:
                layers += [
                    nn.Conv2d(c_in, c, cfg.kernel_size, padding="same"),
                    activation(cfg.activation),
                    nn.MaxPool2d(2, ceil_mode=True),
                ]  # Keras' padding='same' pooling
            c_in = c
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    def __init__(self, cfg: ConvConfig, valid: int | None):
        super().__init__()
        chans = cfg.decoder_channels or list(reversed(cfg.channels))
        layers: list[nn.Module] = []
        c_in = cfg.channels[-1]
        for j, c in enumerate(chans):
            pad = 0 if j == valid else "same"
            layers += [
                nn.Conv2d(c_in, c, cfg.kernel_size, padding=pad),
                activation(cfg.activation),
                nn.Upsample(scale_factor=2, mode="nearest"),
            ]
            c_in = c
        layers += [
            nn.Conv2d(c_in, cfg.input_shape[0], cfg.kernel_size, padding="same"),
            activation(cfg.output_activation),
        ]
        self.net = nn.Sequential(*layers)
        self.out_hw = cfg.input_shape[1:]

    def forward(self, h: Tensor) -> Tensor:
        x = self.net(h)
        H, W = self.out_hw
        return x[..., :H, :W]  # drop what the ceil-rounded pooling added at the bottom/right


class ConvAE(Autoencoder):
    config_class = ConvConfig

    def __init__(self, config: ConvConfig):
        super().__init__(config)
        self.bottleneck_hw, _, valid, notes = _plan(config)
        self.adaptations.extend(notes)
        self.map_shape = (config.channels[-1], *self.bottleneck_hw)
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config, valid)
        n_map = math.prod(self.map_shape)
        if config.latent_dim is not None:
            self.to_code = nn.Linear(n_map, config.latent_dim)
            self.from_code = nn.Sequential(nn.Linear(config.latent_dim, n_map), activation(config.activation))
        if config.init == "xavier":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim or math.prod(self.map_shape)

    def encode(self, x: Tensor) -> Tensor:
        h = self.encoder(x)  # (B, C, H, W) -> (B, C_L, h, w)
        if self.config.latent_dim is None:
            return h
        return self.to_code(h.flatten(1))  # (B, C_L*h*w) -> (B, latent)

    def decode(self, z: Tensor) -> Tensor:
        if self.config.latent_dim is None:
            h = z.reshape(-1, *self.map_shape)  # flat codes from sliders -> (B, C_L, h, w)
        else:
            h = self.from_code(z).view(-1, *self.map_shape)
        return self.decoder(h)

    def first_layer_weight(self) -> Tensor:
        return self.encoder.net[0].weight  # (out, in, k, k)
