"""Latent space (engine: aecore/explore/latent.py): where the encoder puts each test item,
coloured by label; click a point to decode it. Below, the replay of how this code space
formed during training (pages/_replay.py, engine aecore/explore/replay.py)."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import latent as engine
from pages._common import ensure_navigation, model_bundle, pick_model, show_error, store
from pages._replay import replay_panel

ensure_navigation()  # before anything is drawn: see pages/_common.py

ROW = {"horizontal": True, "persist_state": "session"}  # one row, kept while the user visits other pages
HELP = "Only used when the code has more than two values."

st.title("Latent space")
st.caption(
    "Every test item becomes a code; similar items should land near each other. "
    "Codes of more than two values are drawn through PCA (linear) or t-SNE (keeps neighbours)."
)

tm = pick_model(kind=("image", "vector"))
if tm is None:
    st.stop()
bundle = model_bundle(tm)
if bundle is None:
    st.stop()


def init_state(key: str, default, lo, hi) -> None:
    """Own the widget's value through session_state (no ``value=``), clamped to this model's range."""
    v = st.session_state.get(key, default)
    st.session_state[key] = default if not isinstance(v, (int, float)) else min(max(v, lo), hi)


@st.cache_data(max_entries=16, show_spinner="Encoding and projecting the test set...")
def latent_view(_tm, _bundle, name: str, stamp: int, root: str, n: int, method: str) -> engine.LatentView:
    """Cached, since t-SNE takes seconds; ``name``, ``stamp`` and ``root`` key it: a retrained model gets new codes."""
    return engine.latent_view(_tm, _bundle, n, method)


n_test, d = len(bundle.test), tm.model.latent_dim
left, right = st.columns([3, 2])
with left:
    c1, c2 = st.columns(2)
    method_label = c2.radio("Projection", list(engine.METHODS), key="lat_method", disabled=d <= 2, help=HELP, **ROW)
    method = engine.METHODS[method_label] if d > 2 else "pca"
    cap = engine.item_cap(n_test, d, method)
    if cap > 10:
        init_state("lat_n", min(2000, cap), 10, cap)
        n = c1.slider("Test items to encode", 10, cap, step=10 if cap >= 100 else 1, key="lat_n")
    else:
        n = cap
    if d <= 2:
        how = " (the code on x, 0 on y)." if d == 1 else " (no projection)."
        st.caption(f"The code has {d} value{'s' * (d > 1)}: shown as is" + how)
    elif method == "tsne" and n_test > engine.TSNE_MAX:
        st.caption(f"t-SNE is limited to {engine.TSNE_MAX:,} items (its cost grows with N²).")

try:
    view = latent_view(tm, bundle, tm.name or "", store().weights_stamp(tm.name or ""), str(store().root), n, method)
except AecoreError as e:
    show_error(e, "cannot draw the latent space")
    st.stop()

# One trace per label gives a legend that can hide classes; customdata carries the
# item's index, so a selection names its item whatever trace it is in. It is a plain
# list: numpy would be sent as a typed array, which comes back from the browser as {"0": i}.
fig = go.Figure()
for name, idx in view.groups:
    fig.add_trace(
        go.Scatter(
            x=view.xy[idx, 0],
            y=view.xy[idx, 1],
            mode="markers",
            name=name,
            customdata=idx.tolist(),
            text=[view.hover_texts[i] for i in idx],
            marker={"size": 6, "opacity": 0.8},
            hovertemplate=f"<b>{name}</b> · item %{{customdata}}<br>%{{text}}<extra></extra>",
        )
    )
axis = "code" if d <= 2 else method_label
fig.update_layout(
    template="plotly_dark",
    height=560,
    legend_title_text="label",
    clickmode="event+select",
    hoverlabel={"font": {"family": "DejaVu Sans Mono, Menlo, Consolas, monospace"}},
    xaxis_title=f"{axis} 1",
    yaxis_title=f"{axis} 2" if d != 1 else "",
    margin={"t": 30},
)

with left:
    event = st.plotly_chart(fig, key="lat_scatter", on_select="rerun", selection_mode="points")
    if bundle.kind == "vector":
        extra = "its coordinates"
    elif n <= engine.ART_MAX:
        extra = "the image drawn in characters (a hover label cannot show pictures)"
    else:
        extra = f"no picture above {engine.ART_MAX:,} points (the figure would get too big)"
    st.caption(
        f"{n:,} test items of {bundle.name}. Hover a point for its label, index, code and {extra}; "
        "click a point to decode it on the right."
    )


@st.cache_resource(max_entries=8, show_spinner=False)
def timeline(name: str, stamp: int, root: str):
    """The model's timeline (read-only here: shared, not copied), read again when its weights change."""
    return store().timeline(name)


def replay_section() -> None:
    st.subheader("How this code space formed")
    try:
        tl = timeline(tm.name or "", store().weights_stamp(tm.name or ""), str(store().root))
    except AecoreError as e:
        show_error(e, "cannot replay the training")
        return
    replay_panel(lambda: tl, "lat_replay", class_names=view.label_names)


i = engine.selected_item(event, view.groups, n)
with right:
    if i is None:
        st.info("Click a point in the scatter to decode it.", icon="👆")
    else:
        item = engine.item_view(tm, bundle, view, i)
        st.subheader(item.title)
        st.metric("Reconstruction MSE", f"{item.mse:.4f}")
        if item.pictures is not None:
            # PNG: Streamlit's "auto" picks JPEG for arrays, which smears the enlarged pixels
            st.image(item.pictures, caption=["original", "decoded code", "|difference|"], output_format="PNG")
            vae = " (the posterior mean)" if tm.model.is_variational else ""
            st.caption(f"The decoder applied to this item's code{vae}: its reconstruction.")
        else:
            table = pd.DataFrame([item.x[0], item.rec[0]], index=["original", "decoded code"], columns=item.columns)
            st.dataframe(table, width="stretch")
            if item.x.shape[1] in (2, 3):
                st.plotly_chart(engine.item_figure(item), key="lat_point")
        st.caption("Code: " + item.code_text)
replay_section()
