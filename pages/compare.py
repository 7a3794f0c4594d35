"""Compare: the loss curves of several saved models on one chart (seed 002's cost
comparison) and their test metrics beside PCA at the same code size (seed 003)."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import compare
from aecore.explore.metrics import evaluate
from pages._common import DATA_DIR, ensure_navigation, load_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py

RECENT = 3  # how many of the newest models are selected at first
PALETTE = px.colors.qualitative.Plotly

st.title("Compare")
st.caption(
    "Several saved models side by side: how their losses fell epoch by epoch, and how well each "
    "reconstructs the test set compared with PCA keeping as many numbers per item."
)

infos = sorted((i for i in store().list() if i.ok), key=lambda i: i.created or "", reverse=True)
if not infos:
    st.info(
        "No saved models yet. Train a few on the Train page (or `python -m aecore train --preset vanilla "
        "--dataset digits`), then compare them here.",
        icon="ℹ️",
    )
    st.page_link("pages/train.py", label="Go to Train", icon="🏋️")
    st.stop()
info = {i.name: i for i in infos}
names = list(info)
chosen = st.multiselect(
    "Models (newest first)",
    names,
    key="cmp_models",
    persist_state="session",
    default=None if "cmp_models" in st.session_state else names[:RECENT],
)
if not chosen:
    st.info("Choose one or more models above.", icon="ℹ️")
    st.stop()
models = {}
for name in chosen:
    try:
        models[name] = load_model(name)
    except AecoreError as e:
        show_error(e, f"cannot load '{name}'")
if not models:
    st.stop()
metrics = {n: dict(info[n].metrics) for n in models}  # read from disk on every run: never stale

parts = compare.differences(models, info)
if parts:
    st.warning(
        f"These models differ in {' and '.join(parts)}: their losses are not on one scale, so the curves "
        "show how each run went, not which model is better. Test MSE compares models of one dataset.",
        icon="⚠️",
    )

st.subheader("Loss per epoch")
logy = st.toggle("Logarithmic y axis", value=True, key="cmp_logy", persist_state="session")
color = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(models)}
fig = go.Figure(
    [
        go.Scatter(
            x=c.epochs,
            y=c.loss,
            name=f"{c.model} · {c.split}",
            legendgroup=c.model,
            mode="lines+markers",
            line=dict(color=color[c.model], dash="dash" if c.split == "validation" else None),
        )
        for c in compare.loss_curves(models)
    ]
)
fig.update_layout(
    template="plotly_dark",
    xaxis_title="epoch",
    yaxis_title="loss (each model's own objective)",
    yaxis_type="log" if logy else "linear",
    height=420,
    margin=dict(t=20),
)
st.plotly_chart(fig, width="stretch", key="cmp_losses")
st.caption(
    "Solid: training loss; dashed: validation loss. "
    + "; ".join(f"{n}: {compare.loss_kind(tm)}" for n, tm in models.items())
)

pending = compare.unevaluated(models, metrics)
if pending:
    st.info(f"No test metrics yet for {', '.join(pending)} (trained without the final evaluation).", icon="ℹ️")
    if st.button(f"Evaluate {len(pending)} model(s) on the test split", key="cmp_eval"):
        for name in pending:
            try:
                with st.spinner(f"Evaluating {name}..."):
                    new = evaluate(models[name], compare.evaluation_bundle(models[name], DATA_DIR))
                store().update_metrics(name, new)
                metrics[name].update(new)
                models[name].metrics.update(new)  # the cached copy other pages caption
            except AecoreError as e:
                show_error(e, f"cannot evaluate '{name}'")

st.subheader("Test metrics")
rows = compare.table_rows(models, info, metrics)
fmt = compare.COLUMN_FORMATS
df = pd.DataFrame(rows)
numeric = [c for c in df.columns if c in fmt]
df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")  # a column of None alone would be text
st.dataframe(
    df,
    hide_index=True,
    width="stretch",
    column_config={k: st.column_config.NumberColumn(format=v) for k, v in fmt.items()},
)
st.caption(
    "Test MSE: mean squared error per value on the test split, in [0, 1] pixel units for images. PCA MSE: "
    "PCA fitted on the same training data keeping as many components as the code has values; AE / PCA "
    "below 1 means the autoencoder beats the linear baseline. Sequence models show accuracy instead."
    + (
        " Seed cost: 0.5·Σ squared error per item in standardised units, as seed 002 prints it."
        if "seed cost / item" in rows[0]
        else ""
    )
)

scored = [r for r in rows if r["test MSE"] is not None and r["PCA MSE"] is not None]
if scored:
    bars = go.Figure(
        [
            go.Bar(name="autoencoder", x=[r["model"] for r in scored], y=[r["test MSE"] for r in scored]),
            go.Bar(name="PCA, same code size", x=[r["model"] for r in scored], y=[r["PCA MSE"] for r in scored]),
        ]
    )
    bars.update_layout(
        template="plotly_dark",
        barmode="group",
        yaxis_title="test MSE",
        yaxis_type="linear",
        height=360,
        margin=dict(t=20),
    )
    st.plotly_chart(bars, width="stretch", key="cmp_bars")
