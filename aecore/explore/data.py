"""The Data page's engine side: what a dataset holds, random samples of it, and
the manifold demo's arrays. Everything here returns plain numbers, strings and
arrays; drawing them is the page's job."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aecore.data import DATASETS, RAW_FILES, as_float, resolve_data_dir
from aecore.data.base import DataBundle, Split
from aecore.errors import ConfigError
from aecore.explore.manifold import error_segments, learned_manifold, order_agreement
from aecore.explore.sequences import format_tokens
from aecore.models.trained import TrainedModel

SPLITS = ("train", "val", "test")
DEMO_PRESET, DEMO_EPOCHS = "manifold-1d", 200
ALL_CLASSES = "all classes"

MANIFOLD_INTRO = (
    "Each point is given in {dim} numbers, but one number, its position along the curve, says "
    "everything. An autoencoder with a 1-D code must find that number (its *code*); its decoder "
    "turns every code value back into a point, so the decoder **is** a curve."
)
MANIFOLD_LEGEND = (
    "White: every point's reconstruction, joined in order of its code; they all lie on the learned "
    "curve. A code that describes the data runs smoothly from one end to the other (colours change "
    "steadily along the curve) and the white curve passes through the data. Where the code folds, the "
    "white curve cuts across (between the helix's turns, say) and the order agreement drops."
)
ORDER_AGREEMENT_HELP = (
    "|Spearman rank correlation| of the code with the true position along the curve: 1.00 when "
    "the code runs along the curve in one direction, lower where it folds back."
)


def dataset_label(name: str, data_dir) -> str:
    spec = DATASETS[name]
    return f"{name}: {spec.description}" + ("" if spec.available(data_dir) else "  ⛔ not available")


def missing_help(name: str, data_dir) -> tuple[str, str]:
    """(warning, how-to markdown) for a dataset whose raw files are not there yet."""
    spec = DATASETS[name]
    root = resolve_data_dir(data_dir).resolve()
    raw = root / spec.folder / "raw"
    files = "`, `".join(f + ".gz" for f in RAW_FILES)
    how = f"""
To get it, do one of these, then reload the page:
- put the four files `{files}` (torchvision's raw layout,
  `<data dir>/{spec.folder}/raw/*-ubyte.gz`) in `{raw}`;
- download them through torchvision (needs the network) with the button below, or from a shell:
  `python -c "from aecore.data import download; download('{name}', '{root}')"`
  (`python -m aecore train ... --dataset {name} --download` also fetches them before training);
- or start the dashboard with `AECORE_DATA_DIR` pointing at a folder that already holds `{spec.folder}/raw/`.

The data dir is `{root}` (`AECORE_DATA_DIR`, else `./data`). `python -m aecore datasets` lists what is found.
"""
    return f"**{name} is not available**: its files are not in `{raw}`.", how


@dataclass
class Summary:
    sizes: dict[str, int]
    shape: str
    value_range: str
    notes: str


def summary(bundle: DataBundle) -> Summary:
    """Split sizes, item shape, the training values' range and how they are stored."""
    x = bundle.train.x
    # token ids are integers; a float format would suggest they can be fractional
    lo, hi = (int(x.min()), int(x.max())) if bundle.kind == "sequence" else (float(x.min()), float(x.max()))
    notes = [f"kind **{bundle.kind}**", f"stored as {x.dtype}"]
    if x.dtype == np.uint8:
        notes.append(f"shown divided by {bundle.info.get('scale', 255)}, i.e. in [0, 1]")
    if src := bundle.info.get("source"):
        notes.append(f"source: {src}")
    return Summary(
        sizes={s: len(getattr(bundle, s)) for s in SPLITS},
        shape=" × ".join(map(str, bundle.sample_shape)),
        value_range=f"{lo:.3g} … {hi:.3g}",
        notes=" · ".join(notes),
    )


@dataclass
class LabelCounts:
    what: str
    names: list[str]
    counts: dict[str, list[int]]  # split -> items per label, in the order of ``names``


