"""Form fields generated from the typed configs cover every option and fold back into valid configs."""

from __future__ import annotations

import dataclasses

import pytest

from aecore.errors import ConfigError
from aecore.forms import model_fields, parse_int_list, train_fields, unflatten
from aecore.models import MODELS, config_from_dict
from aecore.presets import PRESETS
from aecore.train import TrainConfig


def _leaf_names(cls, prefix=""):
    out = set()
    for f in dataclasses.fields(cls):
        t = f.type if isinstance(f.type, type) else None
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(value):
            out |= _leaf_names(type(value), prefix + f.name + ".")
        elif f.name not in ("input_shape", "vocab", "output_len", "device"):
            out.add(prefix + f.name)
        del t
    return out


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_option_of_every_model_has_a_field(kind):
    names = {f.name for f in model_fields(kind)}
    assert names == _leaf_names(MODELS[kind].config_class)
    assert {"loss.recon", "corruption.kind", "sparsity.kl"} <= names


@pytest.mark.parametrize("preset", [p for p in PRESETS if PRESETS[p].dataset != "reverse-seq"])
def test_a_presets_fields_fold_back_into_the_same_config(preset):
    cfg = PRESETS[preset].model_config((1, 28, 28) if "image" in PRESETS[preset].accepts else (3,))
    values = {f.name: f.default for f in model_fields(cfg.kind, cfg)}
    again = config_from_dict({"kind": cfg.kind, **unflatten(values), "input_shape": list(cfg.input_shape)})
    assert again == cfg


def test_training_fields_cover_the_train_config():
    names = {f.name for f in train_fields()}
    assert names == {f.name for f in dataclasses.fields(TrainConfig)} - {"device"}
    choices = {f.name: f.choices for f in train_fields()}
    assert set(choices["optimizer"]) == {"adam", "adamw", "sgd"}


def test_int_lists_parse_and_explain():
    assert parse_int_list("128, 64 32", "hidden") == [128, 64, 32]
    assert parse_int_list("", "hidden") == []
    with pytest.raises(ConfigError, match="whole numbers"):
        parse_int_list("128, abc", "hidden")
    with pytest.raises(ConfigError, match="at least one"):
        parse_int_list(" ", "channels", allow_empty=False)


def test_unflatten_nests_dotted_names():
    assert unflatten({"a": 1, "loss.recon": "bce", "loss.scale": 2.0}) == {
        "a": 1,
        "loss": {"recon": "bce", "scale": 2.0},
    }
