"""What a user does, as functions: train a preset on a dataset, evaluate a
saved model against PCA. The CLI and the dashboard are thin layers over this.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from aecore.data import DATASETS, DataBundle, as_float, load_dataset
from aecore.errors import ConfigError
from aecore.explore import baselines, inference
from aecore.models import ModelConfig, build_model, config_from_dict
from aecore.models.trained import TrainedModel
from aecore.normalise import NORMALISATIONS, Normaliser
from aecore.presets import Preset, check_compatible, get_preset
from aecore.train import TrainConfig, Trainer, TrainResult, split_tensors
from aecore.train import evaluate as evaluate_loss


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
    name = request.dataset or p.dataset
    bundle = load_dataset(
        name, request.data_dir, seed=request.seed, download_missing=request.download, val_fraction=p.val_fraction
    )
    return bundle.limit(request.limit)


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
    meta = {
        "preset": request.preset if request.model is None else f"custom ({request.preset})",
        "dataset": bundle.name,
        "data_kind": bundle.kind,
        "sample_shape": list(bundle.sample_shape),
        "class_names": bundle.class_names,
        "dark_background": _dark_background(bundle),
        "train": train_cfg.to_dict(),
        "seed": request.seed,
        "limit": request.limit,
    }
    return bundle, TrainedModel(model, normaliser, meta), train_cfg


def _dark_background(bundle: DataBundle) -> bool | None:
    if bundle.kind != "image":
        return None
    from aecore.explore.uploads import dataset_has_dark_background

    return dataset_has_dark_background(bundle.train.x)


def train(
    request: TrainRequest,
    callbacks=(),
    stop_event: threading.Event | None = None,
    snapshot_every_s: float | None = None,
    resume: TrainedModel | None = None,
    evaluate_after: bool = True,
    snapshot_items: int = 500,
) -> tuple[TrainedModel, TrainResult, DataBundle]:
    """Train a preset (or a custom model) and evaluate it on the test split.

    With ``resume``, training continues from a saved model's weights, history
    and optimizer state on the dataset it was trained on."""
    if resume is not None:
        request = dataclasses.replace(request, dataset=request.dataset or resume.meta.get("dataset"))
        bundle = load_data(request)
        tm = resume
        if tuple(bundle.sample_shape) != tuple(tm.model.config.input_shape):
            raise ConfigError(
                f"cannot continue on {bundle.name}: its items have shape {bundle.sample_shape}, "
                f"the model takes {tm.model.config.input_shape}."
            )
        base = TrainConfig.from_dict(tm.meta.get("train", {})) if tm.meta.get("train") else request.train_config()
        train_cfg = dataclasses.replace(
            base,
            device=request.device,
            **{
                k: v
                for k, v in {"epochs": request.epochs, "batch_size": request.batch_size, "lr": request.lr}.items()
                if v is not None
            },
        )
        tm.model.train()
    else:
        bundle, tm, train_cfg = prepare(request)
    trainer = Trainer(train_cfg, callbacks, stop_event, snapshot_every_s, snapshot_items)
    result = trainer.fit(
        tm.model,
        bundle,
        tm.normaliser,
        history=tm.history,
        optimizer_state=tm.optimizer_state if resume is not None else None,
    )
    tm.history = result.history
    tm.optimizer_state = result.optimizer_state
    tm.meta["status"] = result.status
    tm.meta["message"] = result.message
    tm.meta["train"] = train_cfg.to_dict()
    tm.meta["trained_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tm.model.eval()
    metrics = {
        "status": result.status,
        "epochs": len(result.history),
        "images_per_s": result.images_per_s,
        "wall_s": result.wall_s,
        "final_train_loss": result.final_train_loss,
        "final_val_loss": result.final_val_loss,
        "best_epoch": result.best_epoch,
    }
    if evaluate_after and result.epochs_run > 0 and result.status != "failed":
        metrics.update(evaluate(tm, bundle))
    tm.metrics = metrics
    return tm, result, bundle


def evaluate(tm: TrainedModel, bundle: DataBundle, split: str = "test", pca_items: int = 20000) -> dict:
    """Test metrics of a model with PCA at the same code size fitted in the same call."""
    model = tm.model
    device = next(model.parameters()).device
    s = getattr(bundle, split)
    batch = int(tm.meta.get("train", {}).get("batch_size", 1024))
    x, t = split_tensors(bundle, split, tm.normaliser, device)
    batch_sum = getattr(model.config, "loss", None) is not None and model.config.loss.reduction == "batch_sum"
    loss, terms = evaluate_loss(model, x, t, batch if batch_sum else max(batch, 1024))
    out = {"split": split, "n_items": len(s), "test_loss": loss, "test_terms": terms, "latent_dim": model.latent_dim}
    if bundle.kind == "sequence":
        out.update(inference.sequence_accuracy(tm, s.x, s.target))
        return out
    errors = inference.per_item_errors(tm, s.x)
    mse = float(errors.mean())
    pca = baselines.pca_fit(as_float(bundle.train.x, bundle), model.latent_dim, max_items=pca_items)
    pca_mse = float(baselines.pca_errors(pca, as_float(s.x, bundle)).mean())
    dim = int(np.prod(bundle.sample_shape))
    out.update(
        {
            "test_mse": mse,
            "pca_test_mse": pca_mse,
            "psnr_db": baselines.psnr(mse),
            "pca_psnr_db": baselines.psnr(pca_mse),
            "pca_components": int(pca.components.shape[0]),
            "test_sse_per_item": mse * dim,
            "pca_sse_per_item": pca_mse * dim,
            "compression_ratio": baselines.compression_ratio(bundle.sample_shape, model.latent_dim),
        }
    )
    if model.config.loss.reduction == "batch_sum" and model.config.loss.scale == 0.5:
        # Seed 002 reports 0.5 * sum of squared error in standardised units, over the whole test set.
        with torch.inference_mode():
            rec = torch.cat([model.reconstruct(x[i : i + 4096]) for i in range(0, len(x), 4096)])
        half = 0.5 * (rec - x).pow(2).flatten(1).sum(1)
        out["seed_cost_per_item"] = float(half.mean())
        out["seed_total_cost"] = float(half.sum())
    return out


def resume_request(
    tm: TrainedModel, epochs: int, lr: float | None = None, device: str = "auto", data_dir: str | None = None
) -> TrainRequest:
    """The request that continues a saved model for ``epochs`` more epochs on its own dataset."""
    preset = str(tm.meta.get("preset") or "")
    if preset.startswith("custom (") and preset.endswith(")"):
        preset = preset[len("custom (") : -1]  # a custom model keeps the preset it started from
    get_preset(preset)  # a clear error for a model from an unknown preset
    return TrainRequest(
        preset=preset,
        dataset=tm.meta.get("dataset"),
        epochs=epochs,
        lr=lr,
        device=device,
        seed=int(tm.meta.get("seed", 0)),
        data_dir=data_dir,
        limit=tm.meta.get("limit"),
    )


def dataset_names() -> list[str]:
    return list(DATASETS)
