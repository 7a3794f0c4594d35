"""What the model and dataset pickers of every page offer: saved models by the
kind of data they read, a one-line caption of a model, the datasets present."""

from __future__ import annotations

from aecore.data import DATASETS
from aecore.models.trained import TrainedModel
from aecore.store import ModelInfo, ModelStore

# The command that trains a first model of each kind, for a store that has none.
FIRST_MODEL = {"sequence": "--preset seq2seq-lstm", "vector": "--preset manifold-1d --dataset helix3d"}


def data_kind(info: ModelInfo) -> str:
    """image, vector or sequence; models saved before the kind was recorded take their dataset's."""
    if info.data_kind:
        return info.data_kind
    spec = DATASETS.get(info.dataset or "")
    return spec.kind if spec is not None else "image"


def model_names(store: ModelStore, kinds: tuple[str, ...] | None = None) -> list[str]:
    """Loadable saved models that read one of ``kinds`` (all when None), newest first:
    a new user's last trained model is the one a picker should open on."""
    infos = [i for i in store.list() if i.ok and (kinds is None or data_kind(i) in kinds)]
    # The weights' write time, not config.json's "created" (whole seconds): two quick runs still order.
    return [i.name for i in sorted(infos, key=lambda i: store.weights_stamp(i.name), reverse=True)]


def no_model_hint(kinds: tuple[str, ...] | None = None) -> str:
    what = f" of {' or '.join(kinds)} data" if kinds else ""
    example = FIRST_MODEL.get(kinds[0] if kinds and len(kinds) == 1 else "", "--preset vanilla --dataset digits")
    return (
        f"No saved model{what} yet. Train one on the Train page first "
        f"(or from the command line: `python -m aecore train {example}`)."
    )


def model_caption(tm: TrainedModel) -> str:
    """preset · dataset · family · code size · epochs · test MSE, for under a picker."""
    parts = [
        f"preset {tm.meta.preset or '?'}",
        f"dataset {tm.meta.dataset or '?'}",
        tm.model.config.kind,
        f"code size {tm.model.latent_dim}",
        f"{len(tm.history)} epoch(s)",
    ]
    if tm.metrics.get("test_mse") is not None:
        parts.append(f"test MSE {tm.metrics['test_mse']:.4f}")
    return " · ".join(parts)


def available_datasets(data_dir: str | None = None, kind: str | None = None) -> list[str]:
    """Registered datasets whose files are present (built-ins always are)."""
    return [n for n, d in DATASETS.items() if d.available(data_dir) and (kind is None or d.kind == kind)]
