"""Reconstruct and denoise (engine: aecore/explore/reconstruct.py): test images, uploads, noise, a canvas."""

import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import reconstruct as engine
from aecore.explore.figures import to_png_array
from pages._common import MODEL_KEY, ensure_navigation, model_bundle, pick_model, show_error, show_images

ensure_navigation()  # before anything is drawn: see pages/_common.py

# 280 px: 10x MNIST's 28, so a brush of ~20 px draws MNIST-thick strokes
CANVAS = {"height": 280, "width": 280, "drawing_mode": "freedraw", "return_image_data": True}
KEEP = {"persist_state": "session"}  # the value stays while the user visits other pages
ROW = {"horizontal": True, **KEEP}
UPLOADS = {"type": ["png", "jpg", "jpeg"], "accept_multiple_files": True}
GAIN_HELP = "The delta is the gain over the noisy input; higher is better."

st.title("Reconstruct and denoise")
st.caption(
    "What survives the bottleneck: the model squeezes each picture into its code and draws it "
    "back. Compare originals with reconstructions, try your own images, add noise, or draw."
)

tm = pick_model(kind="image")
if tm is None:
    st.stop()
shape = tuple(tm.model.config.input_shape)  # (C, H, W)
if len(shape) != 3:
    st.info("This page needs an image model; the selected model reads points or sequences.", icon="ℹ️")
    st.stop()
scale = max(2, round(96 / shape[1]))  # enlarge every image to about 96 px
bundle = model_bundle(tm)


@st.cache_data(max_entries=8, show_spinner="Scoring the test set...")
def pool_errors(name: str, token: int, _tm, _bundle):  # token: the cached model's id, new with new weights
    return engine.pool_errors(_tm, _bundle)


def show_result(v: engine.PictureView) -> None:  # (the upload), the model's input, its reconstruction, the steps
    cols = st.columns([1, 1, 1, 2] if v.original is not None else [1, 1, 2])
    if v.original is not None:
        w, h = v.original_size
        cols[0].image(v.original, caption=f"original {w}x{h}", width=min(192, v.original.shape[1]))
    c_in, c_rec, c_text = cols[-3:]
    c_in.image(to_png_array(v.prepared, scale), caption=f"model input {shape[2]}x{shape[1]}")
    c_rec.image(to_png_array(v.rec, scale), caption=f"reconstruction · MSE {v.mse:.4f}")
    with c_text:
        st.metric("Reconstruction error (MSE)", f"{v.mse:.4f}", help=f"PSNR {engine.format_db(v.psnr)}")
        st.markdown("**Preprocessing**\n" + "\n".join(f"1. {s}" for s in v.steps))


tab_test, tab_upload, tab_noise, tab_draw = st.tabs(["🖼️ Test set", "📤 Upload", "🌫️ Denoise", "✏️ Draw"])

with tab_test:
    if bundle is None:
        st.info("The test images need the model's dataset, which is not available here.", icon="ℹ️")
    else:
        left, right = st.columns([1, 2])
        pool = engine.pool_size(bundle)
        n = int(left.number_input("Images", 1, min(50, pool), min(10, pool), key="rec_n", **KEEP))
        order = right.radio("Which", list(engine.ORDERS), key="rec_order", format_func=engine.ORDERS.get, **ROW)
        try:
            errors = None if order == "first" else pool_errors(st.session_state.get(MODEL_KEY, ""), id(tm), tm, bundle)
            v = engine.items_view(tm, bundle, n, order, errors)
        except AecoreError as e:
            show_error(e, "cannot reconstruct the test images")
        else:
            m1, m2, m3 = st.columns(3)
            m1.metric("Mean MSE of these", f"{v.mean:.4f}")
            m2.metric("PSNR of these", engine.format_db(v.psnr))
            if v.pool_mean is not None:
                m3.metric(f"Mean MSE of {v.pool_size:,} test images", f"{v.pool_mean:.4f}")
            elif tm.metrics.get("test_mse") is not None:
                m3.metric("Test MSE (whole split)", f"{tm.metrics['test_mse']:.4f}")
            st.caption("Originals")
            show_images(v.originals, v.captions, scale=scale)
            st.caption("Reconstructions, with each one's mean squared error")
            show_images(v.recs, [f"MSE {e:.4f}" for e in v.errs], scale=scale)

with tab_upload:
    st.write(
        "Upload one or more pictures of any size and mode. Each is converted to the model's channels, "
        "resized to its input size and, when it is dark ink on a light page but the model was trained on "
        "light-on-dark data, inverted."
    )
    modes = engine.INVERT_MODES
    invert = st.radio("Invert colours", list(modes), key="rec_invert", format_func=modes.get, **ROW)
    files = st.file_uploader("Images (PNG or JPEG)", key="rec_upload", **UPLOADS)
    for f in files or []:
        with st.container(border=True):
            st.markdown(f"**{f.name}**")
            try:
                show_result(engine.upload_view(tm, f.getvalue(), f.name, invert))
            except AecoreError as e:
                show_error(e)

with tab_noise:
    if bundle is None:
        st.info("Denoising is shown on the test images, which need the model's dataset.", icon="ℹ️")
    else:
        std = st.slider("Noise level (standard deviation)", 0.0, 1.0, 0.5, 0.05, key="rec_noise", **KEEP)
        try:
            v = engine.denoise_view(tm, bundle, int(st.session_state.get("rec_n", 10)), std)
        except AecoreError as e:
            show_error(e, "cannot denoise")
        else:
            a, b = st.columns(2)
            a.metric("PSNR noisy vs clean", engine.format_db(v.psnr_noisy))
            gain = None if v.gain is None else f"{v.gain:+.2f} dB"
            b.metric("PSNR denoised vs clean", engine.format_db(v.psnr_denoised), delta=gain, help=GAIN_HELP)
            st.caption("Clean test images")
            show_images(v.clean, scale=scale)
            st.caption(f"Noisy: x + {std:.2f}·N(0, 1), clipped to [0, 1]")
            show_images(v.noisy, scale=scale)
            st.caption("Denoised: the model's reconstruction of the noisy images")
            show_images(v.denoised, [f"MSE {e:.4f}" for e in v.errs], scale=scale)
            if not v.trained_on_noise:
                st.caption(
                    "This model was trained on clean images; the `gaussian-noise` and `denoising-conv` "
                    "presets are trained to remove noise."
                )

with tab_draw:
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.info(
            "Drawing needs the `streamlit-drawable-canvas` package: `pip install streamlit-drawable-canvas`.", icon="ℹ️"
        )
        st.stop()
    left, right = st.columns([1, 2])
    with left:
        brush = st.slider("Brush width", 5, 50, 22, key="rec_brush", **KEEP)
        bg, fg = ("#000000", "#ffffff") if engine.dark_background(tm) else ("#ffffff", "#000000")
        canvas = st_canvas(stroke_width=brush, stroke_color=fg, background_color=bg, key="rec_canvas", **CANVAS)
    with right:
        try:
            v = engine.drawing_view(tm, canvas.image_data)  # None: nothing drawn
        except AecoreError as e:
            show_error(e, "cannot reconstruct the drawing")
            st.stop()
        if canvas.image_data is None or canvas.image_data.ndim != 3:
            st.info("Draw a digit on the canvas; its reconstruction appears here.", icon="✏️")
        elif v is None:
            st.info("The canvas is empty: draw a digit to see it reconstructed.", icon="✏️")
        else:
            show_result(v)
