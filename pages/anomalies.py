"""Anomalies: reconstruction error as an anomaly score (seed 001). A histogram of
per-item errors on the test split and on an outlier set, a threshold, AUROC, and
the worst-reconstructed inputs."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import anomalies, inference
from pages._common import DATA_DIR, ensure_navigation, load_bundle, model_bundle, pick_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py


@st.cache_data(max_entries=16, show_spinner="Scoring reconstruction errors...")
def cached_errors(_tm, _bundle, source: str, key: tuple) -> np.ndarray:
    """Per-item errors, recomputed only when the source or ``key`` (store, model, weights file time) changes."""
    return inference.per_item_errors(_tm, items(_bundle, source).x)


def items(bundle, source: str) -> anomalies.Items:
    return anomalies.source_items(bundle, source, DATA_DIR, load=load_bundle)  # load_bundle: cached


def errors(source: str) -> np.ndarray:
    path = store().path(tm.name) / "weights.safetensors"
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    return cached_errors(tm, bundle, source, (str(store().root), tm.name, stamp, bundle.name))


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

options = anomalies.outlier_sources(bundle, DATA_DIR, load=load_bundle)
# A choice made for one model rarely fits the next (another shape, another dataset): start again from the
# first option, a real dataset where there is one.
seen = st.session_state.get("_an_model")
if st.session_state.get("an_other") not in options or (seen is not None and seen != tm.name):
    st.session_state["an_other"] = options[0]
st.session_state["_an_model"] = tm.name
label = "Outlier set (items the model never saw, scored against the normal test items)"
source = st.selectbox(label, options, format_func=anomalies.describe, key="an_other", persist_state="session")

try:
    normal = errors("test")
    odd = errors(source) if source != "none" else None
except AecoreError as e:
    show_error(e, "cannot score these items")
    st.stop()

label = "Threshold: percentile of the normal test errors"
flags = "items whose error is above it are flagged as anomalies"
pct = st.slider(label, 50.0, 100.0, 99.0, 0.5, key="an_threshold", persist_state="session", help=flags)
cols = st.columns(4)  # filled once the toggle below is read: the metrics sit above it
logx = st.toggle("Logarithmic error axis", value=True, key="an_logx", persist_state="session")
view = anomalies.score_view(normal, odd, pct, log=logx)
cols[0].metric("Threshold (error)", f"{view.threshold:.4g}")
cols[1].metric(
    "Flagged: normal test items",
    f"{100 * view.flagged_normal:.1f}%",
    help=f"of {len(normal):,} test items of {bundle.name}: the false-alarm rate",
)
if odd is not None:
    rate = f"{100 * view.flagged_outliers:.1f}%"
    cols[2].metric("Flagged: outliers", rate, help=f"of {len(odd):,} outlier items: the detection rate")
    cols[3].metric(
        "AUROC",
        "n/a" if view.auroc is None else f"{view.auroc:.3f}",
        help="chance that an outlier scores above a normal item: 1 separates them perfectly, 0.5 is a coin toss",
    )

names = ["normal test items"] + ([anomalies.describe(source)] if odd is not None else [])
bins = dict(start=view.edges[0], end=view.edges[-1], size=view.edges[1] - view.edges[0])
axes = [view.normal_axis, view.outlier_axis]
fig = go.Figure([go.Histogram(x=x, name=n, opacity=0.6, histnorm="percent", xbins=bins) for n, x in zip(names, axes)])
mark = f"threshold ({pct:g}th percentile)"
fig.add_vline(x=view.threshold_axis, line_dash="dash", line_color="white", annotation_text=mark)
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

test_x = items(bundle, "test").x
if bundle.kind != "image" and test_x.shape[1] in (2, 3):
    three = test_x.shape[1] == 3

    def trace(pts, name, **marker):
        Trace, size = (go.Scatter3d, 3) if three else (go.Scatter, 6)
        return Trace(mode="markers", name=name, marker={"size": size, **marker}, **dict(zip("xyz", pts.T)))

    scale = dict(colorscale="Viridis", showscale=True, colorbar=dict(title="log10 error" if logx else "error"))
    points = [trace(items(bundle, source).x, anomalies.describe(source), color="gray")] if odd is not None else []
    points.append(trace(test_x, "normal test items", color=view.normal_axis, **scale))
    points.append(trace(test_x[view.flagged], "flagged", color="red", symbol="circle-open", size=6 if three else 12))
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
        format_func=lambda s: "the normal test items" if s == "test" else anomalies.describe(s),
        horizontal=True,
        key="an_worst_from",
    )
errs = normal if where == "test" else odd
k = st.slider("How many", 1, max(2, min(32, len(errs))), min(8, len(errs)), key="an_k", persist_state="session")
worst = anomalies.worst_view(tm, items(bundle, where), errs, k, view.threshold)
if worst.grid is not None:
    st.image(
        worst.grid,
        output_format="PNG",
        caption=f"the {len(worst.columns['item'])} largest errors, worst first: "
        "originals (top) over reconstructions (bottom)",
    )
error_format = {"error": st.column_config.NumberColumn(format="%.5f")}
st.dataframe(pd.DataFrame(worst.columns), hide_index=True, width="stretch", column_config=error_format)
