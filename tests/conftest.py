"""Shared fixtures: tiny data, a private model store, and the shared MNIST files.

No test writes into the repository's ``models_store/``: ``AECORE_STORE`` points
at a temporary folder for the whole session, and child processes inherit it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import torch

# On a small shared CPU, torch's default of one thread per core makes its
# threads spin against each other (a tiny conv step went from 5 ms to 1 s on
# a loaded 2-core box); the tests measure behaviour, not throughput.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AECORE_TEST_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@contextlib.contextmanager
def store_env(root: Path):
    """Point AECORE_STORE at ``root`` for the duration, then restore what was there."""
    old = os.environ.get("AECORE_STORE")
    os.environ["AECORE_STORE"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("AECORE_STORE", None)
        else:
            os.environ["AECORE_STORE"] = old


@pytest.fixture(scope="session", autouse=True)
def private_store(tmp_path_factory):
    """Every ModelStore() without a root, in this process and in child processes, lands here."""
    with store_env(tmp_path_factory.mktemp("session_store")) as root:
        yield root


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits: (N, 1, 8, 8) float32 in [0, 1], loads in a second, no network."""
    from aecore.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def store(tmp_path):
    from aecore.store import ModelStore

    return ModelStore(tmp_path / "store")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (override with AECORE_TEST_DATA_DIR)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_dir(data_dir) -> Path:
    if not (data_dir / "MNIST" / "raw").is_dir():
        pytest.skip(
            f"{data_dir / 'MNIST' / 'raw'} is absent: set AECORE_TEST_DATA_DIR to a folder "
            "holding MNIST/raw/*-ubyte.gz to run the MNIST tests."
        )
    return data_dir


T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout_s: float, what: str | Callable[[], str], interval_s: float = 0.05
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Tests wait on a condition, never for a fixed time: a fixed sleep is too short
    on a loaded machine and wasted on an idle one. Past ``timeout_s`` this raises
    an AssertionError naming ``what`` was awaited (a callable is asked only then,
    so the message can describe the state at the deadline). The predicate is
    always tried once more at the deadline, so a slow last poll is not lost."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {described}")
        # the pause between polls, bounded by the deadline: not a synchronisation
        time.sleep(max(0.0, min(interval_s, deadline - time.monotonic())))


def run_python(
    args: list[str], env: dict | None = None, timeout: float = 120, cwd: Path = REPO, **kw
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` with the project's interpreter from the repository root."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, **kw
    )


# --- the dashboard ---------------------------------------------------------------------
APP = REPO / "app.py"

# Tiny models every page test can explore: name -> (preset, dataset, epochs, limit, latent_dim).
PAGE_MODELS = {
    "ae-digits": ("vanilla", "digits", 30, None, 8),
    "vae-digits": ("vae-mlp", "digits", 20, None, 2),
    "conv-digits": ("conv-bce", "digits", 1, 400, None),
    "line-1d": ("manifold-1d", "line2d", 5, None, None),
    "helix-1d": ("manifold-1d", "helix3d", 5, None, None),
    "seq-reverse": ("seq2seq-lstm", "reverse-seq", 1, 3000, None),
}


@pytest.fixture(scope="session")
def page_store(tmp_path_factory):
    """A store holding PAGE_MODELS, trained once per test session (a few seconds).

    Tests that use it must not delete these models; use ``page_env`` to point
    the app's ModelStore() here."""
    from aecore.runs.pipeline import train
    from aecore.runs.request import TrainRequest
    from aecore.store import ModelStore

    root = tmp_path_factory.mktemp("page_store")
    store = ModelStore(root)
    for name, (preset, dataset, epochs, limit, latent) in PAGE_MODELS.items():
        tm, result, _ = train(
            TrainRequest(preset=preset, dataset=dataset, epochs=epochs, limit=limit, latent_dim=latent, device="cpu")
        )
        assert result.ok, (name, result.message)
        store.save(name, tm)
    return root


@pytest.fixture
def page_env(page_store):
    """AECORE_STORE -> the page store for one test."""
    with store_env(page_store) as root:
        yield root


def _run_pages_through_app_py() -> None:
    """AppTest resets Streamlit's "pages/ folder" flag before every run, so from the
    second run on it would run a page file alone (old-style multipage), skipping
    app.py. A served app clears the flag for good on its first st.navigation call;
    make AppTest do the same, so that tests run pages as a browser gets them."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    if getattr(app_test.PagesManager, "_aecore_v2", False):
        return

    class V2PagesManager(PagesManager):
        _aecore_v2 = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    app_test.PagesManager = V2PagesManager


def new_app(timeout: float = 60):
    """An AppTest of the whole app (the entry point), as Streamlit's docs ask for multipage apps."""
    from streamlit.testing.v1 import AppTest

    _run_pages_through_app_py()
    return AppTest.from_file(str(APP), default_timeout=timeout)


def open_page(page: str, timeout: float = 60, **session):
    """Run the app, switch to ``pages/<page>.py``, with optional session_state values set first."""
    at = new_app(timeout)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(f"pages/{page}.py")
    at.run()
    return at


@pytest.fixture
def media(monkeypatch):
    """file id -> bytes of every media file the app stores: AppTest's image protos carry only a URL."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            files[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return files


# The seeds' experiments (SPEC.md, "Reference presets") and the manifold demo preset:
# the CLI lists them and the engine builds each of them.
REQUIRED_PRESETS = [
    "deep-dense",
    "seq2seq-lstm",
    "vae-mlp",
    "basic-softplus",
    "gaussian-noise",
    "sparse-kl",
    "vanilla",
    "multilayer",
    "conv",
    "sparse-l1",
    "denoising-conv",
    "manifold-1d",
]


@pytest.fixture(scope="session")
def seed3_store(tmp_path_factory):
    """A store with one model, 's3', trained with seed 3: its digits split is not the
    default (seed 0) one, so a page that loads the dataset with seed 0 shows other items."""
    from aecore.runs.pipeline import train_and_save
    from aecore.runs.request import TrainRequest
    from aecore.store import ModelStore

    root = tmp_path_factory.mktemp("seed3_store")
    request = TrainRequest(preset="vanilla", dataset="digits", epochs=2, seed=3, device="cpu")
    assert train_and_save(request, ModelStore(root), "s3").saved_as == "s3"
    return root
