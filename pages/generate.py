"""Generate: decode points of the latent space: sliders, interpolation, a grid over two dimensions, VAE samples."""

import numpy as np
import streamlit as st

from aecore.data import as_float
from aecore.errors import AecoreError
from aecore.explore import figures, inference
from aecore.explore.figures import to_png_array
from pages._common import ensure_navigation, model_bundle, pick_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py

MAX_SLIDERS = 16
MAX_CODES = 10000  # test items encoded for the slider ranges (all of MNIST's test set)
IMAGE_PX = 256  # the slider image is enlarged to about this width
GRID_PX = 560

st.title("Generate")
st.caption(
    "The decoder turns any code into an image, not only the codes of real data. Move through the "
    "latent space and see what each direction means; a VAE can also draw new codes from its prior."
)

tm = pick_model(kind="image")
if tm is None:
    st.stop()
bundle = model_bundle(tm)
if bundle is None:
    st.stop()


def weights_stamp(name: str) -> int:
    p = store().path(name) / "weights.safetensors"
    return p.stat().st_mtime_ns if p.exists() else 0


@st.cache_data(max_entries=8, show_spinner="Encoding the test set...")
def test_codes(_tm, _bundle, name: str, stamp: int, root: str) -> np.ndarray:
    """Codes of the test set (N, latent_dim); ``name``, ``stamp`` and ``root`` key the cache."""
    return inference.encode(_tm, _bundle.test.x[:MAX_CODES])


