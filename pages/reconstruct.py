"""Reconstruct and denoise: test images, the user's own pictures, noise, and a drawing canvas."""

import math

import numpy as np
import streamlit as st
from PIL import Image

from aecore.data import as_float
from aecore.data.raw import open_image
from aecore.errors import AecoreError
from aecore.explore import baselines, inference
from aecore.explore.figures import to_png_array
from aecore.explore.uploads import add_noise, prepare_image
from pages._common import MODEL_KEY, ensure_navigation, model_bundle, pick_model, show_error, show_images

ensure_navigation()  # before anything is drawn: see pages/_common.py

MAX_POOL = 10_000  # test items ranked for "worst"/"best": all of MNIST's test split
NOISE_SEED = 0  # one noise pattern, so reruns show the same noisy pictures
CANVAS = 280  # pixels; 10x MNIST's 28, so a brush of ~20 px draws MNIST-thick strokes

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
dark = tm.meta.dark_background
dark = True if dark is None else bool(dark)  # light strokes on black, like MNIST, unless the data say otherwise
scale = max(2, round(96 / shape[1]))  # enlarge every image to about 96 px
bundle = model_bundle(tm)
test_x = None if bundle is None else as_float(bundle.test.x[:MAX_POOL], bundle)


def fmt_db(v: float) -> str:
    return "∞ dB (identical)" if math.isinf(v) else f"{v:.2f} dB"


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


@st.cache_data(max_entries=8, show_spinner="Scoring the test set...")
def pool_errors(name: str, token: int, _tm, _x: np.ndarray) -> np.ndarray:
    """Per-item errors of the ranked pool; ``token`` (the cached model's id) changes with new weights."""
    return inference.per_item_errors(_tm, _x)


