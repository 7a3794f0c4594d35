"""What every page shares: the job registry, cached models and datasets, the
model picker and error display. Not a page itself (app.py lists the pages)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import streamlit as st

from aecore.data import DATASETS, DataBundle, load_dataset
from aecore.errors import AecoreError
from aecore.explore.figures import to_png_array
from aecore.models.trained import TrainedModel
from aecore.runs.jobs import JobRegistry
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


# A run whose browser went away (no page of its session has run for this long) is
# stopped and saved as far as it got; finished runs are listed for KEEP_FINISHED_S.
ABANDON_AFTER_S = float(os.environ.get("AECORE_ABANDON_AFTER_S", 1800))
KEEP_FINISHED_S = float(os.environ.get("AECORE_KEEP_FINISHED_S", 6 * 3600))
HEARTBEAT_S = min(60.0, max(1.0, ABANDON_AFTER_S / 4))
MY_JOBS = "_my_jobs"  # ids of the runs this browser session started


@st.cache_resource
def registry() -> JobRegistry:
    """One registry per server process: every session sees every job."""
    reg = JobRegistry(abandon_after_s=ABANDON_AFTER_S, keep_finished_s=KEEP_FINISHED_S)
    reg.start_janitor()
    return reg


def remember_job(job_id: str) -> None:
    """This session started the run: keep it alive while the session is."""
    st.session_state[MY_JOBS] = [*st.session_state.get(MY_JOBS, []), job_id]


def keep_my_jobs_alive() -> None:
    """Called by app.py on every run of every page, and by a quiet heartbeat while a
    run of this session is active, so a run is only abandoned when its browser is gone."""
    reg = registry()
    live = [j for j in (reg.get(i) for i in st.session_state.get(MY_JOBS, [])) if j is not None and j.view().active]
    for j in live:
        j.touch()
    st.session_state[MY_JOBS] = [j.id for j in live]
    if live:
        _heartbeat()


@st.fragment(run_every=HEARTBEAT_S)
def _heartbeat() -> None:
    reg = registry()
    for i in st.session_state.get(MY_JOBS, []):
        j = reg.get(i)
        if j is not None:
            j.touch()


def store() -> ModelStore:
    return ModelStore()


def _weights_stamp(name: str) -> float:
    p = store().path(name) / "weights.safetensors"
    return p.stat().st_mtime_ns if p.exists() else 0.0


@st.cache_resource(max_entries=8, show_spinner=False)
def _load_model(name: str, stamp: float, root: str) -> TrainedModel:
    tm = ModelStore(root).load(name, device="cpu")
    tm.model.eval()
    return tm


def load_model(name: str) -> TrainedModel:
    """A saved model on the CPU, cached until its weights file changes (e.g. after 'continue training')."""
    return _load_model(name, _weights_stamp(name), str(store().root))


@st.cache_resource(max_entries=6, show_spinner="Loading the dataset...")
def _load_bundle(name: str, data_dir: str | None) -> DataBundle:
    return load_dataset(name, data_dir)


def load_bundle(name: str) -> DataBundle:
    return _load_bundle(name, DATA_DIR)


def available_datasets(kind: str | None = None) -> list[str]:
    """Registered datasets whose files are present (built-ins always are)."""
    return [n for n, d in DATASETS.items() if d.available(DATA_DIR) and (kind is None or d.kind == kind)]


def show_error(e: Exception, what: str = "") -> None:
    """A user's mistake as one clear message; never a stack trace."""
    prefix = f"{what}: " if what else ""
    if isinstance(e, AecoreError):
        st.error(prefix + str(e), icon="⚠️")
    else:
        st.error(f"{prefix}{type(e).__name__}: {e}", icon="⚠️")


def pick_model(
    kind: str | tuple[str, ...] | None = None, key: str = MODEL_KEY, label: str = "Model"
) -> TrainedModel | None:
    """A selectbox over the saved models (optionally of one data kind: image,
    vector, sequence). Shows what to do and returns None when there is none."""
    kinds = (kind,) if isinstance(kind, str) else kind
    infos = [i for i in store().list() if i.ok]
    names = [i.name for i in infos if kinds is None or _info_kind(i) in kinds]
    if not names:
        what = f" of {' or '.join(kinds)} data" if kinds else ""
        example = {"sequence": "--preset seq2seq-lstm", "vector": "--preset manifold-1d --dataset helix3d"}.get(
            kinds[0] if kinds and len(kinds) == 1 else "", "--preset vanilla --dataset digits"
        )
        st.info(
            f"No saved model{what} yet. Train one on the Train page first "
            f"(or from the command line: `python -m aecore train {example}`).",
            icon="ℹ️",
        )
        st.page_link("pages/train.py", label="Go to Train", icon="🏋️")
        return None
    current = st.session_state.get(key)
    index = names.index(current) if current in names else 0
    name = st.selectbox(label, names, index=index, key=f"_pick_{key}")
    st.session_state[key] = name
    try:
        tm = load_model(name)
    except AecoreError as e:
        show_error(e, f"cannot load '{name}'")
        return None
    st.caption(model_caption(tm))
    return tm


def _info_kind(info) -> str:
    if info.data_kind:
        return info.data_kind
    spec = DATASETS.get(info.dataset or "")
    return spec.kind if spec is not None else "image"


def model_caption(tm: TrainedModel) -> str:
    m, meta = tm.metrics, tm.meta
    parts = [
        f"preset {meta.preset or '?'}",
        f"dataset {meta.dataset or '?'}",
        f"{tm.model.config.kind}",
        f"code size {tm.model.latent_dim}",
        f"{len(tm.history)} epoch(s)",
    ]
    if m.get("test_mse") is not None:
        parts.append(f"test MSE {m['test_mse']:.4f}")
    return " · ".join(parts)


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


def enlarge(img: np.ndarray, width: int = 640) -> np.ndarray:
    """A uint8 picture scaled up by whole pixels, so small images stay sharp on screen."""
    f = max(1, width // max(img.shape[1], 1))
    return img.repeat(f, 0).repeat(f, 1)


def show_grid(grid: np.ndarray, caption: str | None = None, scale: int = 3, width: int | str = "content") -> None:
    # PNG: Streamlit's default for arrays is JPEG, which blurs enlarged pixels.
    st.image(to_png_array(grid, scale), caption=caption, width=width, output_format="PNG")


ROOT = Path(__file__).resolve().parents[1]
