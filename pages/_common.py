"""What every page shares: the job registry, cached models and datasets, the
model picker and error display. Not a page itself (app.py lists the pages)."""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from aecore.data import DataBundle, load_dataset
from aecore.errors import AecoreError
from aecore.explore import catalogue
from aecore.explore.figures import to_png_array
from aecore.models.trained import TrainedModel
from aecore.runs.request import model_data
from aecore.store import ModelStore


def ensure_navigation() -> None:
    """Every page calls this first. Streamlit treats a folder named ``pages/`` as
    old-style auto-discovered pages until some script calls ``st.navigation`` (and
    AppTest resets that before every run). A first visit straight to ``/latent``
    would then run that file alone, without app.py, under a sidebar listing every
    file of the folder. Turn that mode off and rerun, so app.py's navigation runs."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the flag has no such mode
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


ensure_navigation()

# Where the dashboard reads MNIST-like files: AECORE_DATA_DIR, else aecore's default.
DATA_DIR = os.environ.get("AECORE_DATA_DIR") or None
MODEL_KEY = "model_name"  # the model chosen on one page stays chosen on the others


def store() -> ModelStore:
    return ModelStore()


@st.cache_resource(max_entries=8, show_spinner=False)
def _load_model(name: str, stamp: float, root: str) -> TrainedModel:
    tm = ModelStore(root).load(name, device="cpu")
    tm.model.eval()
    return tm


def load_model(name: str) -> TrainedModel:
    """A saved model on the CPU, cached until its weights file changes (e.g. after 'continue training')."""
    return _load_model(name, store().weights_stamp(name), str(store().root))


@st.cache_resource(max_entries=6, show_spinner="Loading the dataset...")
def _load_bundle(name: str, data_dir: str | None) -> DataBundle:
    return load_dataset(name, data_dir)


def load_bundle(name: str) -> DataBundle:
    return _load_bundle(name, DATA_DIR)


def available_datasets(kind: str | None = None) -> list[str]:
    return catalogue.available_datasets(DATA_DIR, kind)


def show_error(e: Exception, what: str = "") -> None:
    """A user's mistake as one clear message; never a stack trace."""
    prefix = f"{what}: " if what else ""
    if isinstance(e, AecoreError):
        st.error(prefix + str(e), icon="⚠️")
    else:
        st.error(f"{prefix}{type(e).__name__}: {e}", icon="⚠️")


def pick_model(kind: str | tuple[str, ...] | None = None, key: str = MODEL_KEY, label: str = "Model"):
    """A selectbox over the saved models (optionally of one data kind: image, vector,
    sequence), newest first. Shows what to do and returns None when there is none."""
    kinds = (kind,) if isinstance(kind, str) else kind
    names = catalogue.model_names(store(), kinds)
    if not names:
        st.info(catalogue.no_model_hint(kinds), icon="ℹ️")
        st.page_link("pages/train.py", label="Go to Train", icon="🏋️")
        return None
    current = st.session_state.get(key)
    name = st.selectbox(label, names, index=names.index(current) if current in names else 0, key=f"_pick_{key}")
    st.session_state[key] = name
    try:
        tm = load_model(name)
    except AecoreError as e:
        show_error(e, f"cannot load '{name}'")
        return None
    st.caption(catalogue.model_caption(tm))
    return tm


@st.cache_resource(max_entries=6, show_spinner="Loading the model's dataset...")
def _model_data(dataset: str, seed: int, val_fraction: float | None, data_dir: str | None, _tm) -> DataBundle:
    return model_data(_tm, data_dir)


def model_bundle(tm: TrainedModel) -> DataBundle | None:
    """The dataset a model was trained on, split as it was then (the test split
    ``python -m aecore eval`` scores), or a message when it is not here."""
    try:
        return _model_data(tm.meta.dataset, tm.meta.seed, tm.meta.val_fraction, DATA_DIR, tm)
    except AecoreError as e:
        show_error(e, f"the dataset '{tm.meta.dataset}' of this model is not available")
        return None


def show_images(
    images: np.ndarray,
    captions: list[str] | None = None,
    scale: int = 3,
    width: int | str = "content",
    columns: int | None = None,
) -> None:
    """Show (N, C, H, W) or (N, H, W) images in [0, 1], enlarged with nearest-neighbour pixels."""
    imgs = [to_png_array(np.asarray(im), scale) for im in images]
    if columns:
        cols = st.columns(columns)
        for i, im in enumerate(imgs):
            cols[i % columns].image(im, caption=None if captions is None else captions[i], output_format="PNG")
    else:
        st.image(imgs, caption=captions, width=width, output_format="PNG")
