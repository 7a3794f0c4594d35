"""Weights: what the first layer looks for (seed 002's weight tiles), convolution
filters, how every layer's weights are spread, and how active the code units are."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import weights
from pages._common import ensure_navigation, model_bundle, pick_model, show_error

ensure_navigation()  # before anything is drawn: see pages/_common.py

CODE_ITEMS = 2000  # test items encoded for the code-activity chart

st.title("Weights")
st.caption(
    "What the first layer of an image model looks for: each unit's input weights drawn as a picture. "
    "Models of points or sequences are not listed here: their weights have no image shape."
)

tm = pick_model(kind="image")
if tm is None:
    st.stop()
layer = weights.first_layer(tm)
if layer is None:
    st.info(
        "This page needs a model of image data whose first layer reads the pixels "
        "(a dense or convolutional autoencoder).",
        icon="ℹ️",
    )
    st.stop()
conv, units = layer.conv, layer.units
C, H, W = tm.model.config.input_shape

st.subheader("Convolution filters" if conv else "First-layer weights as images")
if units > 1:
    top = min(units, weights.MAX_TILES)
    if st.session_state.get("w_tiles", 0) > top:  # a value kept from a model with more units
        st.session_state["w_tiles"] = top
    n = st.slider(
        "Filters to draw" if conv else "Units to draw", 1, top, min(units, 100), key="w_tiles", persist_state="session"
    )
else:
    n = 1
try:
    sheet = weights.first_layer_sheet(tm, n)
except AecoreError as e:
    show_error(e, "cannot draw these weights")
    st.stop()
k = layer.kernel
if conv:
    channels = "its RGB input" if layer.in_channels == 3 else f"its {layer.in_channels} input channel(s), averaged"
    text = (
        f"{n} of {units} first-layer filters, each {k}×{k} over {channels}, enlarged. A filter slides "
        "across the image and responds where the local pattern matches it: bright cells are positive "
        "weights, dark cells negative, so a filter with a bright line beside a dark one detects an edge."
    )
else:
    text = (
        f"{n} of {units} hidden units. Each tile is one unit's {C * H * W} input weights reshaped to the "
        f"{H}×{W} image: bright pixels push the unit up, dark pixels push it down, so a tile shows the "
        "strokes that unit responds to. Each tile is scaled to its own range."
    )
st.image(sheet, caption=text, output_format="PNG")

second = weights.second_layer(tm)
if second is not None and st.checkbox("Also show the second layer's filters", key="w_second", persist_state="session"):
    st.image(
        weights.second_layer_sheet(tm),
        output_format="PNG",
        caption=f"{second.units} second-layer filters, {second.kernel}×{second.kernel}, each averaged over its "
        f"{second.in_channels} input channels (the first layer's feature maps), so only a rough picture "
        "of what they combine.",
    )

st.subheader("Spread of the weights, layer by layer")
fig = go.Figure(
    [
        go.Scatter(x=centres, y=density, mode="lines", line_shape="hvh", name=f"{name} {shape}")
        for name, shape, centres, density in weights.weight_histograms(tm)
    ]
)
fig.update_layout(
    template="plotly_dark",
    xaxis_title="weight",
    yaxis_title="density",
    height=360,
    legend=dict(orientation="h", y=-0.25),
    margin=dict(t=20),
)
st.plotly_chart(fig, width="stretch", key="w_hist")
st.caption(
    "Each line is a histogram of one layer's weights (normalised, so layers of any size compare). "
    "Weights still near their random start stay in a narrow band; trained ones spread out."
)

st.subheader("How active is each code unit?")
bundle = model_bundle(tm)
if bundle is not None:
    mean, std, dead = weights.code_activity(tm, bundle, CODE_ITEMS)
    c1, c2 = st.columns(2)
    c1.metric("Code units", len(mean))
    c2.metric("Constant (dead) units", dead, help="units whose value never changes over the test items")
    bars = go.Figure(go.Bar(x=np.arange(len(mean)), y=mean, error_y=dict(type="data", array=std)))
    bars.update_layout(
        template="plotly_dark",
        xaxis_title="code unit",
        yaxis_title="mean ± std over test items",
        height=300,
        margin=dict(t=20),
    )
    st.plotly_chart(bars, width="stretch", key="w_codes")
