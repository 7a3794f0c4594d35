"""Variational autoencoders (Kingma & Welling 2014), dense (seed 001) and convolutional.

``encode`` returns the posterior mean, so plots, sliders and features use the
deterministic code; ``forward`` (the base model's) decodes a sample drawn with
the reparameterisation trick, adds the KL term, and applies any sparsity
penalties to the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from aecore.errors import ConfigError
from aecore.models.base import Autoencoder, Encoded, activation
from aecore.models.conv import ConvAE, ConvConfig
from aecore.models.dense import DenseConfig


def _check_beta(beta: float) -> None:
    if not (0 <= beta <= 1000):
        raise ConfigError(f"beta must be between 0 and 1000; got {beta}.")


@dataclass
class DenseVAEConfig(DenseConfig):
    """The seed's VAE is hidden=[400], latent_dim=20, tanh output on [-1, 1] data."""

    kind: ClassVar[str] = "vae"
    hidden: list[int] = field(default_factory=lambda: [400])
    latent_dim: int = 20
    output_activation: str = "sigmoid"
    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        _check_beta(self.beta)
        if self.tied:
            raise ConfigError("tied weights are not supported for a VAE (mean and log-variance heads differ).")
        if not self.hidden:
            raise ConfigError("a VAE needs at least one hidden layer before its mean and log-variance heads.")


@dataclass
class ConvVAEConfig(ConvConfig):
    kind: ClassVar[str] = "conv_vae"
    latent_dim: int | None = 16
    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        _check_beta(self.beta)
        if self.latent_dim is None:
            raise ConfigError("a convolutional VAE needs a latent_dim.")


class _Variational:
    """KL term and sampling shared by both VAE families (mixed into Autoencoder)."""

    is_variational = True

    def encode_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        return self.encode_stats(x)[0]

    def kl_term(self, mu: Tensor, logvar: Tensor) -> Tensor:
        # KL(q(z|x) || N(0, I)) = -0.5 * Σ(1 + log σ² - μ² - σ²), Appendix B of Kingma & Welling.
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)  # (B,)
        reduction = self.config.loss.reduction
        if reduction == "batch_sum":
            kl = kl.sum()
        elif reduction == "sum":
            kl = kl.mean()
        else:  # per-element recon loss: keep the same ratio of the two terms
            kl = kl.mean() / self.config.input_dim
        return self.config.loss.scale * self.config.beta * kl

    def encode_for_loss(self, x: Tensor) -> Encoded:
        # Sparsity (applied by the shared forward) penalises the mean, the code
        # that embed, the plots and the sliders show, rather than the noisy sample.
        mu, logvar = self.encode_stats(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return Encoded(code=mu, decoder_input=z, terms={"kl": self.kl_term(mu, logvar)}, extras={"logvar": logvar})

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=p.device if generator is None else "cpu")
        return self.decode(z.to(p.device))


class DenseVAE(_Variational, Autoencoder):
    config_class = DenseVAEConfig

    def __init__(self, config: DenseVAEConfig):
        super().__init__(config)
        acts = config.layer_activations()
        sizes = [config.input_dim, *config.hidden]
        enc: list[nn.Module] = []
        for (a, b), act in zip(zip(sizes[:-1], sizes[1:]), acts):
            enc += [nn.Linear(a, b), activation(act)]
        self.encoder = nn.Sequential(*enc)
        self.fc_mu = nn.Linear(sizes[-1], config.latent_dim)
        self.fc_logvar = nn.Linear(sizes[-1], config.latent_dim)
        dec_sizes = [config.latent_dim, *reversed(config.hidden), config.input_dim]
        dec_acts = [*reversed(acts), config.output_activation]
        dec: list[nn.Module] = []
        for (a, b), act in zip(zip(dec_sizes[:-1], dec_sizes[1:]), dec_acts):
            dec += [nn.Linear(a, b), activation(act)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x.flatten(1))  # (B, C, H, W) -> (B, hidden[-1])
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, *self.config.input_shape)  # (B, D) -> (B, *input_shape)

    def first_layer_weight(self) -> Tensor:
        return self.encoder[0].weight


class ConvVAE(_Variational, ConvAE):
    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig):
        super().__init__(config)
        n_map = math.prod(self.map_shape)
        self.to_logvar = nn.Linear(n_map, config.latent_dim)

    def encode_stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x).flatten(1)  # (B, C, H, W) -> (B, C_L*h*w)
        return self.to_code(h), self.to_logvar(h)
