"""What a user asks for before pressing Train, checked before anything trains.

A :class:`TrainRequest` names a preset (or a design started from one), a dataset
and any hyper-parameters that differ from the preset's. :func:`prepare` turns it
into an untrained model and its data; :func:`resume_config` says how a saved model
continues (each changed option honoured or refused with a reason);
:func:`model_data` reloads the data a saved model was trained on with the same
splits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from aecore.data import DataBundle, as_float, load_dataset
from aecore.errors import ConfigError
from aecore.models import ModelConfig, build_model, config_from_dict
from aecore.models.trained import TrainedModel
from aecore.normalise import NORMALISATIONS, Normaliser
from aecore.presets import Preset, check_compatible, get_preset
from aecore.records import ModelMeta
from aecore.train import TrainConfig


@dataclass
class TrainRequest:
    """Everything a user chooses before pressing Train. ``None`` keeps the preset's value."""

    preset: str
    dataset: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    latent_dim: int | None = None
    optimizer: str | None = None
    precision: str | None = None
    early_stopping_patience: int | None = None
    limit: int | None = None
    device: str = "auto"
    seed: int = 0
    data_dir: str | None = None
    download: bool = False
    # A user-designed model: a config dict with a ``kind`` (see aecore.models.MODELS);
    # its input_shape is filled from the dataset.
    model: dict | None = None
    normalisation: str | None = None
    train_overrides: dict = field(default_factory=dict)

    def preset_obj(self) -> Preset:
        return get_preset(self.preset)

    def train_config(self) -> TrainConfig:
        p = self.preset_obj()
        changes = {
            k: v
            for k, v in {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "lr": self.lr,
                "optimizer": self.optimizer,
                "precision": self.precision,
                "early_stopping_patience": self.early_stopping_patience,
            }.items()
            if v is not None
        }
        changes.update(self.train_overrides)
        try:
            return dataclasses.replace(p.train, device=self.device, seed=self.seed, **changes)
        except TypeError as e:
            raise ConfigError(f"unknown training option: {e}.") from e


def load_data(request: TrainRequest) -> DataBundle:
    p = request.preset_obj()
    bundle = _load(request.dataset or p.dataset, request.data_dir, request.seed, p.val_fraction, request.download)
    return bundle.limit(request.limit)


def _load(name: str, data_dir, seed: int, val_fraction: float | None, download: bool = False) -> DataBundle:
    # The one place a dataset is loaded for a model: training, resuming, `eval`,
    # `score` and every explore page come through here, so they share the splits.
    return load_dataset(name, data_dir, seed=seed, download_missing=download, val_fraction=val_fraction)


def model_data(tm: TrainedModel, data_dir: str | None = None, dataset: str | None = None) -> DataBundle:
    """The dataset a model was trained on, split as it was split then (its seed and
    validation fraction), so that its test split is the one ``eval`` scores.

    ``dataset`` scores the model on another dataset of the same item shape; its
    splits are drawn with the model's seed too."""
    meta = tm.meta
    name = dataset or meta.dataset
    if not name:
        raise ConfigError(f"model {tm.name!r} does not record its dataset; name one.")
    bundle = _load(name, data_dir, meta.seed, meta.val_fraction if name == meta.dataset else None)
    shape = tuple(tm.model.config.input_shape)
    if tuple(bundle.sample_shape) != shape:
        raise ConfigError(f"model {tm.name!r} takes items of shape {shape}, but {name} has {bundle.sample_shape}.")
    return bundle


def model_config_for(request: TrainRequest, bundle: DataBundle) -> ModelConfig:
    p = request.preset_obj()
    if request.model is not None:
        d = {**request.model, "input_shape": list(bundle.sample_shape)}
        cfg = config_from_dict(d)
        if request.latent_dim is not None:
            cfg = dataclasses.replace(cfg, latent_dim=request.latent_dim)
    else:
        check_compatible(p, bundle.kind, bundle.name)
        cfg = p.model_config(bundle.sample_shape, request.latent_dim)
    if bundle.kind == "sequence" and cfg.kind != "seq2seq" or bundle.kind != "sequence" and cfg.kind == "seq2seq":
        raise ConfigError(f"a {cfg.kind} model cannot train on {bundle.kind} data ({bundle.name}).")
    if cfg.kind == "seq2seq":
        cfg = dataclasses.replace(
            cfg,
            vocab=int(bundle.info.get("vocab", cfg.vocab)),
            output_len=int(bundle.info.get("output_len", cfg.output_len)),
        )
    return cfg


