"""The two records a model carries besides its weights, one schema each.

- :class:`EpochRecord`: one line of a run's history. The trainer writes it, the
  store saves the list as ``history.json``, the Train page's live view and the
  Compare page read the same keys, so a curve drawn live and one drawn from disk
  are the same curve.
- :class:`ModelMeta`: what a saved model is (preset, dataset, splits, how it was
  trained). ``config.json`` holds it beside the model config; the dataset it
  names is reloaded with its ``seed`` and ``val_fraction`` so every page and
  ``python -m aecore eval`` see the model's own test split.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TypedDict

from aecore.errors import StoreError


class EpochRecord(TypedDict):
    epoch: int  # 1-based, counted over every run of the model (a resumed run continues)
    train_loss: float
    train_terms: dict[str, float]  # each loss term by name (recon, kl, l1, ...); they sum to train_loss
    val_loss: float | None  # None when there is no validation split
    val_terms: dict[str, float]
    images_per_s: float
    elapsed_s: float
    partial: bool  # the run was stopped during this epoch: it saw only part of the data


def epoch_record(
    epoch: int,
    train_terms: dict[str, float],
    val_loss: float | None,
    val_terms: dict[str, float],
    images_per_s: float,
    elapsed_s: float,
    partial: bool = False,
) -> EpochRecord:
    return EpochRecord(
        epoch=int(epoch),
        train_loss=float(sum(train_terms.values())),
        train_terms={str(k): float(v) for k, v in train_terms.items()},
        val_loss=None if val_loss is None else float(val_loss),
        val_terms={str(k): float(v) for k, v in val_terms.items()},
        images_per_s=float(images_per_s),
        elapsed_s=float(elapsed_s),
        partial=bool(partial),
    )


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def history_from_json(obj, model: str = "?") -> list[EpochRecord]:
    """A history read from disk, checked record by record. The store writes
    non-finite numbers as null, so a loss may come back as None."""
    if not isinstance(obj, list):
        raise StoreError(f"history.json of model {model!r} is not a list of epochs.")
    out = []
    for i, r in enumerate(obj):
        if not isinstance(r, dict) or not isinstance(r.get("epoch"), int):
            raise StoreError(f"history.json of model {model!r}: entry {i} is not an epoch record.")
        terms = {k: v for k, v in (r.get("train_terms") or {}).items() if _number(v)}
        vterms = {k: v for k, v in (r.get("val_terms") or {}).items() if _number(v)}
        loss = r.get("train_loss")
        val = r.get("val_loss")
        out.append(
            EpochRecord(
                epoch=r["epoch"],
                train_loss=float(loss) if _number(loss) else math.nan,
                train_terms=terms,
                val_loss=float(val) if _number(val) else None,
                val_terms=vterms,
                images_per_s=float(r["images_per_s"]) if _number(r.get("images_per_s")) else 0.0,
                elapsed_s=float(r["elapsed_s"]) if _number(r.get("elapsed_s")) else 0.0,
                partial=bool(r.get("partial", False)),
            )
        )
    return out


# Fields the store writes itself beside the metadata (config.json's other keys).
STORE_FIELDS = ("format", "model", "normalisation", "adaptations")


@dataclass
class ModelMeta:
    preset: str = ""  # the preset the model came from; "custom (vanilla)" for a design started from vanilla
    dataset: str = ""  # registry name or user-file spec (csv:PATH, ...)
    data_kind: str = "image"  # image, vector or sequence
    sample_shape: list[int] = field(default_factory=list)
    class_names: list[str] | None = None
    dark_background: bool | None = None  # light strokes on dark, like MNIST: uploads are inverted to match
    train: dict = field(default_factory=dict)  # the TrainConfig of the last run, as a dict
    seed: int = 0  # the RNG seed: weights, batches, and the splits of datasets drawn with it
    val_fraction: float | None = None  # of the training files held out for validation (None: the loader's)
    limit: int | None = None  # trained on the first N training items
    status: str | None = None  # how the last run ended (done, stopped, early_stopped, diverged)
    message: str | None = None
    trained_at: str | None = None
    world_size: int = 1
    name: str | None = None  # set by the store
    created: str | None = None  # set by the store
    extra: dict = field(default_factory=dict)  # keys this version does not know (kept, never dropped)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, d: dict, model: str = "?") -> ModelMeta:
        if not isinstance(d, dict):
            raise StoreError(f"the metadata of model {model!r} is not a JSON object.")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known and v is not None}
        extra = {k: v for k, v in d.items() if k not in known and k not in STORE_FIELDS}
        checks = {
            "preset": str,
            "dataset": str,
            "data_kind": str,
            "sample_shape": list,
            "class_names": list,
            "dark_background": bool,
            "train": dict,
            "seed": int,
            "limit": int,
            "world_size": int,
            "status": str,
            "message": str,
            "trained_at": str,
            "name": str,
            "created": str,
        }
        for k, tp in checks.items():
            if k in kw and (not isinstance(kw[k], tp) or (tp is int and isinstance(kw[k], bool))):
                raise StoreError(f"the metadata of model {model!r} has a {k} that is not a {tp.__name__}.")
        if "val_fraction" in kw and not (_number(kw["val_fraction"]) and 0 < kw["val_fraction"] < 1):
            raise StoreError(f"the metadata of model {model!r} has a val_fraction outside (0, 1).")
        return cls(**kw, extra=extra)


__all__ = ["EpochRecord", "ModelMeta", "epoch_record", "history_from_json"]