def label_counts(bundle: DataBundle) -> LabelCounts | None:
    """Items per label in every split; None for unlabelled data."""
    if bundle.train.labels is None:
        return None
    ids = np.unique(np.concatenate([getattr(bundle, s).labels for s in SPLITS]))
    vector = bundle.kind == "vector"
    names = bundle.class_names or ([f"position {i}" for i in ids] if vector else [str(i) for i in ids])
    return LabelCounts(
        what="position along the curve (the curve parameter in ten bins)" if vector else "class",
        names=[names[int(i)] if int(i) < len(names) else str(i) for i in ids],
        counts={s: [int((getattr(bundle, s).labels == i).sum()) for i in ids] for s in SPLITS},
    )


def class_names(bundle: DataBundle, split: str) -> list[str]:
    labels = getattr(bundle, split).labels
    if labels is None:
        return []
    return bundle.class_names or [str(i) for i in range(int(labels.max()) + 1)]


def sample_indices(part: Split, count: int, seed: int, label: int | None = None) -> tuple[np.ndarray, int]:
    """Up to ``count`` sorted random indices into ``part`` (only items labelled
    ``label`` when given) and how many items there were to draw from."""
    pool = np.arange(len(part))
    if label is not None:
        if part.labels is None:
            raise ConfigError("this split has no labels to choose a class by.")
        pool = pool[part.labels == label]
    if len(pool) == 0:
        return pool, 0
    idx = np.random.default_rng(seed).choice(pool, min(count, len(pool)), replace=False)
    return np.sort(idx), len(pool)


@dataclass
class ImageSamples:
    images: np.ndarray  # (n, C, H, W) float in [0, 1]
    captions: list[str] | None
    pool: int
    scale: int  # enlargement that makes every dataset's images about the same size on screen


def image_samples(bundle: DataBundle, split: str, chosen: str, count: int, seed: int) -> ImageSamples:
    part = getattr(bundle, split)
    names = class_names(bundle, split)
    label = names.index(chosen) if chosen != ALL_CLASSES and part.labels is not None else None
    idx, pool = sample_indices(part, count, seed, label)
    captions = (
        None if part.labels is None else [names[int(v)] if int(v) < len(names) else str(v) for v in part.labels[idx]]
    )
    return ImageSamples(as_float(part.x[idx], bundle), captions, pool, max(1, 84 // bundle.sample_shape[-2]))


def sequence_examples(part: Split, seed: int, n: int = 10) -> dict[str, list]:
    """Random input/target pairs as table columns, plus the row indices."""
    idx, _ = sample_indices(part, n, seed)
    return {
        "index": idx.tolist(),
        "input": [format_tokens(v) for v in part.x[idx]],
        "target": [format_tokens(v) for v in part.target[idx]],
    }


def random_points(part: Split, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random points of a vector split (N, D) and their position labels (N,)."""
    idx, _ = sample_indices(part, n, seed)
    return part.x[idx], part.labels[idx]


@dataclass
class ManifoldTraces:
    """The arrays of the manifold figure, each trace in the data's own units."""

    code: np.ndarray  # (N,) the first code value of each point
    code_title: str
    learned: np.ndarray  # (N, D) reconstructions in order of code: the learned curve
    segments: np.ndarray | None  # (3N, D) point -> reconstruction joins, NaN-broken
    curve: np.ndarray | None  # (n, D) the decoder's curve, 1-D codes only
    mse: float
    agreement: float
    latent_dim: int

    @property
    def code_range(self) -> str:
        return f"{self.code.min():.2f} … {self.code.max():.2f}"


def manifold_traces(tm: TrainedModel, pts: np.ndarray, positions: np.ndarray) -> ManifoldTraces:
    view = learned_manifold(tm, pts)
    latent = int(tm.model.latent_dim)
    return ManifoldTraces(
        code=view.code,
        code_title="code" if latent == 1 else "code[0]",
        learned=view.recon[view.order],
        segments=error_segments(pts, view.recon),
        curve=view.curve,
        mse=view.mse,
        agreement=order_agreement(view.code, positions),
        latent_dim=latent,
    )


__all__ = [
    "ALL_CLASSES",
    "DEMO_EPOCHS",
    "DEMO_PRESET",
    "SPLITS",
    "ImageSamples",
    "LabelCounts",
    "ManifoldTraces",
    "Summary",
    "class_names",
    "dataset_label",
    "image_samples",
    "label_counts",
    "manifold_traces",
    "missing_help",
    "random_points",
    "sample_indices",
    "sequence_examples",
    "summary",
]