def show_result(prepared: np.ndarray, rec: np.ndarray, steps: list[str], original=None, col_titles=True) -> None:
    """One picture's row: (what came in), the model's input, its reconstruction, and what was done."""
    cols = st.columns([1, 1, 1, 2] if original is not None else [1, 1, 2])
    i = 0
    if original is not None:
        a = (np.clip(original, 0, 1) * 255).round().astype(np.uint8)  # (H, W) or (H, W, 3)
        up = max(1, 128 // max(a.shape[:2]))
        cols[0].image(
            a.repeat(up, 0).repeat(up, 1),
            caption=f"original {a.shape[1]}x{a.shape[0]}",
            width=min(192, a.shape[1] * up),
        )
        i = 1
    cols[i].image(to_png_array(prepared, scale), caption=f"model input {shape[2]}x{shape[1]}")
    err = mse(rec, prepared)
    cols[i + 1].image(to_png_array(rec, scale), caption=f"reconstruction · MSE {err:.4f}")
    with cols[i + 2]:
        st.metric("Reconstruction error (MSE)", f"{err:.4f}", help=f"PSNR {fmt_db(baselines.psnr(err))}")
        st.markdown("**Preprocessing**\n" + "\n".join(f"1. {s}" for s in steps))


tab_test, tab_upload, tab_noise, tab_draw = st.tabs(["🖼️ Test set", "📤 Upload", "🌫️ Denoise", "✏️ Draw"])

with tab_test:
    if test_x is None:
        st.info("The test images need the model's dataset, which is not available here.", icon="ℹ️")
    else:
        left, right = st.columns([1, 2])
        n = int(
            left.number_input(
                "Images", 1, min(50, len(test_x)), min(10, len(test_x)), key="rec_n", persist_state="session"
            )
        )
        order = right.radio(
            "Which",
            ["first", "worst", "best"],
            horizontal=True,
            key="rec_order",
            persist_state="session",
            format_func={
                "first": "First in the test set",
                "worst": "Worst reconstructed",
                "best": "Best reconstructed",
            }.get,
        )
        try:
            if order == "first":
                idx = np.arange(n)
                errs = inference.per_item_errors(tm, test_x[:n])
                pool_mean = None
            else:
                all_errs = pool_errors(st.session_state.get(MODEL_KEY, ""), id(tm), tm, test_x)
                ranked = np.argsort(all_errs, kind="stable")
                idx = ranked[::-1][:n] if order == "worst" else ranked[:n]
                errs, pool_mean = all_errs[idx], float(all_errs.mean())
            rec = inference.reconstruct(tm, test_x[idx])
        except AecoreError as e:
            show_error(e, "cannot reconstruct the test images")
        else:
            m1, m2, m3 = st.columns(3)
            m1.metric("Mean MSE of these", f"{errs.mean():.4f}")
            m2.metric("PSNR of these", fmt_db(baselines.psnr(errs.mean())))
            if pool_mean is not None:
                m3.metric(f"Mean MSE of {len(test_x):,} test images", f"{pool_mean:.4f}")
            elif tm.metrics.get("test_mse") is not None:
                m3.metric("Test MSE (whole split)", f"{tm.metrics['test_mse']:.4f}")
            labels = bundle.test.labels
            names = bundle.class_names
            caps = [f"#{i}" + ("" if labels is None else f" · {names[labels[i]] if names else labels[i]}") for i in idx]
            st.caption("Originals")
            show_images(test_x[idx], caps, scale=scale)
            st.caption("Reconstructions, with each one's mean squared error")
            show_images(rec, [f"MSE {e:.4f}" for e in errs], scale=scale)

with tab_upload:
    st.write(
        "Upload one or more pictures of any size and mode. Each is converted to the model's channels, "
        "resized to its input size and, when it is dark ink on a light page but the model was trained on "
        "light-on-dark data, inverted."
    )
    invert = st.radio(
        "Invert colours",
        ["auto", "yes", "no"],
        horizontal=True,
        key="rec_invert",
        persist_state="session",
        format_func={"auto": "auto (when the background is light)", "yes": "always", "no": "never"}.get,
    )
    files = (
        st.file_uploader(
            "Images (PNG or JPEG)", type=["png", "jpg", "jpeg"], accept_multiple_files=True, key="rec_upload"
        )
        or []
    )
    for f in files:
        with st.container(border=True):
            st.markdown(f"**{f.name}**")
            try:
                prep = prepare_image(open_image(f.getvalue(), name=f.name), shape, invert=invert, dark_background=dark)
                rec = inference.reconstruct(tm, prep.array[None])[0]
            except AecoreError as e:
                show_error(e)
                continue
            show_result(prep.array, rec, prep.steps, original=prep.original)

with tab_noise:
    if test_x is None:
        st.info("Denoising is shown on the test images, which need the model's dataset.", icon="ℹ️")
    else:
        std = st.slider(
            "Noise level (standard deviation)", 0.0, 1.0, 0.5, 0.05, key="rec_noise", persist_state="session"
        )
        n = min(int(st.session_state.get("rec_n", 10)), len(test_x))
        clean = test_x[:n]
        try:
            noisy = add_noise(clean, std, seed=NOISE_SEED)  # x + std·N(0, 1), clipped to [0, 1]
            denoised = inference.reconstruct(tm, noisy)
        except AecoreError as e:
            show_error(e, "cannot denoise")
        else:
            p_noisy, p_out = baselines.psnr(mse(noisy, clean)), baselines.psnr(mse(denoised, clean))
            gain = None if math.isinf(p_noisy) or math.isinf(p_out) else f"{p_out - p_noisy:+.2f} dB"
            a, b = st.columns(2)
            a.metric("PSNR noisy vs clean", fmt_db(p_noisy))
            b.metric(
                "PSNR denoised vs clean",
                fmt_db(p_out),
                delta=gain,
                help="The delta is the gain over the noisy input; higher is better.",
            )
            st.caption("Clean test images")
            show_images(clean, scale=scale)
            st.caption(f"Noisy: x + {std:.2f}·N(0, 1), clipped to [0, 1]")
            show_images(noisy, scale=scale)
            st.caption("Denoised: the model's reconstruction of the noisy images")
            show_images(
                denoised, [f"MSE {e:.4f}" for e in ((denoised - clean) ** 2).reshape(n, -1).mean(1)], scale=scale
            )
            if not any(k in tm.meta.preset for k in ("noise", "denois")):
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
    else:
        bg, fg = ("#000000", "#ffffff") if dark else ("#ffffff", "#000000")
        left, right = st.columns([1, 2])
        with left:
            brush = st.slider("Brush width", 5, 50, 22, key="rec_brush", persist_state="session")
            canvas = st_canvas(
                stroke_width=brush,
                stroke_color=fg,
                background_color=bg,
                height=CANVAS,
                width=CANVAS,
                drawing_mode="freedraw",
                return_image_data=True,
                key="rec_canvas",
            )
        with right:
            data = canvas.image_data
            if data is None or data.ndim != 3:
                st.info("Draw a digit on the canvas; its reconstruction appears here.", icon="✏️")
            else:
                rgba = data.astype(np.float32) / 255.0
                if rgba.shape[2] == 4:  # composite onto the canvas colour: (H, W, 4) -> (H, W, 3)
                    back = 0.0 if dark else 1.0
                    rgba = rgba[..., :3] * rgba[..., 3:] + back * (1 - rgba[..., 3:])
                if np.abs(rgba - (0.0 if dark else 1.0)).max() < 0.05:
                    st.info("The canvas is empty: draw a digit to see it reconstructed.", icon="✏️")
                else:
                    try:
                        pil = Image.fromarray((rgba * 255).round().astype(np.uint8))
                        prep = prepare_image(pil, shape, invert="auto", dark_background=dark)
                        rec = inference.reconstruct(tm, prep.array[None])[0]
                    except AecoreError as e:
                        show_error(e, "cannot reconstruct the drawing")
                    else:
                        show_result(prep.array, rec, ["drawn on a canvas"] + prep.steps)
