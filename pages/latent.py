"""Latent space: where the encoder puts each test item, coloured by label; click a point to decode it."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.data import as_float
from aecore.errors import AecoreError
from aecore.explore import inference, latent
from aecore.explore.figures import to_png_array
from pages._common import ensure_navigation, model_bundle, pick_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py

TSNE_MAX = 5000  # project_2d refuses t-SNE above this many items (it is quadratic in N)
ART_MAX = 2000  # above this many points the hover text carries no text-art thumbnail (figure size)
ART_ROWS = 10  # thumbnails are shrunk to at most this many rows of characters
SHADES = "\u00a0░▒▓█"  # a no-break space, so that plotly does not collapse blank pixels
METHODS = {"PCA": "pca", "t-SNE": "tsne"}

st.title("Latent space")
st.caption(
    "Every test item becomes a code; similar items should land near each other. "
    "Codes of more than two values are drawn through PCA (linear) or t-SNE (keeps neighbours)."
)

tm = pick_model(kind=("image", "vector"))
if tm is None:
    st.stop()
bundle = model_bundle(tm)
if bundle is None:
    st.stop()


def init_state(key: str, default, lo, hi) -> None:
    """Own the widget's value through session_state (no ``value=``), clamped to this model's range."""
    v = st.session_state.get(key, default)
    st.session_state[key] = default if not isinstance(v, (int, float)) else min(max(v, lo), hi)


def text_art(img: np.ndarray) -> str:
    """(C, H, W) in [0, 1] -> the image in shaded block characters, for a hover label.

    Plotly draws hover labels as SVG text, which cannot hold an <img>, but it can
    hold text in a monospace font: bright pixels become █, dark ones blanks, and
    each pixel is two characters wide so that the picture keeps its proportions."""
    g = img.mean(0)  # (C, H, W) -> (H, W)
    f = -(-g.shape[0] // ART_ROWS)  # ceil: shrink by whole blocks
    h, w = g.shape[0] // f * f, g.shape[1] // f * f
    g = g[:h, :w].reshape(h // f, f, w // f, f).mean((1, 3))  # (H, W) -> (H/f, W/f) block means
    levels = np.clip((g * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return "<br>".join("".join(SHADES[v] * 2 for v in row) for row in levels)


def weights_stamp(name: str) -> int:
    p = store().path(name) / "weights.safetensors"
    return p.stat().st_mtime_ns if p.exists() else 0


@st.cache_data(max_entries=16, show_spinner="Encoding and projecting the test set...")
def latent_view(_tm, _bundle, name: str, stamp: int, root: str, n: int, method: str):
    """Codes, 2-D points and hover texts of the first n test items (cached: t-SNE takes seconds).
    ``name``, ``stamp`` and ``root`` only key the cache: a retrained model gets new codes."""
    x = _bundle.test.x[:n]
    codes = inference.encode(_tm, x)  # (n, latent_dim)
    xy = latent.project_2d(codes, method, max_items=TSNE_MAX)  # (n, 2)
    if _bundle.kind == "image" and n <= ART_MAX:
        shown = as_float(x, _bundle)
        extra = [text_art(im) for im in shown]
    elif _bundle.kind == "vector":
        extra = ["point (" + ", ".join(f"{v:.3f}" for v in p) + ")" for p in x]
    else:
        extra = [""] * n
    code_text = [", ".join(f"{v:.2f}" for v in c[:8]) + (", ..." if len(c) > 8 else "") for c in codes]
    return codes, xy, [f"code ({c})<br>{e}" for c, e in zip(code_text, extra)]


n_test = len(bundle.test)
d = tm.model.latent_dim
left, right = st.columns([3, 2])
with left:
    c1, c2 = st.columns(2)
    method_label = c2.radio(
        "Projection",
        list(METHODS),
        key="lat_method",
        horizontal=True,
        disabled=d <= 2,
        persist_state="session",
        help="Only used when the code has more than two values.",
    )
    method = METHODS[method_label]
    cap = min(n_test, TSNE_MAX) if method == "tsne" and d > 2 else n_test
    if cap > 10:
        init_state("lat_n", min(2000, cap), 10, cap)
        n = c1.slider("Test items to encode", 10, cap, step=10 if cap >= 100 else 1, key="lat_n")
    else:
        n = cap
    if d <= 2:
        st.caption(
            f"The code has {d} value{'s' * (d > 1)}: shown as is"
            + (" (the code on x, 0 on y)." if d == 1 else " (no projection).")
        )
    elif method == "tsne" and n_test > TSNE_MAX:
        st.caption(f"t-SNE is limited to {TSNE_MAX:,} items (its cost grows with N²).")

try:
    codes, xy, hover = latent_view(
        tm, bundle, tm.name or "", weights_stamp(tm.name or ""), str(store().root), n, method if d > 2 else "pca"
    )
except AecoreError as e:
    show_error(e, "cannot draw the latent space")
    st.stop()

labels = bundle.test.labels[:n] if bundle.test.labels is not None else None
names = bundle.class_names or tm.meta.class_names


def label_name(v) -> str:
    return names[int(v)] if names and 0 <= int(v) < len(names) else str(v)


# One trace per label gives a legend that can hide classes; customdata carries the
# item's index, so a selection names its item whatever trace it is in. It is a plain
# list: numpy would be sent as a typed array, which comes back from the browser as {"0": i}.
fig = go.Figure()
groups = [(None, np.arange(n))] if labels is None else [(v, np.flatnonzero(labels == v)) for v in np.unique(labels)]
for v, idx in groups:
    name = "items" if v is None else label_name(v)
    fig.add_trace(
        go.Scatter(
            x=xy[idx, 0],
            y=xy[idx, 1],
            mode="markers",
            name=name,
            customdata=idx.tolist(),
            text=[hover[i] for i in idx],
            marker={"size": 6, "opacity": 0.8},
            hovertemplate=f"<b>{name}</b> · item %{{customdata}}<br>%{{text}}<extra></extra>",
        )
    )
axis = "code" if d <= 2 else method_label
fig.update_layout(
    template="plotly_dark",
    height=560,
    legend_title_text="label",
    clickmode="event+select",
    hoverlabel={"font": {"family": "DejaVu Sans Mono, Menlo, Consolas, monospace"}},
    xaxis_title=f"{axis} 1",
    yaxis_title=f"{axis} 2" if d != 1 else "",
    margin={"t": 30},
)

with left:
    event = st.plotly_chart(fig, key="lat_scatter", on_select="rerun", selection_mode="points")
    if bundle.kind == "vector":
        extra = "its coordinates"
    elif n <= ART_MAX:
        extra = "the image drawn in characters (a hover label cannot show pictures)"
    else:
        extra = f"no picture above {ART_MAX:,} points (the figure would get too big)"
    st.caption(
        f"{n:,} test items of {bundle.name}. Hover a point for its label, index, code and {extra}; "
        "click a point to decode it on the right."
    )


def selected_item(event) -> int | None:
    """The item index of the first selected point, read with keys (AppTest hands back plain dicts)."""
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


with right:
    i = selected_item(event)
    if i is None:
        st.info("Click a point in the scatter to decode it.", icon="👆")
        st.stop()
    x = as_float(bundle.test.x[i : i + 1], bundle)
    rec = inference.decode(tm, codes[i])  # the decoder fed this item's code (a VAE's posterior mean)
    st.subheader(f"Item {i}" + ("" if labels is None else f": {label_name(labels[i])}"))
    mse = float(np.mean((rec - x) ** 2))
    st.metric("Reconstruction MSE", f"{mse:.4f}")
    if bundle.kind == "image":
        scale = max(1, 96 // x.shape[-1])
        # PNG: Streamlit's "auto" picks JPEG for arrays, which smears the enlarged pixels
        st.image(
            [to_png_array(im, scale) for im in (x[0], rec[0], np.abs(rec[0] - x[0]))],
            caption=["original", "decoded code", "|difference|"],
            output_format="PNG",
        )
        st.caption(
            "The decoder applied to this item's code"
            + (" (the posterior mean)" if tm.model.is_variational else "")
            + ": its reconstruction."
        )
    else:
        dims = "xyz"[: x.shape[1]] if x.shape[1] <= 3 else [f"x{k}" for k in range(x.shape[1])]
        st.dataframe(
            pd.DataFrame([x[0], rec[0]], index=["original", "decoded code"], columns=list(dims)), width="stretch"
        )
        cloud = as_float(bundle.test.x[:n], bundle)
        if x.shape[1] in (2, 3):
            three = x.shape[1] == 3
            trace = go.Scatter3d if three else go.Scatter
            pts = {"x": 0, "y": 1, "z": 2} if three else {"x": 0, "y": 1}
            pf = go.Figure(
                [
                    trace(
                        **{k: cloud[:, j] for k, j in pts.items()},
                        mode="markers",
                        name="test points",
                        marker={"size": 2 if three else 4, "color": "grey", "opacity": 0.5},
                    ),
                    trace(
                        **{k: x[:, j] for k, j in pts.items()},
                        mode="markers",
                        name="original",
                        marker={"size": 6 if three else 12, "color": "#00cc96"},
                    ),
                    trace(
                        **{k: rec[:, j] for k, j in pts.items()},
                        mode="markers",
                        name="decoded code",
                        marker={"size": 6 if three else 12, "color": "#ef553b", "symbol": "x"},
                    ),
                ]
            )
            pf.update_layout(template="plotly_dark", height=380, margin={"t": 10, "b": 10, "l": 10, "r": 10})
            st.plotly_chart(pf, key="lat_point")
    st.caption("Code: " + ", ".join(f"{v:.3f}" for v in codes[i][:32]) + (" ..." if d > 32 else ""))
