"""Compare: the loss curves of several saved models on one chart (seed 002's cost
comparison) and their test metrics beside PCA at the same code size (seed 003)."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from aecore.data import load_dataset
from aecore.errors import AecoreError
from aecore.explore.metrics import evaluate
from pages._common import DATA_DIR, ensure_navigation, load_bundle, load_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py

RECENT = 3  # how many of the newest models are selected at first
PALETTE = px.colors.qualitative.Plotly


def loss_kind(tm) -> str:
    """The objective in words: curves of different objectives are not on one scale."""
    cfg = tm.model.config
    if cfg.kind == "seq2seq":
        return "cross-entropy"
    text = f"{cfg.loss.recon.upper()} ({cfg.loss.reduction}{'' if cfg.loss.scale == 1 else f' ×{cfg.loss.scale:g}'})"
    extras = [
        n
        for n, on in (
            ("KL", tm.model.is_variational),
            ("L1", cfg.sparsity.l1 > 0),
            ("sparsity KL", cfg.sparsity.kl > 0),
        )
        if on
    ]
    return " + ".join([text, *extras])


def is_sequence(tm) -> bool:
    return tm.data_kind == "sequence"


def test_bundle(tm):
    """The model's dataset with the split it was trained with (built-in splits depend on the seed)."""
    name, seed = tm.meta.dataset, tm.meta.seed
    return load_bundle(name) if seed == 0 else load_dataset(name, DATA_DIR, seed=seed)


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

datasets = sorted({str(info[n].dataset) for n in models})
objectives = sorted({loss_kind(tm) for tm in models.values()})
if len(datasets) > 1 or len(objectives) > 1:
    parts = ([f"datasets ({', '.join(datasets)})"] if len(datasets) > 1 else []) + (
        [f"loss functions ({'; '.join(objectives)})"] if len(objectives) > 1 else []
    )
    st.warning(
        f"These models differ in {' and '.join(parts)}: their losses are not on one scale, so the curves "
        "show how each run went, not which model is better. Test MSE compares models of one dataset.",
        icon="⚠️",
    )

st.subheader("Loss per epoch")
logy = st.toggle("Logarithmic y axis", value=True, key="cmp_logy", persist_state="session")
fig = go.Figure()
for i, (name, tm) in enumerate(models.items()):
    h, color = tm.history, PALETTE[i % len(PALETTE)]
    epochs = [r["epoch"] for r in h]
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=[r["train_loss"] for r in h],
            name=f"{name} · train",
            legendgroup=name,
            mode="lines+markers",
            line=dict(color=color),
        )
    )
    if any(r.get("val_loss") is not None for r in h):
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[r.get("val_loss") for r in h],
                name=f"{name} · validation",
                legendgroup=name,
                mode="lines+markers",
                line=dict(color=color, dash="dash"),
            )
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
    "Solid: training loss; dashed: validation loss. " + "; ".join(f"{n}: {loss_kind(tm)}" for n, tm in models.items())
)

# Sequence models are scored by accuracy; the rest by test MSE.
pending = [
    n for n, tm in models.items() if metrics[n].get("sequence_accuracy" if is_sequence(tm) else "test_mse") is None
]
if pending:
    st.info(f"No test metrics yet for {', '.join(pending)} (trained without the final evaluation).", icon="ℹ️")
    if st.button(f"Evaluate {len(pending)} model(s) on the test split", key="cmp_eval"):
        for name in pending:
            try:
                with st.spinner(f"Evaluating {name}..."):
                    new = evaluate(models[name], test_bundle(models[name]))
                store().update_metrics(name, new)
                metrics[name].update(new)
                models[name].metrics.update(new)  # the cached copy other pages caption
            except AecoreError as e:
                show_error(e, f"cannot evaluate '{name}'")

st.subheader("Test metrics")
rows = []
for name, tm in models.items():
    m = metrics[name]
    mse, pca = m.get("test_mse"), m.get("pca_test_mse")
    row = {
        "model": name,
        "preset": info[name].preset,
        "dataset": info[name].dataset,
        "code size": tm.model.latent_dim,
        "epochs": m.get("epochs", len(tm.history)),
        "test MSE": mse,
        "PSNR (dB)": m.get("psnr_db"),
        "PCA MSE": pca,
        # PCA with as many components as values per item is exact (error ~1e-30): no ratio then.
        "AE / PCA": mse / pca if mse is not None and pca is not None and pca > 1e-9 else None,
        "images/s": m.get("images_per_s"),
        "wall time (s)": m.get("wall_s"),
    }
    if any(is_sequence(t) for t in models.values()):
        row |= {"sequence accuracy": m.get("sequence_accuracy"), "token accuracy": m.get("token_accuracy")}
    if any(metrics[n].get("source_cost_per_item") is not None for n in models):
        row |= {"seed cost / item": m.get("source_cost_per_item"), "seed total cost": m.get("source_total_cost")}
    rows.append(row)
fmt = {
    "test MSE": "%.5f",
    "PCA MSE": "%.5f",
    "PSNR (dB)": "%.2f",
    "AE / PCA": "%.3f",
    "images/s": "%.0f",
    "wall time (s)": "%.1f",
    "sequence accuracy": "percent",
    "token accuracy": "percent",
    "seed cost / item": "%.2f",
    "seed total cost": "%.4g",
}
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
