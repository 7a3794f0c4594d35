"""The surface every autoencoder shares, and the pieces the families reuse.

Every model takes the *preprocessed* input (see :mod:`aecore.normalise`) and
exposes ``encode``/``decode``/``forward``/``reconstruct``/``embed``; ``forward``
returns an :class:`AEOutput` whose ``terms`` name every part of the loss, so the
trainer, the CLI and the dashboard can plot each term without knowing the family.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_origin, get_type_hints

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecore.errors import ConfigError

Activation = Literal["relu", "sigmoid", "tanh", "softplus", "linear", "leaky_relu", "elu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "linear": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}

# Sizes beyond these are refused before a single tensor is allocated: a typo
# like latent_dim=10000000 should be an error message, not an out-of-memory kill.
MAX_PARAMETERS = 200_000_000
MAX_WIDTH = 100_000


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


@dataclass
class Corruption:
    """Noise applied to the input during training only (denoising autoencoders).

    gaussian: x + level·N(0, 1) (Vincent et al. 2008; seed 002's additive noise);
    salt_pepper: a fraction ``level`` of the values set to the data's min or max;
    mask: a fraction ``level`` of the values set to zero (masking noise).
    ``clip`` keeps corrupted values inside the data range, as the Keras blog's
    denoising example does with ``np.clip(x_noisy, 0, 1)``."""

    kind: Literal["none", "gaussian", "salt_pepper", "mask"] = "none"
    level: float = 0.0
    clip: bool = False

    def __post_init__(self):
        check_choice("corruption.kind", self.kind, ("none", "gaussian", "salt_pepper", "mask"))
        if not (0.0 <= self.level <= (10.0 if self.kind == "gaussian" else 1.0)):
            raise ConfigError(
                f"corruption level {self.level} is out of range for {self.kind!r} "
                "(gaussian: 0..10 times N(0,1); salt_pepper and mask: a fraction 0..1)."
            )

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.level > 0


def corrupt(x: Tensor, c: Corruption, lo: float, hi: float) -> Tensor:
    """Corrupt a batch; ``lo``/``hi`` are the data range in model space."""
    if not c.active:
        return x
    if c.kind == "gaussian":
        out = x + c.level * torch.randn_like(x)
    elif c.kind == "mask":
        out = x * (torch.rand_like(x) >= c.level).to(x.dtype)
    else:  # salt_pepper
        r = torch.rand_like(x)
        out = torch.where(r < c.level / 2, torch.full_like(x, lo), x)
        out = torch.where(r > 1 - c.level / 2, torch.full_like(x, hi), out)
    return out.clamp(lo, hi) if c.clip else out


@dataclass
class LossSpec:
    """How the reconstruction error is measured and reduced.

    reduction: "mean" averages over every element (Keras ``loss='mse'``);
    "sum" sums over an item's elements and averages over the batch (pytorch
    examples' VAE, in nats or squared units per item); "batch_sum" sums over the
    whole batch (seed 002's ``0.5·reduce_sum``). ``scale`` multiplies the term."""

    recon: Literal["mse", "bce"] = "mse"
    reduction: Literal["mean", "sum", "batch_sum"] = "mean"
    scale: float = 1.0

    def __post_init__(self):
        check_choice("loss.recon", self.recon, ("mse", "bce"))
        check_choice("loss.reduction", self.reduction, ("mean", "sum", "batch_sum"))
        if not (0 < self.scale < 1e6):
            raise ConfigError(f"loss scale must be positive, got {self.scale}.")


@dataclass
class Sparsity:
    """Penalties that make the code sparse.

    l1: weight of Σ|z| per item (Keras ``activity_regularizer=l1``, seed 003).
    kl: weight of Σ_j KL(ρ‖ρ̂_j), ρ̂_j the batch-mean activation of code unit j
    (Ng, "Sparse autoencoder" lecture notes; seed 002). Needs codes in (0, 1)."""

    l1: float = 0.0
    kl: float = 0.0
    rho: float = 0.05

    def __post_init__(self):
        if not (0 <= self.l1 <= 1e6) or not (0 <= self.kl <= 1e6):  # also refuses NaN
            raise ConfigError("sparsity weights must be numbers from 0 to 1e6.")
        if not (0 < self.rho < 1):
            raise ConfigError(f"sparsity target rho must be between 0 and 1, got {self.rho}.")


def check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")


def check_positive_int(name: str, value: Any, lo: int = 1, hi: int = MAX_WIDTH) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}; got {value!r}.")


@dataclass
class ModelConfig:
    """Base of the typed configs. ``kind`` is the registry key stored in
    config.json; ``input_shape`` is filled from the dataset when a preset is
    instantiated, which is how one preset adapts to every image size."""

    kind: ClassVar[str] = ""
    input_shape: tuple[int, ...] = (1, 28, 28)
    loss: LossSpec = field(default_factory=LossSpec)
    corruption: Corruption = field(default_factory=Corruption)
    sparsity: Sparsity = field(default_factory=Sparsity)

    def __post_init__(self):
        shape = tuple(self.input_shape)
        if not (1 <= len(shape) <= 3) or any(
            isinstance(s, bool) or not isinstance(s, int) or not (1 <= s <= 4096) for s in shape
        ):
            raise ConfigError(f"input_shape must be 1 to 3 positive sizes up to 4096; got {self.input_shape!r}.")
        self.input_shape = shape

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["kind"] = self.kind
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Rebuild from JSON, refusing unknown or ill-typed fields with a clear message."""
        if not isinstance(d, dict):
            raise ConfigError("a model config must be a JSON object.")
        d = {k: v for k, v in d.items() if k != "kind"}
        hints = get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown field(s) for {cls.kind!r}: {', '.join(sorted(unknown))}.")
        kwargs = {}
        for k, v in d.items():
            t = hints[k]
            if isinstance(t, type) and dataclasses.is_dataclass(t):
                if not isinstance(v, dict):
                    raise ConfigError(f"{k} must be an object.")
                try:
                    v = t(**v)
                except TypeError as e:
                    raise ConfigError(f"bad field in {k}: {e}.") from e
            elif get_origin(t) is tuple or t is tuple:
                if not isinstance(v, (list, tuple)):
                    raise ConfigError(f"{k} must be a list.")
                v = tuple(v)
            elif get_origin(t) is list or t is list:
                if not isinstance(v, list):
                    raise ConfigError(f"{k} must be a list.")
            kwargs[k] = v
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"bad {cls.kind} config: {e}.") from e

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class AEOutput:
    """What ``forward`` returns. ``loss`` is the optimised objective and equals
    the sum of ``terms`` (each already weighted); ``z`` is the code that
    ``embed`` would return (for a VAE its posterior mean, not the sample the
    decoder read)."""

    loss: Tensor
    recon: Tensor
    z: Tensor
    terms: dict[str, Tensor]
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Encoded:
    """The encoder's half of a training forward, the only part a family changes.

    ``code`` is what ``embed`` returns: the sparsity penalties act on it and
    ``AEOutput.z`` reports it. ``decoder_input`` is what the decoder reads
    (a VAE's reparameterised sample; the code itself otherwise). ``terms`` and
    ``extras`` are the family's own loss terms and outputs (a VAE's KL)."""

    code: Tensor
    decoder_input: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Base class: subclasses implement ``encode``/``decode`` and may extend ``forward``."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    is_variational: ClassVar[bool] = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # Data range in model space, set by the preprocessing so that clipping
        # corruption and salt-and-pepper know where "black" and "white" are.
        self.data_range: tuple[float, float] = (0.0, 1.0)
        # Every automatic change made to fit the data (padding, replaced layers)
        # is recorded here and saved with the model: nothing is adapted silently.
        self.adaptations: list[str] = []

    # --- the surface -------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """The code used for plots and features: (B, latent_dim)."""
        return self.encode(x).flatten(1)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def forward(self, x: Tensor, target: Tensor | None = None) -> AEOutput:
        # One forward for every family that reconstructs its input, so that an
        # option such as sparsity cannot apply to one family and be silently
        # skipped by another: families override ``encode_for_loss`` only.
        target = x if target is None else target
        x_in = corrupt(x, self.config.corruption, *self.data_range) if self.training else x
        enc = self.encode_for_loss(x_in)
        recon = self.decode(enc.decoder_input)
        terms = {"recon": self.recon_loss(recon, target), **enc.terms}
        terms.update(self.sparsity_terms(enc.code))
        return AEOutput(
            loss=sum(terms.values()), recon=recon, z=enc.code.flatten(1), terms=terms, extras=dict(enc.extras)
        )

    def encode_for_loss(self, x: Tensor) -> Encoded:
        """Encode a (possibly corrupted) batch for ``forward``."""
        z = self.encode(x)
        return Encoded(code=z, decoder_input=z)

    # --- loss pieces shared by the families --------------------------------
    def recon_loss(self, recon: Tensor, target: Tensor) -> Tensor:
        spec = self.config.loss
        if spec.recon == "bce":
            # BCE needs targets in [0, 1]; a [-1, 1] model is mapped back first.
            lo, hi = self.data_range
            t = (target - lo) / (hi - lo)
            r = ((recon - lo) / (hi - lo)).clamp(1e-7, 1 - 1e-7)
            err = F.binary_cross_entropy(r, t, reduction="none")
        else:
            err = (recon - target).pow(2)
        if spec.reduction == "mean":
            out = err.mean()
        elif spec.reduction == "sum":
            out = err.flatten(1).sum(1).mean()
        else:
            out = err.sum()
        return spec.scale * out

    def sparsity_terms(self, z: Tensor) -> dict[str, Tensor]:
        s = self.config.sparsity
        terms = {}
        z = z.flatten(1)
        if s.l1 > 0:
            terms["l1"] = s.l1 * z.abs().sum(1).mean()
        if s.kl > 0:
            rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)
            rho = s.rho
            kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
            terms["sparsity_kl"] = s.kl * kl.sum()
        return terms

    def first_layer_weight(self) -> Tensor | None:
        """(units, inputs) or conv (out, in, k, k): what the Weights view draws."""
        return None

    def describe(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"{type(self).__name__}: {n:,} parameters, code size {self.latent_dim}"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
