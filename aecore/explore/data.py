"""The Data page's engine side: what a dataset holds, random samples of it, and
the manifold demo's arrays. Everything here returns plain numbers, strings and
arrays; drawing them is the page's job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aecore.data import DATASETS, RAW_FILES, as_float, resolve_data_dir
from aecore.data.base import DataBundle, Split
from aecore.errors import ConfigError
from aecore.explore.manifold import error_segments, learned_manifold, order_agreement
from aecore.explore.sequences import format_tokens
from aecore.models.trained import TrainedModel
from aecore.runs.request import TrainRequest

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
CURVE_HELP = "decode(z) for z evenly spaced from the smallest to the largest code, 10% further at each end."
ORDER_AGREEMENT_HELP = (
    "|Spearman rank correlation| of the code with the true position along the curve: 1.00 when "
    "the code runs along the curve in one direction, lower where it folds back."
)


def dataset_labels(data_dir) -> dict[str, str]:
    """Every known dataset's name -> a one-line label that flags the ones not on disk."""
    return {
        name: f"{name}: {spec.description}" + ("" if spec.available(data_dir) else "  ⛔ not available")
        for name, spec in DATASETS.items()
    }


def data_root(data_dir) -> Path:
    return resolve_data_dir(data_dir).resolve()


def no_model_hint(name: str) -> str:
    return (
        f"No saved model was trained on {name} yet. Train preset `{DEMO_PRESET}` on it: here (a few "
        f"seconds), on the Train page, or with `python -m aecore train --preset {DEMO_PRESET} "
        f"--dataset {name}`."
    )


def sequence_intro(bundle: DataBundle) -> str:
    vocab, out_len = bundle.info.get("vocab"), bundle.info.get("output_len")
    return (
        f"Each input is {bundle.sample_shape[0]} integers from 1 to {vocab - 1}; the target is its first "
        f"{out_len} in reverse order. Token 0 is kept for the decoder's start token."
    )


def missing_help(name: str, data_dir) -> tuple[str, str]:
    """(warning, how-to markdown) for a dataset whose raw files are not there yet."""
    spec = DATASETS[name]
    root = data_root(data_dir)
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
    note: str


def image_samples(bundle: DataBundle, split: str, chosen: str, count: int, seed: int) -> ImageSamples:
    part = getattr(bundle, split)
    names = class_names(bundle, split)
    label = names.index(chosen) if chosen != ALL_CLASSES and part.labels is not None else None
    idx, pool = sample_indices(part, count, seed, label)
    captions = (
        None if part.labels is None else [names[int(v)] if int(v) < len(names) else str(v) for v in part.labels[idx]]
    )
    which = "" if label is None else f" labelled '{chosen}'"
    note = f"{len(idx)} random {split} images of {pool:,}{which}, enlarged pixel by pixel."
    scale = max(1, 84 // bundle.sample_shape[-2])
    return ImageSamples(as_float(part.x[idx], bundle), captions, pool, scale, note)


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


def marker_size(dim: int) -> int:
    # 3-D scenes crowd more points into the same area than flat plots
    return 3 if dim >= 3 else 5


@dataclass
class Trace:
    """One plot trace as plain data: its points (N, D) and plotly-style keyword
    arguments (mode, marker, line...), so the page only picks the 2-D or 3-D kind."""

    name: str
    points: np.ndarray
    style: dict


def points_trace(pts: np.ndarray, positions: np.ndarray) -> Trace:
    marker = dict(
        size=marker_size(pts.shape[1]), color=positions, colorscale="Viridis", colorbar=dict(title="position")
    )
    return Trace("data", pts, dict(mode="markers", marker=marker))


@dataclass
class ManifoldTraces:
    """The manifold figure's arrays, each in the data's own units."""

    pts: np.ndarray
    code: np.ndarray  # (N,) the first code value of each point
    code_title: str
    learned: np.ndarray  # (N, D) reconstructions in order of code: the learned curve
    segments: np.ndarray  # (3N, D) point -> reconstruction joins, NaN-broken
    curve: np.ndarray | None  # (n, D) the decoder's curve, 1-D codes only
    mse: float
    agreement: float
    latent_dim: int

    @property
    def code_range(self) -> str:
        return f"{self.code.min():.2f} … {self.code.max():.2f}"

    def traces(self, show_errors: bool = False, show_curve: bool = True) -> list[Trace]:
        """Data coloured by code, optional joins, the learned curve, the optional decoder curve."""
        size = marker_size(self.pts.shape[1])
        marker = dict(size=size, color=self.code, colorscale="Turbo", colorbar=dict(title=self.code_title))
        hover = [f"{self.code_title} {c:.3f}" for c in self.code]
        out = [
            Trace("data, coloured by code", self.pts, dict(mode="markers", marker=marker, text=hover, hoverinfo="text"))
        ]
        if show_errors:
            out.append(
                Trace("point → reconstruction", self.segments, dict(mode="lines", line=dict(color="gray", width=1)))
            )
        white = dict(mode="lines+markers", line=dict(color="white", width=3), marker=dict(size=2, color="white"))
        out.append(Trace("reconstructions (the learned manifold)", self.learned, white))
        if show_curve and self.curve is not None:
            dashed = dict(mode="lines", line=dict(color="orange", width=2, dash="dash"))
            out.append(Trace("decoder curve decode(z)", self.curve, dashed))
        return out


def manifold_traces(tm: TrainedModel, pts: np.ndarray, positions: np.ndarray) -> ManifoldTraces:
    view = learned_manifold(tm, pts)
    latent = int(tm.model.latent_dim)
    return ManifoldTraces(
        pts=np.asarray(pts),
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
    "Trace",
    "class_names",
    "data_root",
    "dataset_labels",
    "image_samples",
    "label_counts",
    "manifold_traces",
    "missing_help",
    "no_model_hint",
    "points_trace",
    "random_points",
    "sample_indices",
    "sequence_examples",
    "sequence_intro",
    "summary",
]


def demo_request(name: str, data_dir: str | None = None) -> TrainRequest:
    """The Data page's manifold demo run: DEMO_PRESET on dataset ``name`` for DEMO_EPOCHS epochs."""
    return TrainRequest(preset=DEMO_PRESET, dataset=name, epochs=DEMO_EPOCHS, data_dir=data_dir)
