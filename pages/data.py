"""Data: browse every dataset the studio knows, and see what a 1-D code learns
about points on a line, a sine wave or a helix."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.data import DATASETS, download
from aecore.errors import AecoreError
from aecore.explore import data as explore
from aecore.explore.data import DEMO_EPOCHS, DEMO_PRESET, SPLITS
from pages._common import DATA_DIR, ensure_navigation, load_bundle, load_model, show_error, show_images, store
from pages._job_panel import attach_run, start_run
from pages._run_view import run_panel

ensure_navigation()  # before anything is drawn: see pages/_common.py

st.title("Data")
st.caption(
    "What each dataset holds. The manifold demos show the seeds' central idea: points in 2-D or 3-D "
    "that really need one number each, and the number an autoencoder learns for them."
)
labels = explore.dataset_labels(DATA_DIR)
name = st.selectbox("Dataset", list(labels), format_func=labels.get, key="data_name", persist_state="session")

if not DATASETS[name].available(DATA_DIR):
    warning, how = explore.missing_help(name, DATA_DIR)
    st.warning(warning, icon="⛔")
    st.markdown(how)
    if st.button(f"Download {name} now", key="data_download", help="Through torchvision; needs the network."):
        try:
            with st.spinner(f"Downloading {name} into {explore.data_root(DATA_DIR)}..."):
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

info = explore.summary(bundle)
cols = st.columns([1, 1, 1, 1, 1.6])
for col, split in zip(cols, SPLITS):
    col.metric(f"{split} items", f"{info.sizes[split]:,}")
cols[3].metric("Item shape", info.shape)
cols[4].metric("Values (train)", info.value_range)
st.caption(info.notes)

if counts := explore.label_counts(bundle):
    with st.expander(f"Labels: {len(counts.names)} values of {counts.what}", expanded=bundle.kind == "image"):
        fig = go.Figure([go.Bar(x=counts.names, y=counts.counts[s], name=s) for s in SPLITS])
        fig.update_layout(
            template="plotly_dark", barmode="stack", height=300, margin=dict(t=30, b=10), title="items per label"
        )
        fig.update_layout(xaxis_title=counts.what, yaxis_title="items")
        st.plotly_chart(fig, key="data_counts")

split = st.radio("Split", SPLITS, horizontal=True, key="data_split", persist_state="session")
part = getattr(bundle, split)
seed = st.session_state.setdefault("data_seed", 0)


def _shuffle_button(col) -> None:
    col.button(
        "🎲 Shuffle", key="data_shuffle", on_click=lambda: st.session_state.update(data_seed=seed + 1), width="stretch"
    )


if bundle.kind == "image":
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Class", [explore.ALL_CLASSES, *explore.class_names(bundle, split)], key="data_class")
    count = c2.slider("Samples", 8, 64, 32, step=8, key="data_count", persist_state="session")
    _shuffle_button(c3)
    shown = explore.image_samples(bundle, split, chosen, count, seed)
    if shown.pool == 0:
        st.info(f"No '{chosen}' items in the {split} split.")
    else:
        show_images(shown.images, shown.captions, scale=shown.scale)
        st.caption(shown.note)

elif bundle.kind == "sequence":
    st.markdown(explore.sequence_intro(bundle))
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    c1.caption(f"Random {split} examples:")
    _shuffle_button(c2)
    table = explore.sequence_examples(part, seed)
    st.dataframe(pd.DataFrame(table).set_index("index").rename_axis(None), width="stretch")
    st.page_link("pages/sequences.py", label="Train and try the sequence model", icon="🔤")

else:
    dim = bundle.sample_shape[0]
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    n = c1.slider("Points", 10, len(part), min(1000, len(part)), key="data_points")
    _shuffle_button(c2)
    pts, pos = explore.random_points(part, n, seed)

    def chart(traces: list[explore.Trace], title: str, key: str) -> None:
        # beyond 3-D only the first three coordinates can be drawn
        kind, axes = (go.Scatter3d, "xyz") if dim >= 3 else (go.Scatter, "xy")
        fig = go.Figure([kind(name=t.name, **dict(zip(axes, t.points.T)), **t.style) for t in traces])
        fig.update_layout(template="plotly_dark", title=title, height=520, margin=dict(l=10, r=10, t=40, b=10))
        fig.update_layout(legend=dict(orientation="h", y=-0.05))
        if dim < 3:
            fig.update_yaxes(scaleanchor="x", scaleratio=1)  # a line should look like a line
        st.plotly_chart(fig, key=key)

    title = f"{n:,} {split} points, coloured by their position along the curve"
    chart([explore.points_trace(pts, pos)], title, "data_points_plot")
    if dim > 3:
        st.caption(f"Only the first 3 of {dim} coordinates are drawn.")

    st.subheader("What a 1-D code learns")
    st.markdown(explore.MANIFOLD_INTRO.format(dim=dim))
    models = [i.name for i in store().list() if i.ok and i.dataset == name]
    if not models:
        st.info(explore.no_model_hint(name), icon="ℹ️")
        job = attach_run("data_job")
        label = f"Train {DEMO_PRESET} on {name} ({DEMO_EPOCHS} epochs)"
        if st.button(label, key="data_train_demo", type="primary", disabled=bool(job and job.view().active)):
            if start_run("data_job", explore.demo_request(name, DATA_DIR), f"{DEMO_PRESET}-{name}", overwrite=True):
                st.rerun()
        run_panel(job, "data", kind="vector", explore_links=False)  # when it has saved, the model list has it
        st.stop()

    model_name = st.selectbox(f"A model trained on {name}", models, key="data_model")
    try:
        view = explore.manifold_traces(load_model(model_name), pts, pos)
    except AecoreError as e:
        show_error(e, f"cannot use '{model_name}'")
        st.stop()
    show_curve = view.curve is not None and st.checkbox(
        "Draw the decoder's curve past the data", value=True, key="data_show_curve", help=explore.CURVE_HELP
    )
    show_err = st.checkbox("Join each point to its reconstruction", value=False, key="data_show_errors")
    chart(
        view.traces(show_err, show_curve), f"'{model_name}': the learned code drawn on the data", "data_manifold_plot"
    )
    m1, m2, m3, m4 = st.columns([1, 1.6, 1.3, 1.1])
    m1.metric("Code size", view.latent_dim)
    m2.metric("Code range", view.code_range, help="The smallest and largest code value of these points.")
    m3.metric("Reconstruction MSE", f"{view.mse:.5f}", help="Mean squared error per coordinate on these points.")
    m4.metric("Order agreement", f"{view.agreement:.2f}", help=explore.ORDER_AGREEMENT_HELP)
    st.caption(explore.MANIFOLD_LEGEND)
