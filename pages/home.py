"""Home: what the app does, the compute device, presets, datasets, saved models, and a quick demo."""

import pandas as pd
import streamlit as st

from aecore.data import DATASETS, resolve_data_dir
from aecore.device import describe_device
from aecore.presets import PRESETS
from aecore.runs.request import TrainRequest
from aecore.store import ModelStore
from pages._common import ensure_navigation, load_model
from pages._job_panel import attach_run, registry, start_run
from pages._run_view import run_panel

ensure_navigation()  # before anything is drawn: see pages/_common.py

DEMO = "demo-vanilla-digits"

st.title("Autoencoder Studio")
st.caption("Train autoencoders live on your GPU or CPU, then explore what they learned.")

store = ModelStore()
left, mid, right = st.columns(3)
kind, _, detail = describe_device().partition(": ")
left.metric("Compute device", kind, help=detail)
left.caption(detail)
mid.metric("Presets", len(PRESETS))

st.subheader("Quick start")
st.write(
    "Train the seed-003 `vanilla` autoencoder (784-64-784 becomes 64-32-64 on 8x8 digits) "
    "on scikit-learn's built-in digits: no download, a few seconds on a CPU."
)
epochs = st.slider("Epochs", 1, 100, 30, key="home_epochs")
job = attach_run("home_job")
if st.button("Train a demo model", type="primary", key="home_train", disabled=bool(job and job.view().active)):
    # A run of its own like any other (its own process, not this page's thread); the demo name is reused.
    request = TrainRequest(preset="vanilla", dataset="digits", epochs=epochs, batch_size=64, lr=3e-3, latent_dim=32)
    if start_run("home_job", request, DEMO, overwrite=True):
        st.rerun()
right.metric("Saved models", len(store.names()))
run_panel(job, "home", explore_links=True)
done = job.view() if job is not None else None
if done is not None and done.saved_as and not done.active:
    tm = load_model(done.saved_as)
    m = tm.metrics
    c1, c2, c3 = st.columns(3)
    c1.metric("Test MSE", f"{m['test_mse']:.4f}")
    c2.metric(f"PCA-{m['pca_components']} MSE", f"{m['pca_test_mse']:.4f}")
    c3.metric("Images/s", f"{m['images_per_s']:,.0f}")

st.subheader("What you can do")
tour = [
    ("pages/train.py", "🏋️ Train", "a preset or your own design, live curves, stop, continue"),
    ("pages/reconstruct.py", "🔁 Reconstruct", "test images, your uploads, denoising, drawing"),
    ("pages/latent.py", "🌌 Latent space", "codes coloured by label; click a point to decode it"),
    ("pages/generate.py", "🎛️ Generate", "latent sliders, interpolation, grids, VAE samples"),
    ("pages/weights.py", "🧩 Weights", "first-layer features and convolution filters"),
    ("pages/anomalies.py", "🚨 Anomalies", "reconstruction error as an anomaly score"),
    ("pages/sequences.py", "🔤 Sequences", "the LSTM sequence autoencoder"),
    ("pages/compare.py", "📊 Compare", "loss curves and test metrics beside PCA"),
    ("pages/data.py", "🗂️ Data", "browse datasets; manifold demos in 2-D and 3-D"),
]
cols = st.columns(3)
for i, (page, label, what) in enumerate(tour):
    with cols[i % 3]:
        st.page_link(page, label=label)
        st.caption(what)

active = [j.view() for j in registry().jobs() if j.view().active]
if active:
    st.subheader("Training now")
    for v in active:
        st.page_link(
            "pages/train.py",
            label=f"{v.name}: {v.status}, epoch {v.epoch}/{v.epochs}",
            query_params={"job": v.id},
            icon="🔄",
        )

st.subheader("Presets")
st.dataframe(
    pd.DataFrame(
        [
            {"preset": p.name, "source": p.source or "-", "dataset": p.dataset, "model": p.summary}
            for p in PRESETS.values()
        ]
    ),
    hide_index=True,
    width="stretch",
)
st.subheader("Datasets")
st.dataframe(
    pd.DataFrame(
        [
            {"dataset": d.name, "kind": d.kind, "available": d.available(), "description": d.description}
            for d in DATASETS.values()
        ]
    ),
    hide_index=True,
    width="stretch",
)
st.caption(
    f"MNIST, Fashion-MNIST and KMNIST are read from `{resolve_data_dir().resolve()}` "
    "(set AECORE_DATA_DIR to use another folder) in torchvision's layout `<Name>/raw/*-ubyte.gz`."
)
st.subheader("Saved models")
infos = store.list()
if infos:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": i.name,
                    "preset": i.preset,
                    "dataset": i.dataset,
                    "test MSE": i.metrics.get("test_mse"),
                    "PCA MSE": i.metrics.get("pca_test_mse"),
                    "status": "ok" if i.ok else i.error,
                }
                for i in infos
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.info("No saved models yet: train one above or with `python -m aecore train --preset vanilla --dataset digits`.")