def enlarge(img: np.ndarray, px: int) -> np.ndarray:
    """uint8 (H, W[, 3]) -> nearest-neighbour enlarged to about ``px`` wide."""
    s = max(1, px // img.shape[1])
    return img.repeat(s, 0).repeat(s, 1)


def show(img: np.ndarray, caption: str, px: int) -> None:
    # PNG: Streamlit's "auto" picks JPEG for arrays, which smears the enlarged pixels
    st.image(enlarge(img, px), caption=caption, output_format="PNG")


def init_state(key: str, value, lo, hi) -> None:
    """The widget's value lives in session_state (no ``value=``), clamped into this model's range."""
    v = st.session_state.get(key, value)
    st.session_state[key] = value if not isinstance(v, (int, float)) else type(value)(min(max(v, lo), hi))


d, vae = tm.model.latent_dim, tm.model.is_variational
ident = (tm.name or "", weights_stamp(tm.name or ""), str(store().root))
codes = test_codes(tm, bundle, *ident)
try:
    ranges = inference.latent_ranges(tm, codes)  # (d, 2): ±3 for a VAE, the codes' 1st..99th percentiles otherwise
except AecoreError as e:
    show_error(e, "cannot find the latent ranges")
    st.stop()
centre = np.zeros(d, np.float32) if vae else np.median(codes, 0).astype(np.float32)

# The code being decoded lives in session_state (hidden dimensions included) and
# is reset when another model is chosen; slider keys are refilled from it.
if st.session_state.get("gen_model") != ident:
    st.session_state["gen_model"] = ident
    st.session_state["gen_code"] = centre.copy()
    for k in [k for k in st.session_state if str(k).startswith(("gen_z", "gen_d", "gen_a", "gen_b"))]:
        del st.session_state[k]


def set_code(z: np.ndarray) -> None:
    """A button callback: runs before the sliders exist, so their keys may be overwritten."""
    st.session_state["gen_code"] = z.astype(np.float32)
    for i in range(d):
        st.session_state.pop(f"gen_z{i}", None)


def random_code() -> np.ndarray:
    rng = np.random.default_rng()
    # a VAE's prior is N(0, I); a plain autoencoder has none, so a random test item's code stands in
    return rng.standard_normal(d).astype(np.float32) if vae else codes[rng.integers(len(codes))]


tab_sl, tab_int, tab_grid, tab_samp = st.tabs(["Sliders", "Interpolation", "Grid", "Random samples"])

with tab_sl:
    z = st.session_state["gen_code"]
    if d > MAX_SLIDERS:
        # dead units (no spread over the test set) are the least interesting to move
        busiest = sorted(np.argsort(-codes.std(0))[:MAX_SLIDERS].tolist())
        dims = st.multiselect(
            f"Dimensions to move (at most {MAX_SLIDERS} of {d}; the rest stay where they are)",
            list(range(d)),
            default=busiest,
            max_selections=MAX_SLIDERS,
            format_func=lambda i: f"z{i}",
            key="gen_dims",
        )
    else:
        dims = list(range(d))
    left, right = st.columns([3, 2])
    with left:
        b1, b2, _ = st.columns([1, 1, 2])
        b1.button(
            "Reset",
            key="gen_reset",
            on_click=set_code,
            args=(centre,),
            icon=":material/restart_alt:",
            help="Back to the prior's centre (VAE) or the test codes' median.",
        )
        b2.button(
            "Random point",
            key="gen_random",
            on_click=lambda: set_code(random_code()),
            icon="🎲",
            help="A draw from the prior (VAE) or the code of a random test image.",
        )
        cols = st.columns(2)
        for n_, i in enumerate(dims):
            lo, hi = (float(v) for v in ranges[i])
            init_state(f"gen_z{i}", float(z[i]), lo, hi)
            z[i] = cols[n_ % 2].slider(f"z{i}", lo, hi, step=(hi - lo) / 100, format="%.2f", key=f"gen_z{i}")
        st.caption(
            (
                "Ranges: the prior's ±3 standard deviations."
                if vae
                else "Ranges: the 1st to 99th percentile of the test codes, widened by 10%."
            )
            + (" Start: the origin." if vae else " Start: the median test code.")
        )
    with right:
        try:
            img = inference.decode(tm, z)[0]
            show(to_png_array(img), "decoded", IMAGE_PX)
        except AecoreError as e:
            show_error(e, "cannot decode")

with tab_int:
    n_test = len(bundle.test)
    c1, c2, c3 = st.columns(3)
    init_state("gen_a", 0, 0, n_test - 1)
    init_state("gen_b", min(1, n_test - 1), 0, n_test - 1)
    a = c1.number_input("From test image", 0, n_test - 1, step=1, key="gen_a")
    b = c2.number_input("To test image", 0, n_test - 1, step=1, key="gen_b")
    steps = c3.slider("Steps", 3, 16, 8, key="gen_steps", persist_state="session")
    xa, xb = as_float(bundle.test.x[a], bundle), as_float(bundle.test.x[b], bundle)
    try:
        path = inference.interpolate(tm, xa, xb, steps)  # (steps, C, H, W)
        t = np.linspace(0, 1, steps, dtype=np.float32)[:, None, None, None]
        fade = (1 - t) * xa[None] + t * xb[None]  # the same ends blended pixel by pixel, for comparison
        show(figures.image_grid([path, fade]), "through the latent space (top) · pixel cross-fade (bottom)", GRID_PX)
        st.caption(
            "Each image of the top row decodes a code on the straight line between the two images' codes; "
            "the bottom row only mixes their pixels. Where the top row stays a plausible image, the "
            "latent space is smooth there."
        )
    except AecoreError as e:
        show_error(e, "cannot interpolate")

with tab_grid:
    c1, c2, c3 = st.columns(3)
    d0 = c1.selectbox("Rows move", range(d), index=0, format_func=lambda i: f"z{i}", key="gen_d0")
    d1 = c2.selectbox("Columns move", range(d), index=min(1, d - 1), format_func=lambda i: f"z{i}", key="gen_d1")
    n = c3.slider("Grid size", 2, 20, 10, key="gen_grid_n", persist_state="session")
    try:
        grid = inference.latent_grid(tm, (d0, d1), n, ranges=ranges, base=st.session_state["gen_code"])
        show(figures.image_grid(list(grid)), f"{n}×{n} grid: z{d0} down, z{d1} across", GRID_PX)
        st.caption("The other dimensions stay at the slider values; each axis spans the slider's range.")
    except AecoreError as e:
        show_error(e, "cannot draw the grid")

with tab_samp:
    if not vae:
        st.info(
            "This model is not a VAE: its training never asked the codes to follow a known distribution, "
            "so there is no prior to draw from, and random codes mostly decode to noise. Use the sliders "
            "or the grid, or train a `vae-mlp` model to sample new images.",
            icon="ℹ️",
        )
    else:
        c1, c2 = st.columns([3, 1])
        k = c1.slider("Samples", 4, 64, 16, step=4, key="gen_sample_n", persist_state="session")
        c2.button(
            "Draw samples",
            key="gen_sample",
            type="primary",
            icon="🎲",
            on_click=lambda: st.session_state.update(gen_samples=(ident, np.random.default_rng().integers(2**31))),
        )
        drawn = st.session_state.get("gen_samples")
        if drawn and drawn[0] == ident:
            # What model.sample(n) does (z ~ N(0, I), then decode), through inference.decode so
            # that the images come back in display space like every other view.
            zs = np.random.default_rng(drawn[1]).standard_normal((k, d)).astype(np.float32)
            imgs = inference.decode(tm, zs)
            rows = [imgs[i : i + 8] for i in range(0, k, 8)]
            show(figures.image_grid(rows), f"{k} samples from the prior N(0, I)", GRID_PX)
        else:
            st.caption("Draw codes from the prior N(0, I) and decode them: images no one drew.")
