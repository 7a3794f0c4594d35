"""Anomalies: reconstruction error as an anomaly score (seed 001). A histogram of
per-item errors on the test split and on an outlier set, a threshold, AUROC, and
the worst-reconstructed inputs."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.data import DATASETS, as_float
from aecore.errors import AecoreError
from aecore.explore import anomalies, figures, inference
from pages._common import (
    available_datasets,
    ensure_navigation,
    load_bundle,
    model_bundle,
    pick_model,
    show_error,
    store,
)

ensure_navigation()  # before anything is drawn: see pages/_common.py

MAX_OUTLIERS = 10_000  # items scored from another dataset
GRID_WIDTH = 720  # px the worst-K grid is enlarged towards


@st.cache_data(max_entries=16, show_spinner="Scoring reconstruction errors...")
def cached_errors(_tm, _make_items, key: tuple) -> np.ndarray:
    """Per-item errors, recomputed only when ``key`` (store, model, weights file time, dataset, source) changes."""
    return inference.per_item_errors(_tm, _make_items())


def same_shape_datasets(bundle) -> list[str]:
    out = []
    for name in available_datasets(bundle.kind):
        spec = DATASETS[name]
        # torchvision's raw-layout files are 28x28 grey by format: no need to read 60,000 images to know
        shape = (1, 28, 28) if spec.folder else load_bundle(name).sample_shape
        if name != bundle.name and tuple(shape) == tuple(bundle.sample_shape):
            out.append(name)
    return out


def describe(source: str) -> str:
    kind, _, arg = source.partition(":")
    if kind == "dataset":
        return f"{arg} (its test split)"
    return f"synthetic: test items {anomalies.OUTLIER_KINDS[arg]}" if kind == "synthetic" else "no outlier set"


st.title("Anomalies")
st.caption(
    "A model trained on normal data reconstructs it well and anything unlike it badly, so the "
    "reconstruction error ranks inputs by how unusual they are (seed 001)."
)

tm = pick_model(kind=("image", "vector"))
if tm is None:
    st.stop()
bundle = model_bundle(tm)
if bundle is None:
    st.stop()
image = bundle.kind == "image"
test_x = as_float(bundle.test.x, bundle)

kinds = anomalies.IMAGE_KINDS if image else anomalies.VECTOR_KINDS
options = [f"dataset:{n}" for n in same_shape_datasets(bundle)] + [f"synthetic:{k}" for k in kinds] + ["none"]
# A choice made for one model rarely fits the next (another shape, another dataset): start again from the
# first option, a real dataset where there is one.
seen = st.session_state.get("_an_model")
if st.session_state.get("an_other") not in options or (seen is not None and seen != tm.name):
    st.session_state["an_other"] = options[0]
st.session_state["_an_model"] = tm.name
source = st.selectbox(
    "Outlier set (items the model never saw, scored against the normal test items)",
    options,
    format_func=describe,
    key="an_other",
    persist_state="session",
)


def items(src: str) -> tuple[np.ndarray, np.ndarray | None, list | None]:
    """(x float, labels, class names) of the test split or of the outlier set."""
    kind, _, arg = src.partition(":")
    if kind == "dataset":
        other = load_bundle(arg)
        return as_float(other.test.x[:MAX_OUTLIERS], other), other.test.labels, other.class_names
    x = test_x if src == "test" else anomalies.outlier_set(test_x, arg, seed=0)
    return x, bundle.test.labels, bundle.class_names


def errors(src: str) -> np.ndarray:
    path = store().path(tm.name) / "weights.safetensors"
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    return cached_errors(tm, lambda: items(src)[0], (str(store().root), tm.name, stamp, bundle.name, src))


try:
    normal = errors("test")
    odd = errors(source) if source != "none" else None
except AecoreError as e:
    show_error(e, "cannot score these items")
    st.stop()

pct = st.slider(
    "Threshold: percentile of the normal test errors",
    50.0,
    100.0,
    99.0,
    0.5,
    key="an_threshold",
    persist_state="session",
    help="items whose error is above it are flagged as anomalies",
)
threshold = anomalies.threshold_at(normal, pct / 100)
cols = st.columns(4)
cols[0].metric("Threshold (error)", f"{threshold:.4g}")
cols[1].metric(
    "Flagged: normal test items",
    f"{100 * anomalies.flagged_fraction(normal, threshold):.1f}%",
    help=f"of {len(normal):,} test items of {bundle.name}: the false-alarm rate",
)
if odd is not None:
    cols[2].metric(
        "Flagged: outliers",
        f"{100 * anomalies.flagged_fraction(odd, threshold):.1f}%",
        help=f"of {len(odd):,} outlier items: the detection rate",
    )
    try:
        auc = f"{anomalies.auroc(normal, odd):.3f}"
    except AecoreError:  # a model that outputs NaN has no ranking to score
        auc = "n/a"
    cols[3].metric(
        "AUROC",
        auc,
        help="chance that an outlier scores above a normal item: 1 separates them perfectly, 0.5 is a coin toss",
    )

logx = st.toggle("Logarithmic error axis", value=True, key="an_logx", persist_state="session")


def axis(e: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(e, 1e-12)) if logx else e


groups = [("normal test items", normal)] + ([(describe(source), odd)] if odd is not None else [])
edges = np.histogram_bin_edges(axis(np.concatenate([e for _, e in groups])), bins=60)
fig = go.Figure(
    [
        go.Histogram(
            x=axis(e),
            name=name,
            opacity=0.6,
            histnorm="percent",
            xbins=dict(start=edges[0], end=edges[-1], size=edges[1] - edges[0]),
        )
        for name, e in groups
    ]
)
fig.add_vline(
    x=float(axis(np.array([threshold]))[0]),
    line_dash="dash",
    line_color="white",
    annotation_text=f"threshold ({pct:g}th percentile)",
)
fig.update_layout(
    template="plotly_dark",
    barmode="overlay",
    height=380,
    margin=dict(t=30),
    yaxis_title="% of items",
    xaxis_title="log10 reconstruction error (MSE)" if logx else "reconstruction error (MSE)",
    legend=dict(orientation="h", y=1.08),
)
st.plotly_chart(fig, width="stretch", key="an_hist")

if not image and test_x.shape[1] in (2, 3):
    odd_x = items(source)[0] if odd is not None else None
    flagged = normal > threshold
    three = test_x.shape[1] == 3
    Trace = go.Scatter3d if three else go.Scatter

    def trace(pts, name, **marker):
        coords = dict(x=pts[:, 0], y=pts[:, 1], **({"z": pts[:, 2]} if three else {}))
        return Trace(mode="markers", name=name, marker={"size": 3 if three else 6, **marker}, **coords)

    points = [
        trace(
            test_x,
            "normal test items",
            color=axis(normal),
            colorscale="Viridis",
            showscale=True,
            colorbar=dict(title="log10 error" if logx else "error"),
        ),
        trace(test_x[flagged], "flagged", color="red", symbol="circle-open", size=6 if three else 12),
    ]
    if odd_x is not None:
        points.insert(0, trace(odd_x, describe(source), color="gray"))
    scatter = go.Figure(points)
    scatter.update_layout(template="plotly_dark", height=460, margin=dict(t=20), legend=dict(orientation="h"))
    st.plotly_chart(scatter, width="stretch", key="an_points")
    st.caption(
        "The test points coloured by their error; red rings: above the threshold. Points far from the "
        "curve the model learned are reconstructed onto it, hence their large error."
    )

st.subheader("The worst-reconstructed inputs")
where = "test"
if odd is not None:
    if st.session_state.get("an_worst_from") not in ("test", source):
        st.session_state["an_worst_from"] = "test"
    where = st.radio(
        "From",
        ["test", source],
        format_func=lambda s: "the normal test items" if s == "test" else describe(s),
        horizontal=True,
        key="an_worst_from",
    )
x, labels, class_names = items(where)
errs = normal if where == "test" else odd
k = st.slider("How many", 1, max(2, min(32, len(errs))), min(8, len(errs)), key="an_k", persist_state="session")
idx = anomalies.worst(errs, k)
rec = inference.reconstruct(tm, x[idx])
table = pd.DataFrame(
    {"rank": np.arange(1, len(idx) + 1), "item": idx, "error": errs[idx], "flagged": errs[idx] > threshold}
)
if labels is not None:
    table.insert(2, "label", [class_names[int(v)] if class_names else str(v) for v in labels[idx]])
if image:
    grid = figures.image_grid([x[idx], rec])
    f = max(1, min(8, GRID_WIDTH // grid.shape[1]))
    st.image(
        grid.repeat(f, 0).repeat(f, 1),
        output_format="PNG",
        caption=f"the {len(idx)} largest errors, worst first: originals (top) over reconstructions (bottom)",
    )
else:
    for d in range(x.shape[1]):
        table[f"x{d}"], table[f"reconstructed x{d}"] = x[idx, d], rec[:, d]
st.dataframe(
    table, hide_index=True, width="stretch", column_config={"error": st.column_config.NumberColumn(format="%.5f")}
)
