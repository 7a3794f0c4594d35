"""Generate (engine: aecore/explore/generate.py): sliders, interpolation, a latent grid, VAE samples."""

import numpy as np
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import generate as engine
from pages._common import ensure_navigation, model_bundle, pick_model, show_error, store

ensure_navigation()  # before anything is drawn: see pages/_common.py

RESET = {"icon": ":material/restart_alt:", "help": "Back to the prior's centre (VAE) or the test codes' median."}
RANDOM_HELP = "A draw from the prior (VAE) or the code of a random test image."
VAE_RANGES = "Ranges: the prior's ±3 standard deviations. Start: the origin."
AE_RANGES = "Ranges: the 1st to 99th percentile of the test codes, widened by 10%. Start: the median test code."
PNG = {"output_format": "PNG"}  # Streamlit's "auto" picks JPEG for arrays, which smears the enlarged pixels
NO_PRIOR = (
    "This model is not a VAE: its training never asked the codes to follow a known distribution, so there is no "
    "prior to draw from, and random codes mostly decode to noise. Use the sliders or the grid, or train a "
    "`vae-mlp` model to sample new images."
)

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


@st.cache_data(max_entries=8, show_spinner="Encoding the test set...")
def reference_codes(_tm, _bundle, name: str, stamp: int, root: str) -> np.ndarray:  # name, stamp, root: the key
    return engine.reference_codes(_tm, _bundle)


def init_state(key: str, value, lo, hi) -> None:  # the value lives in session_state (no value=), clamped
    v = st.session_state.get(key, value)
    st.session_state[key] = value if not isinstance(v, (int, float)) else type(value)(min(max(v, lo), hi))


d, vae = tm.model.latent_dim, tm.model.is_variational
ident = (tm.name or "", store().weights_stamp(tm.name or ""), str(store().root))
codes = reference_codes(tm, bundle, *ident)
try:
    ranges, centre = engine.slider_state(tm, codes)
except AecoreError as e:
    show_error(e, "cannot find the latent ranges")
    st.stop()

# The code being decoded lives in session_state (hidden dimensions included) and
# is reset when another model is chosen; slider keys are refilled from it.
if st.session_state.get("gen_model") != ident:
    st.session_state["gen_model"] = ident
    st.session_state["gen_code"] = centre.copy()
    for k in [k for k in st.session_state if str(k).startswith(("gen_z", "gen_d", "gen_a", "gen_b"))]:
        del st.session_state[k]


def set_code(z: np.ndarray | None = None) -> None:
    """A button callback (no code: a random one); it runs before the sliders exist, so their keys may be overwritten."""
    z = engine.random_code(tm, codes, np.random.default_rng()) if z is None else z
    st.session_state["gen_code"] = z.astype(np.float32)
    for i in range(d):
        st.session_state.pop(f"gen_z{i}", None)


def draw_samples() -> None:  # a new seed, kept with the model it was drawn for
    st.session_state["gen_samples"] = (ident, int(np.random.default_rng().integers(2**31)))


tab_sl, tab_int, tab_grid, tab_samp = st.tabs(["Sliders", "Interpolation", "Grid", "Random samples"])

with tab_sl:
    z = st.session_state["gen_code"]
    dims = list(range(d))
    if d > engine.MAX_SLIDERS:
        label = f"Dimensions to move (at most {engine.MAX_SLIDERS} of {d}; the rest stay where they are)"
        kw = {"max_selections": engine.MAX_SLIDERS, "format_func": lambda i: f"z{i}", "key": "gen_dims"}
        dims = st.multiselect(label, dims, default=engine.busiest_dims(codes), **kw)
    left, right = st.columns([3, 2])
    with left:
        b1, b2, _ = st.columns([1, 1, 2])
        b1.button("Reset", key="gen_reset", on_click=set_code, args=(centre,), **RESET)
        b2.button("Random point", key="gen_random", on_click=set_code, icon="🎲", help=RANDOM_HELP)
        cols = st.columns(2)
        for n_, i in enumerate(dims):
            lo, hi = (float(v) for v in ranges[i])
            init_state(f"gen_z{i}", float(z[i]), lo, hi)
            z[i] = cols[n_ % 2].slider(f"z{i}", lo, hi, step=(hi - lo) / 100, format="%.2f", key=f"gen_z{i}")
        st.caption(VAE_RANGES if vae else AE_RANGES)
    with right:
        try:
            st.image(engine.decoded_picture(tm, z), "decoded", **PNG)
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
    try:
        picture = engine.interpolation_picture(tm, bundle, a, b, steps)
        st.image(picture, "through the latent space (top) · pixel cross-fade (bottom)", **PNG)
        st.caption(
            "Each image of the top row decodes a code on the straight line between the two images' codes; the bottom "
            "row only mixes their pixels. Where the top row stays a plausible image, the latent space is smooth there."
        )
    except AecoreError as e:
        show_error(e, "cannot interpolate")

with tab_grid:
    c1, c2, c3 = st.columns(3)
    d0 = c1.selectbox("Rows move", range(d), index=0, format_func=lambda i: f"z{i}", key="gen_d0")
    d1 = c2.selectbox("Columns move", range(d), index=min(1, d - 1), format_func=lambda i: f"z{i}", key="gen_d1")
    n = c3.slider("Grid size", 2, 20, 10, key="gen_grid_n", persist_state="session")
    try:
        picture = engine.grid_picture(tm, (d0, d1), n, ranges, st.session_state["gen_code"])
        st.image(picture, f"{n}×{n} grid: z{d0} down, z{d1} across", **PNG)
        st.caption("The other dimensions stay at the slider values; each axis spans the slider's range.")
    except AecoreError as e:
        show_error(e, "cannot draw the grid")

with tab_samp:
    if not vae:
        st.info(NO_PRIOR, icon="ℹ️")
        st.stop()
    c1, c2 = st.columns([3, 1])
    k = c1.slider("Samples", 4, 64, 16, step=4, key="gen_sample_n", persist_state="session")
    c2.button("Draw samples", key="gen_sample", type="primary", icon="🎲", on_click=draw_samples)
    drawn = st.session_state.get("gen_samples")
    if drawn and drawn[0] == ident:
        st.image(engine.samples_picture(tm, k, int(drawn[1])), f"{k} samples from the prior N(0, I)", **PNG)
    else:
        st.caption("Draw codes from the prior N(0, I) and decode them: images no one drew.")
