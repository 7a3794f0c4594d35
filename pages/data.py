"""Data: browse every dataset the studio knows, and see what a 1-D code learns
about points on a line, a sine wave or a helix."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.data import DATASETS, RAW_FILES, as_float, download, resolve_data_dir
from aecore.errors import AecoreError
from aecore.explore.manifold import error_segments, learned_manifold, order_agreement
from aecore.explore.sequences import format_tokens
from aecore.runs.request import TrainRequest
from pages._common import DATA_DIR, ensure_navigation, load_bundle, load_model, show_error, show_images, store
from pages._job_panel import attach_run, run_panel, start_run

ensure_navigation()  # before anything is drawn: see pages/_common.py

DEMO_PRESET, DEMO_EPOCHS = "manifold-1d", 200
SPLITS = ("train", "val", "test")

st.title("Data")
st.caption(
    "What each dataset holds. The manifold demos show the seeds' central idea: points in 2-D or 3-D "
    "that really need one number each, and the number an autoencoder learns for them."
)


def _label(name: str) -> str:
    spec = DATASETS[name]
    return f"{name}: {spec.description}" + ("" if spec.available(DATA_DIR) else "  ⛔ not available")


name = st.selectbox("Dataset", list(DATASETS), format_func=_label, key="data_name", persist_state="session")
spec = DATASETS[name]

if not spec.available(DATA_DIR):
    root = resolve_data_dir(DATA_DIR).resolve()
    raw = root / spec.folder / "raw"
    st.warning(f"**{name} is not available**: its files are not in `{raw}`.", icon="⛔")
    st.markdown(f"""
To get it, do one of these, then reload the page:
- put the four files `{"`, `".join(f + ".gz" for f in RAW_FILES)}` (torchvision's raw layout,
  `<data dir>/{spec.folder}/raw/*-ubyte.gz`) in `{raw}`;
- download them through torchvision (needs the network) with the button below, or from a shell:
  `python -c "from aecore.data import download; download('{name}', '{root}')"`
  (`python -m aecore train ... --dataset {name} --download` also fetches them before training);
- or start the dashboard with `AECORE_DATA_DIR` pointing at a folder that already holds `{spec.folder}/raw/`.

