"""The Latent space page's engine: codes of a dataset projected to 2-D, the
hover text of each point, and what a click on a point decodes.

The page hands in the model's own :class:`DataBundle` (``aecore.runs.request.model_data``),
so its points are the test items ``python -m aecore eval`` scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from aecore.data import DataBundle, as_float
from aecore.errors import ConfigError
from aecore.explore import inference
from aecore.explore.baselines import pca_fit
from aecore.explore.figures import to_png_array
from aecore.models.trained import TrainedModel

TSNE_MAX = 5000  # project_2d refuses t-SNE above this many items (it is quadratic in N)
ART_MAX = 2000  # above this many points the hover text carries no text-art thumbnail (figure size)
ART_ROWS = 10  # thumbnails are shrunk to at most this many rows of characters
SHADES = "\u00a0░▒▓█"  # a no-break space, so that plotly does not collapse blank pixels
METHODS = {"PCA": "pca", "t-SNE": "tsne"}  # what the page offers -> project_2d's method
ITEM_PX = 96  # a clicked image is enlarged by whole pixels towards this width
# the clicked point's figure (points of 2 or 3 values): (name, marker in 2-D, marker in 3-D)
POINT_TRACES = (
    ("test points", {"size": 4, "color": "grey", "opacity": 0.5}, {"size": 2, "color": "grey", "opacity": 0.5}),
    ("original", {"size": 12, "color": "#00cc96"}, {"size": 6, "color": "#00cc96"}),
    ("decoded code", {"size": 12, "color": "#ef553b", "symbol": "x"}, {"size": 6, "color": "#ef553b", "symbol": "x"}),
)


def project_2d(codes: np.ndarray, method: str = "pca", seed: int = 0, max_items: int = 5000) -> np.ndarray:
    """Codes -> (N, 2) points to plot. 1-D codes become (code, 0) and 2-D codes
    are returned as they are, whatever the method; wider codes are projected
    with PCA or t-SNE (sklearn, init="pca"). t-SNE is quadratic in N, so more
    than ``max_items`` items is refused rather than left to run for minutes."""
    if method not in ("pca", "tsne"):
        raise ConfigError(f"projection method must be 'pca' or 'tsne'; got {method!r}.")
    c = np.asarray(codes, dtype=np.float32)
    c = c.reshape(len(c), -1)  # (N,) or (N, C, h, w) -> (N, d)
    n, d = c.shape
    if d == 1:
        return np.concatenate([c, np.zeros_like(c)], 1)
    if d == 2:
        return c.copy()
    if method == "pca":
        if n == 0:
            return np.zeros((0, 2), np.float32)
        p = pca_fit(c, 2, max_items=max(max_items, 20000), seed=seed).transform(c)
        return np.pad(p, ((0, 0), (0, 2 - p.shape[1])))  # a single item gives one component
    if n > max_items:
        raise ConfigError(
            f"t-SNE on {n:,} items would take too long; subsample to at most {max_items:,} (or use method='pca')."
        )
    if n < 4:
        raise ConfigError("t-SNE needs at least 4 items.")
    from sklearn.manifold import TSNE

    # sklearn requires perplexity < n; 30 is its default for large sets.
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (n - 1) / 3))
    return tsne.fit_transform(c).astype(np.float32)


def text_art(img: np.ndarray) -> str:
    """(C, H, W) in [0, 1] -> the image in shaded block characters, for a hover label.

    Plotly draws hover labels as SVG text, which cannot hold an <img>, but it can
    hold text in a monospace font: bright pixels become █, dark ones blanks, and
    each pixel is two characters wide so that the picture keeps its proportions."""
    g = np.asarray(img, np.float32).mean(0)  # (C, H, W) -> (H, W)
    f = -(-g.shape[0] // ART_ROWS)  # ceil: shrink by whole blocks
    h, w = g.shape[0] // f * f, g.shape[1] // f * f
    g = g[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))  # (H, W) -> (H/f, W/f) block means
    levels = np.clip((g * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return "<br>".join("".join(SHADES[v] * 2 for v in row) for row in levels)


def item_cap(n_test: int, latent_dim: int, method: str) -> int:
    """The most test items the page may encode: all of them, except that t-SNE
    (used only for codes of more than two values) stops at TSNE_MAX."""
    return min(n_test, TSNE_MAX) if method == "tsne" and latent_dim > 2 else n_test


@dataclass
class LatentView:
    codes: np.ndarray  # (n, latent_dim) of the first n test items
    xy: np.ndarray  # (n, 2) where each is drawn
    hover_texts: list[str]  # per item: its code, then its picture in characters or its coordinates
    labels: np.ndarray | None  # (n,) class ids, None for unlabelled data
    groups: list[tuple[str, np.ndarray]]  # (legend name, item indices): one trace per label, or one for all
    label_names: list[str] | None = None

    def label_name(self, v) -> str:
        names = self.label_names
        return names[int(v)] if names and 0 <= int(v) < len(names) else str(v)


def _code_text(c: np.ndarray, k: int = 8) -> str:
    return ", ".join(f"{v:.2f}" for v in c[:k]) + (", ..." if len(c) > k else "")


def latent_view(tm: TrainedModel, bundle: DataBundle, n: int, method: str = "pca") -> LatentView:
    """Codes, 2-D points, hover texts and label groups of the first ``n`` test
    items. ``method`` (pca or tsne) only matters for codes of more than two values."""
    x = bundle.test.x[: max(0, int(n))]
    n = len(x)
    codes = inference.encode(tm, x)  # (n, latent_dim)
    xy = project_2d(codes, method if tm.model.latent_dim > 2 else "pca", max_items=TSNE_MAX)  # (n, 2)
    if bundle.kind == "image" and n <= ART_MAX:
        extra = [text_art(im) for im in as_float(x, bundle)]
    elif bundle.kind == "vector":
        extra = ["point (" + ", ".join(f"{v:.3f}" for v in p) + ")" for p in x]
    else:
        extra = [""] * n
    hover = [f"code ({_code_text(c)})<br>{e}" for c, e in zip(codes, extra)]
    labels = None if bundle.test.labels is None else np.asarray(bundle.test.labels[:n])
    view = LatentView(codes, xy, hover, labels, [], bundle.class_names or tm.meta.class_names)
    if labels is None:
        view.groups = [("items", np.arange(n))]
    else:
        view.groups = [(view.label_name(v), np.flatnonzero(labels == v)) for v in np.unique(labels)]
    return view


def selected_item(event: Mapping | None, groups: list[tuple[str, np.ndarray]], n: int) -> int | None:
    """The item index of the first selected point of a plotly selection event, or
    None. Read with keys, since AppTest hands back plain dicts; a point's
    customdata names its item (a typed array comes back as {"0": i}), else its
    trace (curve_number, one per group) and point_index do. A stale index (from
    a bigger earlier figure) is ignored."""
    points = event["selection"]["points"] if event else []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, dict):
            cd = list(cd.values())
        if cd is not None:
            i = cd[0] if isinstance(cd, (list, tuple)) else cd
        elif "curve_number" in p and "point_index" in p and p["curve_number"] < len(groups):
            i = groups[p["curve_number"]][1][p["point_index"]]
        else:
            continue
        if 0 <= int(i) < n:
            return int(i)
    return None


@dataclass
class ItemView:
    index: int
    title: str  # "Item 12: 7"
    x: np.ndarray  # (1, *sample_shape): the item in display space
    rec: np.ndarray  # (1, *sample_shape): the decoder fed its code (a VAE's posterior mean)
    mse: float
    code_text: str  # its first 32 code values
    pictures: list[np.ndarray] | None = None  # images: uint8 original, decoded code, |difference|
    columns: list[str] | None = None  # points: the coordinates' names
    cloud: np.ndarray | None = None  # points: the n test points around it (n, D)


def item_view(tm: TrainedModel, bundle: DataBundle, view: LatentView, i: int) -> ItemView:
    """Test item ``i`` of ``view`` beside what the decoder makes of its code."""
    x = as_float(bundle.test.x[i : i + 1], bundle)
    rec = inference.decode(tm, view.codes[i])
    title = f"Item {i}" + ("" if view.labels is None else f": {view.label_name(view.labels[i])}")
    code = view.codes[i]
    code_text = ", ".join(f"{v:.3f}" for v in code[:32]) + (" ..." if len(code) > 32 else "")
    out = ItemView(i, title, x, rec, float(np.mean((rec - x) ** 2)), code_text)
    if bundle.kind == "image":
        scale = max(1, ITEM_PX // x.shape[-1])
        out.pictures = [to_png_array(im, scale) for im in (x[0], rec[0], np.abs(rec[0] - x[0]))]
    else:
        d = x.shape[1]
        out.columns = list("xyz"[:d]) if d <= 3 else [f"x{k}" for k in range(d)]
        out.cloud = as_float(bundle.test.x[: len(view.codes)], bundle)
    return out


def item_figure(item: ItemView):
    """Points of 2 or 3 values: the test points, the item and its decoded code (plotly,
    imported here so that the CLI never loads it)."""
    import plotly.graph_objects as go

    three = item.x.shape[1] == 3
    trace, axes = (go.Scatter3d, "xyz") if three else (go.Scatter, "xy")
    traces = [
        trace(**{k: a[:, j] for j, k in enumerate(axes)}, mode="markers", name=name, marker=m3 if three else m2)
        for (name, m2, m3), a in zip(POINT_TRACES, (item.cloud, item.x, item.rec))
    ]
    fig = go.Figure(traces)
    return fig.update_layout(template="plotly_dark", height=380, margin={"t": 10, "b": 10, "l": 10, "r": 10})
