"""The options of a typed config as a flat list of fields, for building forms.

A form in the dashboard (or any other UI) is generated from the dataclasses
themselves, so every option the engine has is offered and a new option appears
without UI work. Nested configs (loss, corruption, sparsity) are flattened to
dotted names ("loss.recon") and folded back by :func:`unflatten`.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from aecore.errors import ConfigError
from aecore.models import MODELS, ModelConfig
from aecore.models.base import ACTIVATIONS
from aecore.train import TrainConfig

# Fields named like this take an activation name (strings in the dataclasses).
_ACTIVATION_FIELDS = {"activation", "code_activation", "output_activation"}
# Filled in from the data, never by hand.
_HIDDEN = {"input_shape", "vocab", "output_len", "device"}


@dataclass(frozen=True)
class FieldSpec:
    name: str  # dotted for nested configs: "loss.recon"
    type: Literal["int", "float", "bool", "choice", "int_list", "choice_list", "optional_int", "optional_float"]
    default: Any
    choices: tuple = ()
    help: str = ""


def _describe(name: str, tp, default, help: str) -> FieldSpec:
    origin, args = get_origin(tp), get_args(tp)
    leaf = name.rsplit(".", 1)[-1]
    if origin is Literal:
        return FieldSpec(name, "choice", default, tuple(args), help)
    if tp is bool:
        return FieldSpec(name, "bool", default, (), help)
    if tp is int:
        return FieldSpec(name, "int", default, (), help)
    if tp is float:
        return FieldSpec(name, "float", default, (), help)
    if tp is str and leaf in _ACTIVATION_FIELDS:
        return FieldSpec(name, "choice", default, tuple(ACTIVATIONS), help)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if inner == [int]:
            return FieldSpec(name, "optional_int", default, (), help)
        if inner == [float]:
            return FieldSpec(name, "optional_float", default, (), help)
        if len(inner) == 1 and get_origin(inner[0]) is list:
            return FieldSpec(name, "int_list", default, ("optional",), help)
    if origin is list:
        (item,) = args
        if item is int:
            return FieldSpec(name, "int_list", default, (), help)
        if item is str:
            return FieldSpec(name, "choice_list", default, tuple(ACTIVATIONS), help)
    raise TypeError(f"no form field for {name}: {tp!r}")


_HELP = {
    "hidden": "widths of the encoder's hidden layers, input side first; the decoder mirrors them",
    "latent_dim": "the code size (bottleneck)",
    "activations": "one activation per hidden layer, or one for all",
    "tied": "the decoder uses the transposed encoder weights",
    "channels": "convolution channels per encoder block",
    "decoder_channels": "decoder channels per block (empty: mirror the encoder)",
    "valid_layer": "index of a block whose convolution uses 'valid' padding (Keras blog's 16x16 -> 14x14 trick)",
    "beta": "weight of the KL term (beta-VAE); 1 is the standard VAE",
    "loss.recon": "reconstruction error: squared error or binary cross-entropy",
    "loss.reduction": "mean over elements, sum per item, or sum over the batch",
    "corruption.kind": "noise added to the input during training only (denoising)",
    "corruption.level": "gaussian: std; salt_pepper and mask: the fraction corrupted",
    "corruption.clip": "keep noisy inputs inside the data range",
    "sparsity.l1": "weight of the L1 penalty on the code",
    "sparsity.kl": "weight of the KL sparsity penalty (needs codes in (0, 1), e.g. sigmoid)",
    "sparsity.rho": "target mean activation for the KL penalty",
    "lr": "learning rate",
    "early_stopping_patience": "stop after this many epochs without a better validation loss (empty: off)",
    "precision": "bf16 is opt-in and refused where the CPU or GPU has no fast bf16",
}


def fields_of(cls: type, prefix: str = "", instance: Any = None) -> list[FieldSpec]:
    """Every user-settable field of a config dataclass (nested ones flattened),
    with defaults from ``instance`` when given."""
    hints = get_type_hints(cls)
    out: list[FieldSpec] = []
    nested: list[FieldSpec] = []  # after the model's own fields: loss, corruption, sparsity
    for f in dataclasses.fields(cls):
        if f.name in _HIDDEN:
            continue
        tp = hints[f.name]
        value = (
            getattr(instance, f.name)
            if instance is not None
            else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        )  # type: ignore[misc]
        name = prefix + f.name
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            nested += fields_of(tp, name + ".", value)
            continue
        out.append(_describe(name, tp, value, _HELP.get(name, _HELP.get(f.name, ""))))
    return out + nested


def model_fields(kind: str, instance: ModelConfig | None = None) -> list[FieldSpec]:
    if kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r}; known kinds: {', '.join(MODELS)}.")
    return fields_of(MODELS[kind].config_class, instance=instance)


def choices(cls: type, name: str) -> list[str]:
    """The values a ``Literal`` field of a config allows, e.g. ``choices(TrainConfig, "optimizer")``:
    the form and the CLI offer what the config validates, never a list typed twice."""
    tp = get_type_hints(cls)[name]
    if get_origin(tp) is not Literal:
        raise ConfigError(f"{cls.__name__}.{name} is not a choice of words.")
    return list(get_args(tp))


def train_fields(instance: TrainConfig | None = None) -> list[FieldSpec]:
    return fields_of(TrainConfig, instance=instance)


def unflatten(values: dict[str, Any]) -> dict:
    """{"loss.recon": "bce", "latent_dim": 2} -> {"loss": {"recon": "bce"}, "latent_dim": 2}."""
    out: dict = {}
    for k, v in values.items():
        node = out
        *parents, leaf = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def parse_int_list(text: str, name: str, allow_empty: bool = True) -> list[int]:
    """ "128, 64" -> [128, 64], with a message a person can act on."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{name} must be whole numbers separated by commas, e.g. 128, 64; got {text!r}.") from None
    if not values and not allow_empty:
        raise ConfigError(f"{name} needs at least one number.")
    return values


__all__ = ["FieldSpec", "fields_of", "model_fields", "train_fields", "unflatten", "parse_int_list"]