The data dir is `{root}` (`AECORE_DATA_DIR`, else `./data`). `python -m aecore datasets` lists what is found.
""")
    if st.button(f"Download {name} now", key="data_download", help="Through torchvision; needs the network."):
        try:
            with st.spinner(f"Downloading {name} into {root}..."):
                download(name, DATA_DIR)
        except AecoreError as e:
            show_error(e)
        else:
            st.rerun()
    st.stop()

try:
    bundle = load_bundle(name)
except AecoreError as e:
    show_error(e, f"cannot load {name}")
    st.stop()

# --- what is in it -----------------------------------------------------------------------
x_all = bundle.train.x
cols = st.columns([1, 1, 1, 1, 1.6])
for col, split in zip(cols, SPLITS):
    col.metric(f"{split} items", f"{len(getattr(bundle, split)):,}")
cols[3].metric("Item shape", " × ".join(map(str, bundle.sample_shape)))
lo, hi = (int(x_all.min()), int(x_all.max())) if bundle.kind == "sequence" else (float(x_all.min()), float(x_all.max()))
cols[4].metric("Values (train)", f"{lo:.3g} … {hi:.3g}")
notes = [f"kind **{bundle.kind}**", f"stored as {x_all.dtype}"]
if x_all.dtype == np.uint8:
    notes.append(f"shown divided by {bundle.info.get('scale', 255)}, i.e. in [0, 1]")
if src := bundle.info.get("source"):
    notes.append(f"source: {src}")
st.caption(" · ".join(notes))

labels = bundle.train.labels
if labels is not None:
    ids = np.unique(np.concatenate([getattr(bundle, s).labels for s in SPLITS]))
    names = bundle.class_names or ([f"position {i}" for i in ids] if bundle.kind == "vector" else [str(i) for i in ids])
    what = "position along the curve (the curve parameter in ten bins)" if bundle.kind == "vector" else "class"
    counts = pd.DataFrame(
        {s: [int((getattr(bundle, s).labels == i).sum()) for i in ids] for s in SPLITS},
        index=[names[int(i)] if int(i) < len(names) else str(i) for i in ids],
    )
    with st.expander(f"Labels: {len(ids)} values of {what}", expanded=bundle.kind == "image"):
        fig = go.Figure([go.Bar(x=counts.index, y=counts[s], name=s) for s in SPLITS])
        fig.update_layout(
            template="plotly_dark",
            barmode="stack",
            height=300,
            margin=dict(t=30, b=10),
            xaxis_title=what,
            yaxis_title="items",
            title="items per label",
        )
        st.plotly_chart(fig, key="data_counts")

split = st.radio("Split", SPLITS, horizontal=True, key="data_split", persist_state="session")
part = getattr(bundle, split)
st.session_state.setdefault("data_seed", 0)


def _shuffle() -> None:
    st.session_state["data_seed"] += 1


# --- images: a grid of random samples ------------------------------------------------------
if bundle.kind == "image":
    class_names = []
    if part.labels is not None:
        class_names = bundle.class_names or [str(i) for i in range(int(part.labels.max()) + 1)]
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Class", ["all classes", *class_names], key="data_class")
    count = c2.slider("Samples", 8, 64, 32, step=8, key="data_count", persist_state="session")
    c3.button("🎲 Shuffle", key="data_shuffle", on_click=_shuffle, width="stretch")
    pool = np.arange(len(part))
    if chosen != "all classes" and part.labels is not None:
        pool = pool[part.labels == class_names.index(chosen)]
    if len(pool) == 0:
        st.info(f"No '{chosen}' items in the {split} split.")
    else:
        rng = np.random.default_rng(st.session_state["data_seed"])
        idx = np.sort(rng.choice(pool, min(count, len(pool)), replace=False))
        images = as_float(part.x[idx], bundle)
        captions = (
            None
            if part.labels is None
            else [class_names[int(v)] if int(v) < len(class_names) else str(v) for v in part.labels[idx]]
        )
        h = bundle.sample_shape[-2]
        show_images(images, captions, scale=max(1, 84 // h))
        st.caption(
            f"{len(idx)} random {split} images of {len(pool):,}"
            + ("" if chosen == "all classes" else f" labelled '{chosen}'")
            + ", enlarged pixel by pixel."
        )

# --- sequences: input/target pairs -----------------------------------------------------------
elif bundle.kind == "sequence":
    vocab, out_len = bundle.info.get("vocab"), bundle.info.get("output_len")
    st.markdown(
        f"Each input is {bundle.sample_shape[0]} integers from 1 to {vocab - 1}; the target is its first "
        f"{out_len} in reverse order. Token 0 is kept for the decoder's start token."
    )
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    c1.caption(f"Random {split} examples:")
    c2.button("🎲 Shuffle", key="data_shuffle", on_click=_shuffle, width="stretch")
    idx = np.sort(
        np.random.default_rng(st.session_state["data_seed"]).choice(len(part), min(10, len(part)), replace=False)
    )
    st.dataframe(
        pd.DataFrame(
            {"input": [format_tokens(v) for v in part.x[idx]], "target": [format_tokens(v) for v in part.target[idx]]},
            index=idx,
        ),
        width="stretch",
    )
    st.page_link("pages/sequences.py", label="Train and try the sequence model", icon="🔤")

# --- vectors: the manifold demos ----------------------------------------------------------------
else:
    dim = bundle.sample_shape[0]
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    n = c1.slider("Points", 10, len(part), min(1000, len(part)), key="data_points")
    c2.button("🎲 Shuffle", key="data_shuffle", on_click=_shuffle, width="stretch")
    idx = np.sort(np.random.default_rng(st.session_state["data_seed"]).choice(len(part), n, replace=False))
    pts, pos = part.x[idx], part.labels[idx]

    def scatter(p: np.ndarray, name: str, **kw):
        """A 2-D or 3-D trace of points (N, D); beyond 3-D the first three coordinates."""
        if dim >= 3:
            return go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], name=name, **kw)
        return go.Scatter(x=p[:, 0], y=p[:, 1], name=name, **kw)

    def layout(fig: go.Figure, title: str) -> go.Figure:
        fig.update_layout(
            template="plotly_dark",
            title=title,
            height=520,
            margin=dict(l=10, r=10, t=40, b=10),
            legend=dict(orientation="h", y=-0.05),
        )
        if dim < 3:
            fig.update_yaxes(scaleanchor="x", scaleratio=1)  # a line should look like a line
        return fig

    size = 3 if dim >= 3 else 5
    fig = go.Figure(
        [
            scatter(
                pts,
                "data",
                mode="markers",
                marker=dict(size=size, color=pos, colorscale="Viridis", colorbar=dict(title="position")),
            )
        ]
    )
    st.plotly_chart(
        layout(fig, f"{n:,} {split} points, coloured by their position along the curve"), key="data_points_plot"
    )
    if dim > 3:
        st.caption(f"Only the first 3 of {dim} coordinates are drawn.")

    st.subheader("What a 1-D code learns")
    st.markdown(
        f"Each point is given in {dim} numbers, but one number, its position along the curve, says "
        "everything. An autoencoder with a 1-D code must find that number (its *code*); its decoder "
        "turns every code value back into a point, so the decoder **is** a curve."
    )
    models = [i.name for i in store().list() if i.ok and i.dataset == name]
    if not models:
        st.info(
            f"No saved model was trained on {name} yet. Train preset `{DEMO_PRESET}` on it: here (a few "
            f"seconds), on the Train page, or with `python -m aecore train --preset {DEMO_PRESET} "
            f"--dataset {name}`.",
            icon="ℹ️",
        )
        job = attach_run("data_job")
        busy = bool(job and job.view().active)
        if st.button(
            f"Train {DEMO_PRESET} on {name} ({DEMO_EPOCHS} epochs)",
            key="data_train_demo",
            type="primary",
            disabled=busy,
        ):
            request = TrainRequest(preset=DEMO_PRESET, dataset=name, epochs=DEMO_EPOCHS, data_dir=DATA_DIR)
            if start_run("data_job", request, f"{DEMO_PRESET}-{name}", overwrite=True):
                st.rerun()
        run_panel(job, "data", kind="vector", explore_links=False)  # when it has saved, the model list has it
        st.stop()

    model_name = st.selectbox(f"A model trained on {name}", models, key="data_model")
    try:
        tm = load_model(model_name)
        view = learned_manifold(tm, pts)
    except AecoreError as e:
        show_error(e, f"cannot use '{model_name}'")
        st.stop()
    show_curve = view.curve is not None and st.checkbox(
        "Draw the decoder's curve past the data",
        value=True,
        key="data_show_curve",
        help="decode(z) for z evenly spaced from the smallest to the largest code, 10% further at each end.",
    )
    show_err = st.checkbox("Join each point to its reconstruction", value=False, key="data_show_errors")

    code = view.code
    code_title = "code" if tm.model.latent_dim == 1 else "code[0]"
    traces = [
        scatter(
            pts,
            "data, coloured by code",
            mode="markers",
            marker=dict(size=size, color=code, colorscale="Turbo", colorbar=dict(title=code_title)),
            text=[f"{code_title} {c:.3f}" for c in code],
            hoverinfo="text",
        )
    ]
    if show_err:
        seg = error_segments(pts, view.recon)
        traces.append(scatter(seg, "point → reconstruction", mode="lines", line=dict(color="gray", width=1)))
    traces.append(
        scatter(
            view.recon[view.order],
            "reconstructions (the learned manifold)",
            mode="lines+markers",
            line=dict(color="white", width=3),
            marker=dict(size=2, color="white"),
        )
    )
    if show_curve:
        traces.append(
            scatter(
                view.curve, "decoder curve decode(z)", mode="lines", line=dict(color="orange", width=2, dash="dash")
            )
        )
    st.plotly_chart(
        layout(go.Figure(traces), f"'{model_name}': the learned code drawn on the data"), key="data_manifold_plot"
    )
    m1, m2, m3, m4 = st.columns([1, 1.6, 1.3, 1.1])
    m1.metric("Code size", tm.model.latent_dim)
    m2.metric(
        "Code range",
        f"{code.min():.2f} … {code.max():.2f}",
        help="The smallest and largest code value of these points.",
    )
    m3.metric("Reconstruction MSE", f"{view.mse:.5f}", help="Mean squared error per coordinate on these points.")
    m4.metric(
        "Order agreement",
        f"{order_agreement(code, pos):.2f}",
        help="|Spearman rank correlation| of the code with the true position along the curve: 1.00 when "
        "the code runs along the curve in one direction, lower where it folds back.",
    )
    st.caption(
        "White: every point's reconstruction, joined in order of its code; they all lie on the learned "
        "curve. A code that describes the data runs smoothly from one end to the other (colours change "
        "steadily along the curve) and the white curve passes through the data. Where the code folds, the "
        "white curve cuts across (between the helix's turns, say) and the order agreement drops."
    )