def prepare(request: TrainRequest) -> tuple[DataBundle, TrainedModel, TrainConfig]:
    """Validate every choice and build the untrained model, before any training starts."""
    train_cfg = request.train_config()
    bundle = load_data(request)
    cfg = model_config_for(request, bundle)
    kind = request.normalisation or request.preset_obj().normalisation
    if kind not in NORMALISATIONS:
        raise ConfigError(f"normalisation must be one of {', '.join(NORMALISATIONS)}; got {kind!r}.")
    if bundle.kind == "sequence":
        kind = "unit"
    normaliser = Normaliser.fit(kind, as_float(bundle.train.x, bundle)) if kind == "standardize" else Normaliser(kind)
    torch.manual_seed(request.seed)  # the initial weights belong to the seed too
    model = build_model(cfg)
    meta = ModelMeta(
        preset=request.preset if request.model is None else f"custom ({request.preset})",
        dataset=bundle.name,
        data_kind=bundle.kind,
        sample_shape=list(bundle.sample_shape),
        class_names=bundle.class_names,
        dark_background=_dark_background(bundle),
        train=train_cfg.to_dict(),
        seed=request.seed,
        val_fraction=request.preset_obj().val_fraction,
        limit=request.limit,
    )
    return bundle, TrainedModel(model, normaliser, meta), train_cfg


def _dark_background(bundle: DataBundle) -> bool | None:
    if bundle.kind != "image":
        return None
    from aecore.explore.uploads import dataset_has_dark_background

    return dataset_has_dark_background(bundle.train.x)


# Options a resumed run takes from the request when they are given (None: as before).
RESUMABLE = ("epochs", "batch_size", "lr", "optimizer", "precision", "early_stopping_patience")


def resume_config(request: TrainRequest, tm: TrainedModel) -> tuple[TrainConfig, list[str]]:
    """The training options of a run that continues ``tm``, and one sentence per
    option the request changes. What cannot change on a trained model (its
    architecture, code size, normalisation, or the seed that drew its splits) is
    refused with the reason."""
    name = tm.name or "this model"
    if request.model is not None:
        raise ConfigError(f"cannot continue {name} with another architecture: train a new model instead.")
    if request.latent_dim is not None and request.latent_dim != tm.model.latent_dim:
        raise ConfigError(
            f"cannot continue {name} with code size {request.latent_dim}: its code has {tm.model.latent_dim} "
            "values and the weights fit that size. Train a new model for another code size."
        )
    if request.normalisation is not None and request.normalisation != tm.normaliser.kind:
        raise ConfigError(
            f"cannot continue {name} with normalisation {request.normalisation}: it was trained on "
            f"{tm.normaliser.kind} inputs."
        )
    if request.seed != tm.meta.seed:
        raise ConfigError(
            f"cannot continue {name} with seed {request.seed}: it was trained with seed {tm.meta.seed}, which drew "
            "its validation and test splits; another seed would train on its test items."
        )
    base = TrainConfig.from_dict(tm.meta.train) if tm.meta.train else request.train_config()
    given = {k: getattr(request, k) for k in RESUMABLE if getattr(request, k) is not None}
    given.update(request.train_overrides)
    notes = []
    for k, v in given.items():
        if k not in TrainConfig.__dataclass_fields__:
            raise ConfigError(f"unknown training option: {k}.")
        before = getattr(base, k)
        if k != "epochs" and v != before:
            notes.append(f"{k.replace('_', ' ')}: {before} -> {v}")
    if "optimizer" in given and given["optimizer"] != base.optimizer:
        notes.append(
            f"the {given['optimizer']} optimizer starts with a fresh state (the saved one is {base.optimizer}'s)"
        )
    cfg = dataclasses.replace(base, device=request.device, seed=tm.meta.seed, **given)
    return cfg, notes


def resume_request(
    tm: TrainedModel, epochs: int, lr: float | None = None, device: str = "auto", data_dir: str | None = None
) -> TrainRequest:
    """The request that continues a saved model for ``epochs`` more epochs on its own dataset."""
    preset = tm.meta.preset
    if preset.startswith("custom (") and preset.endswith(")"):
        preset = preset[len("custom (") : -1]  # a custom model keeps the preset it started from
    get_preset(preset)  # a clear error for a model from an unknown preset
    return TrainRequest(
        preset=preset,
        dataset=tm.meta.dataset,
        epochs=epochs,
        lr=lr,
        device=device,
        seed=tm.meta.seed,
        data_dir=data_dir,
        limit=tm.meta.limit,
    )
