"""The Train page's form fields generated from the typed configs (aecore.forms):
one widget per engine option, without UI code per option."""

from __future__ import annotations

import streamlit as st

from aecore.device import describe_device, device_choices
from aecore.errors import ConfigError
from aecore.forms import FieldSpec, choices, model_fields, parse_int_list, unflatten
from aecore.models import MODELS, config_from_dict, parameter_count
from aecore.train import TrainConfig


def field_widget(f: FieldSpec, key: str):
    """One form widget per engine option; the value comes back in the config's types."""
    label = f.name.replace(".", " · ").replace("_", " ")
    if f.type == "choice":
        return st.selectbox(label, f.choices, index=list(f.choices).index(f.default), key=key, help=f.help or None)
    if f.type == "bool":
        return st.checkbox(label, value=bool(f.default), key=key, help=f.help or None)
    if f.type == "int":
        return int(st.number_input(label, value=int(f.default), step=1, key=key, help=f.help or None))
    if f.type == "float":
        return float(st.number_input(label, value=float(f.default), format="%g", key=key, help=f.help or None))
    if f.type in ("optional_int", "optional_float"):
        text = st.text_input(
            label,
            "" if f.default is None else str(f.default),
            key=key,
            help=(f.help + " " if f.help else "") + "(empty: none)",
        )
        if not text.strip():
            return None
        try:
            return int(text) if f.type == "optional_int" else float(text)
        except ValueError:
            raise ConfigError(f"{label} must be a number or empty; got {text!r}.") from None
    if f.type == "int_list":
        default = "" if f.default is None else ", ".join(map(str, f.default))
        text = st.text_input(label, default, key=key, help=f.help or None)
        if not text.strip() and "optional" in f.choices:
            return None
        return parse_int_list(text, label)
    if f.type == "choice_list":
        return st.multiselect(label, f.choices, default=list(f.default), key=key, help=f.help or None)
    raise ConfigError(f"no widget for {f.name}")


def family_choices(data_kind: str) -> list[str]:
    """Model families that can train on this kind of data (sequence models only on sequences)."""
    return [k for k in MODELS if (k == "seq2seq") == (data_kind == "sequence")]


def design_fields(
    kind: str, start_cfg, key: str, sample_shape, latent: int | None
) -> tuple[dict | None, Exception | None]:
    """Every option of a ``kind`` model, starting from ``start_cfg``: (the config dict, None),
    or (None, the first mistake) -- every field is drawn either way, so the form stays whole."""
    values, errors = {}, []
    for f in model_fields(kind, start_cfg):
        if f.name != "latent_dim":  # set by the form's "Code size"
            try:
                values[f.name] = field_widget(f, f"{key}_{f.name}")
            except ConfigError as e:  # every field stays on screen; the first mistake is reported
                errors.append(e)
    custom = {"kind": kind, **unflatten(values), "input_shape": list(sample_shape)}
    if latent is not None:
        custom["latent_dim"] = latent  # set by the form's "Code size"
    if errors:
        return None, errors[0]
    st.caption(f"{parameter_count(config_from_dict(custom)):,} parameters")
    return custom, None


def choice(label: str, options: list, default, key: str, where=st, **kw):
    """A selectbox that starts at ``default`` (the first option when it is not offered)."""
    return where.selectbox(label, options, index=options.index(default) if default in options else 0, key=key, **kw)


def hyper_parameters(t: TrainConfig, latent_default: int | None, latent_key: str) -> dict:
    """The common hyper-parameters, starting at the preset's ``t``, as TrainRequest fields."""
    c1, c2 = st.columns(2)
    out = {
        "epochs": int(c1.number_input("Epochs", 1, 10_000, t.epochs, key="tr_epochs")),
        "batch_size": int(c2.number_input("Batch size", 1, 100_000, t.batch_size, key="tr_batch")),
        "lr": float(c1.number_input("Learning rate", 1e-6, 10.0, float(t.lr), format="%g", key="tr_lr")),
        "optimizer": choice("Optimizer", choices(TrainConfig, "optimizer"), t.optimizer, "tr_opt", where=c2),
        "latent_dim": None,
    }
    if latent_default is not None:
        out["latent_dim"] = int(c1.number_input("Code size", 1, 4096, int(latent_default), key=latent_key))
    help_ = "Train on the first N items only, for a quick try."
    out["limit"] = int(c2.number_input("Training items (0: all)", 0, 10_000_000, 0, key="tr_limit", help=help_)) or None
    return out


def more_options(t: TrainConfig) -> dict:
    """The less common training options, starting at the preset's ``t``, as TrainRequest fields."""
    with st.expander("More training options"):
        d1, d2 = st.columns(2)
        patience = int(
            d1.number_input(
                "Early stopping patience (0: off)", 0, 1000, t.early_stopping_patience or 0, key="tr_patience"
            )
        )
        schedule = choice("LR schedule", choices(TrainConfig, "lr_schedule"), t.lr_schedule, "tr_schedule", where=d2)
        wd = float(d1.number_input("Weight decay", 0.0, 10.0, float(t.weight_decay), format="%g", key="tr_wd"))
        precision = choice(
            "Precision",
            choices(TrainConfig, "precision"),
            "fp32",
            "tr_precision",
            where=d2,
            help="bf16 is refused with a reason where the hardware lacks fast bf16.",
        )
        device = choice("Device", device_choices(), "auto", "tr_device", where=d1, help=describe_device())
        seed = int(d2.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed"))
    return {
        "early_stopping_patience": patience or None,
        "precision": precision,
        "device": device,
        "seed": seed,
        "train_overrides": {"lr_schedule": schedule, "weight_decay": wd},
    }
