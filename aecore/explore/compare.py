"""The Compare page's engine: what each model's loss measures, its loss curves,
and one row of test metrics per model beside PCA at the same code size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aecore.data import DataBundle
from aecore.models.trained import TrainedModel
from aecore.runs.request import model_data
from aecore.store import ModelInfo

# printf formats of the table's numeric columns; "percent" is Streamlit's name for a fraction shown as %.
COLUMN_FORMATS = {
    "test MSE": "%.5f",
    "PCA MSE": "%.5f",
    "PSNR (dB)": "%.2f",
    "AE / PCA": "%.3f",
    "images/s": "%.0f",
    "wall time (s)": "%.1f",
    "sequence accuracy": "percent",
    "token accuracy": "percent",
    "seed cost / item": "%.2f",
    "seed total cost": "%.4g",
}


@dataclass(frozen=True)
class Curve:
    model: str
    split: str  # "train" or "validation"
    epochs: list[int]
    loss: list[float | None]  # None for an epoch without a validation loss


def is_sequence(tm: TrainedModel) -> bool:
    return tm.data_kind == "sequence"


def loss_kind(tm: TrainedModel) -> str:
    """The objective in words: curves of different objectives are not on one scale."""
    cfg = tm.model.config
    if cfg.kind == "seq2seq":
        return "cross-entropy"
    text = f"{cfg.loss.recon.upper()} ({cfg.loss.reduction}{'' if cfg.loss.scale == 1 else f' ×{cfg.loss.scale:g}'})"
    extras = [
        n
        for n, on in (
            ("KL", tm.model.is_variational),
            ("L1", cfg.sparsity.l1 > 0),
            ("sparsity KL", cfg.sparsity.kl > 0),
        )
        if on
    ]
    return " + ".join([text, *extras])


def differences(models: Mapping[str, TrainedModel], infos: Mapping[str, ModelInfo]) -> list[str]:
    """What keeps the models' losses off one scale, e.g. ["datasets (digits, line2d)"]; empty when nothing."""
    datasets = sorted({str(infos[n].dataset) for n in models})
    objectives = sorted({loss_kind(tm) for tm in models.values()})
    return ([f"datasets ({', '.join(datasets)})"] if len(datasets) > 1 else []) + (
        [f"loss functions ({'; '.join(objectives)})"] if len(objectives) > 1 else []
    )


def loss_curves(models: Mapping[str, TrainedModel]) -> list[Curve]:
    """Each model's training curve, followed by its validation curve when it had a validation split."""
    out = []
    for name, tm in models.items():
        h = tm.history
        epochs = [r["epoch"] for r in h]
        out.append(Curve(name, "train", epochs, [r["train_loss"] for r in h]))
        if any(r.get("val_loss") is not None for r in h):
            out.append(Curve(name, "validation", epochs, [r.get("val_loss") for r in h]))
    return out


def unevaluated(models: Mapping[str, TrainedModel], metrics: Mapping[str, dict]) -> list[str]:
    """Models without their test score yet (trained without the final evaluation)."""
    # Sequence models are scored by accuracy; the rest by test MSE.
    return [
        n for n, tm in models.items() if metrics[n].get("sequence_accuracy" if is_sequence(tm) else "test_mse") is None
    ]


def evaluation_bundle(tm: TrainedModel, data_dir: str | None = None) -> DataBundle:
    """The model's dataset split as it was trained (its seed and validation fraction):
    the test split ``python -m aecore eval`` scores, so stored metrics stay comparable."""
    return model_data(tm, data_dir)


def table_rows(
    models: Mapping[str, TrainedModel], infos: Mapping[str, ModelInfo], metrics: Mapping[str, dict]
) -> list[dict]:
    """One row per model, in the models' order; None where a metric is missing.

    Accuracy columns appear when a sequence model is among them, the seed's own
    cost columns when any model recorded one, so every row has the same keys."""
    sequences = any(is_sequence(t) for t in models.values())
    seed_cost = any(metrics[n].get("source_cost_per_item") is not None for n in models)
    rows = []
    for name, tm in models.items():
        m = metrics[name]
        mse, pca = m.get("test_mse"), m.get("pca_test_mse")
        row = {
            "model": name,
            "preset": infos[name].preset,
            "dataset": infos[name].dataset,
            "code size": tm.model.latent_dim,
            "epochs": m.get("epochs", len(tm.history)),
            "test MSE": mse,
            "PSNR (dB)": m.get("psnr_db"),
            "PCA MSE": pca,
            # PCA with as many components as values per item is exact (error ~1e-30): no ratio then.
            "AE / PCA": mse / pca if mse is not None and pca is not None and pca > 1e-9 else None,
            "images/s": m.get("images_per_s"),
            "wall time (s)": m.get("wall_s"),
        }
        if sequences:
            row |= {"sequence accuracy": m.get("sequence_accuracy"), "token accuracy": m.get("token_accuracy")}
        if seed_cost:
            row |= {"seed cost / item": m.get("source_cost_per_item"), "seed total cost": m.get("source_total_cost")}
        rows.append(row)
    return rows


__all__ = [
    "COLUMN_FORMATS",
    "Curve",
    "differences",
    "evaluation_bundle",
    "is_sequence",
    "loss_curves",
    "loss_kind",
    "table_rows",
    "unevaluated",
]
