"""Weights: what the first layer looks for (seed 002's weight tiles), convolution
filters, how every layer's weights are spread, and how active the code units are."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from torch import nn

from aecore.data import as_float
from aecore.errors import AecoreError
from aecore.explore import figures, inference
from pages._common import ensure_navigation, model_bundle, pick_model, show_error

ensure_navigation()  # before anything is drawn: see pages/_common.py

SHEET_WIDTH = 640  # px a tile sheet is enlarged towards (nearest neighbour, whole factors only)
CODE_ITEMS = 2000  # test items encoded for the code-activity chart


def enlarge(sheet: np.ndarray, width: int = SHEET_WIDTH, max_factor: int = 8) -> np.ndarray:
    """A uint8 sheet (H, W[, 3]) repeated by a whole factor so that each weight stays a crisp square."""
    f = max(1, min(max_factor, width // sheet.shape[1]))
    return sheet.repeat(f, 0).repeat(f, 1)


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The encoder's convolutions in the order the image meets them."""
    return [m for m in getattr(model, "encoder", model).modules() if isinstance(m, nn.Conv2d)]


st.title("Weights")
st.caption(
    "What the first layer of an image model looks for: each unit's input weights drawn as a picture. "
    "Models of points or sequences are not listed here: their weights have no image shape."
)

tm = pick_model(kind="image")
if tm is None:
    st.stop()
shape = tuple(tm.model.config.input_shape)
weight = tm.model.first_layer_weight()
if weight is None or len(shape) != 3:
    st.info(
        "This page needs a model of image data whose first layer reads the pixels "
        "(a dense or convolutional autoencoder).",
        icon="ℹ️",
    )
    st.stop()
weight = weight.detach().cpu()
conv = weight.ndim == 4
units = len(weight)
C, H, W = shape

st.subheader("Convolution filters" if conv else "First-layer weights as images")
if units > 1:
    top = min(units, 400)
    if st.session_state.get("w_tiles", 0) > top:  # a value kept from a model with more units
        st.session_state["w_tiles"] = top
    n = st.slider(
        "Filters to draw" if conv else "Units to draw", 1, top, min(units, 100), key="w_tiles", persist_state="session"
    )
else:
    n = 1
try:
    sheet = figures.weight_tiles(weight[:n], shape, max_tiles=n, min_tile=24 if conv else 15)
except AecoreError as e:
    show_error(e, "cannot draw these weights")
    st.stop()
k = weight.shape[-1]
if conv:
    channels = "its RGB input" if weight.shape[1] == 3 else f"its {weight.shape[1]} input channel(s), averaged"
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
st.image(enlarge(sheet), caption=text, output_format="PNG")

convs = conv_layers(tm.model) if conv else []
if len(convs) > 1 and st.checkbox("Also show the second layer's filters", key="w_second", persist_state="session"):
    w2 = convs[1].weight.detach().cpu()
    sheet2 = figures.weight_tiles(w2, shape, max_tiles=400, min_tile=24)
    st.image(
        enlarge(sheet2),
        output_format="PNG",
        caption=f"{len(w2)} second-layer filters, {w2.shape[-1]}×{w2.shape[-1]}, each averaged over its "
        f"{w2.shape[1]} input channels (the first layer's feature maps), so only a rough picture "
        "of what they combine.",
    )

st.subheader("Spread of the weights, layer by layer")
fig = go.Figure()
for name, module in tm.model.named_modules():
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        values = module.weight.detach().cpu().numpy().ravel()
        # Binned here: a million raw weights would make a 20 MB chart.
        density, edges = np.histogram(values, bins=60, density=True)
        fig.add_trace(
            go.Scatter(
                x=(edges[:-1] + edges[1:]) / 2,
                y=density,
                mode="lines",
                line_shape="hvh",
                name=f"{name} {tuple(module.weight.shape)}",
            )
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
    codes = inference.encode(tm, as_float(bundle.test.x[:CODE_ITEMS], bundle))
    mean, std = codes.mean(0), codes.std(0)
    dead = int((std < 1e-6).sum())
    c1, c2 = st.columns(2)
    c1.metric("Code units", codes.shape[1])
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
