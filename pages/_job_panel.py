"""The one panel that follows a training run: Train, Sequences, the Home quick start
and the Data page's manifold demo all start runs through :func:`start_run` and
show them with :func:`run_panel`. The run lives in the server's job registry
(aecore.runs.jobs); a page keeps only its id, in the URL, so a reload or a page
switch finds the same run and adopts it (keeps it alive)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore.figures import enlarge, recon_grid
from aecore.explore.latent import project_2d
from aecore.runs.jobs import LIVE_POLL_S, JobView, TrainingJob
from aecore.runs.request import TrainRequest
from pages._common import MODEL_KEY, MY_JOBS, registry, remember_job

ICONS = {
    "queued": "⏳",
    "preparing": "⏳",
    "running": "🔄",
    "saving": "💾",
    "done": "✅",
    "stopped": "⏹️",
    "early_stopped": "✅",
    "diverged": "⚠️",
    "failed": "❌",
}
EXPLORE = [
    ("pages/reconstruct.py", "Reconstruct"),
    ("pages/latent.py", "Latent space"),
    ("pages/generate.py", "Generate"),
    ("pages/compare.py", "Compare"),
]


def attach_run(param: str, session_key: str | None = None) -> TrainingJob | None:
    """The run this page shows: the one in the URL (``?param=id``) or the last one
    it started in this session. An active run found this way is adopted, so a
    reloaded page keeps it alive like the session that started it."""
    session_key = session_key or f"_run_{param}"
    job_id = st.query_params.get(param) or st.session_state.get(session_key)
    job = registry().get(job_id)
    if job_id and job is None:
        st.warning(
            f"Run '{job_id}' is not known to this server (it may have restarted); "
            "its model is in the store if it finished an epoch."
        )
        st.query_params.pop(param, None)
        st.session_state.pop(session_key, None)
        return None
    if job is not None:
        st.session_state[session_key] = job.id
        st.query_params[param] = job.id
        if job.view().active and job.id not in st.session_state.get(MY_JOBS, []):
            remember_job(job.id)
    return job


def start_run(param: str, request: TrainRequest, name: str | None = None, session_key: str | None = None, **kw) -> bool:
    """Submit a run and make it this page's; a refusal is shown, and nothing starts."""
    try:
        job = registry().submit(request, name, snapshot_every_s=LIVE_POLL_S, **kw)
    except AecoreError as e:
        st.error(f"Training did not start: {e}", icon="⚠️")
        return False
    st.session_state[session_key or f"_run_{param}"] = job.id
    st.query_params[param] = job.id
    remember_job(job.id)
    return True


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _loss_figure(v: JobView) -> go.Figure:
    fig = go.Figure()
    if v.steps:
        df = pd.DataFrame(v.steps)
        x = df["step"] / max(v.steps_per_epoch, 1)  # steps -> epochs, so step and epoch curves share an axis
        for col in [c for c in df.columns if c not in ("step", "epoch")]:
            fig.add_scatter(x=x, y=df[col], mode="lines", name=f"train {col} (step)", opacity=0.6)
    if v.history:
        h = pd.DataFrame(v.history)
        fig.add_scatter(x=h["epoch"], y=h["train_loss"], mode="lines+markers", name="train loss (epoch)")
        if h["val_loss"].notna().any():
            fig.add_scatter(x=h["epoch"], y=h["val_loss"], mode="lines+markers", name="validation loss")
    fig.update_layout(
        template="plotly_dark",
        height=320,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="epoch",
        yaxis_title="loss",
        legend=dict(orientation="h", y=-0.25),
        title="Loss, every term",
    )
    return fig


def _snapshot(v: JobView, kind: str, key: str) -> None:
    snap = v.snapshot
    if snap is None:
        st.caption("Reconstructions and codes appear after the first second of training.")
        return
    left, right = st.columns(2)
    if kind == "image":
        left.image(
            enlarge(recon_grid(snap.originals, snap.reconstructions, n=10)),
            width="stretch",
            output_format="PNG",
            caption="validation originals (top) over reconstructions (bottom)",
        )
    elif kind == "vector":
        o, r = (a.reshape(len(a), -1) for a in (snap.originals, snap.reconstructions))  # (N, ...) -> (N, D)
        fig = go.Figure(
            [
                go.Scatter(x=o[:, 0], y=o[:, 1], mode="markers", name="data", marker=dict(size=4)),
                go.Scatter(x=r[:, 0], y=r[:, 1], mode="markers", name="reconstruction", marker=dict(size=4)),
            ]
        )
        fig.update_layout(
            template="plotly_dark",
            height=300,
            margin=dict(l=10, r=10, t=30, b=10),
            title="data and reconstructions (first two coordinates)",
        )
        left.plotly_chart(fig, key=f"{key}_points")
    else:
        rows = [
            f"{' '.join(map(str, a.astype(int)))} -> {' '.join(map(str, b.astype(int)))}"
            for a, b in zip(snap.originals[:5], snap.reconstructions[:5])
        ]
        left.code("\n".join(rows), language=None)
    codes = snap.codes.reshape(len(snap.codes), -1)  # (N, ...) -> (N, latent_dim)
    if len(codes) > 1:
        xy = project_2d(codes, "pca")
        fig = go.Figure(
            go.Scattergl(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                marker=dict(size=4, color=snap.labels, colorscale="Turbo", showscale=False),
            )
        )
        how = "as is" if codes.shape[1] <= 2 else f"PCA of {codes.shape[1]}-D codes"
        fig.update_layout(
            template="plotly_dark",
            height=300,
            margin=dict(l=10, r=10, t=30, b=10),
            title=f"codes of validation items ({how}), coloured by label",
        )
        right.plotly_chart(fig, key=f"{key}_codes")


def run_panel(job: TrainingJob | None, key: str, kind: str = "image", explore_links: bool = True) -> None:
    """Progress, every loss term, reconstructions and codes of ``job``, refreshed
    every ``LIVE_POLL_S`` while it runs; when it ends, one full rerun (the page's
    buttons come back) and the saved model becomes the chosen one on every page."""
    if job is None:
        return
    running = job.view().active
    # Wrapped on every script run, as a page's own fragment would be: a finished run is not polled.
    st.fragment(_panel, run_every=LIVE_POLL_S if running else None)(job.id, running, key, kind, explore_links)


def _panel(job_id: str, was_running: bool, key: str, kind: str, explore_links: bool) -> None:
    job = registry().get(job_id)
    if job is None:
        return
    job.touch()
    v = job.view()
    st.subheader(f"{ICONS.get(v.status, '')} {v.name}")
    step = f", step {v.step}/{v.steps_per_epoch}" if v.status == "running" and v.steps_per_epoch else ""
    st.progress(v.progress, text=f"{v.status}: epoch {v.epoch}/{v.epochs}{step}")
    if v.status in ("diverged", "failed"):
        st.error(v.message, icon="⚠️")
    elif v.status == "queued":
        st.warning(v.message, icon="⏳")
    else:
        st.caption(v.message)
    m = st.columns(5)
    last = v.steps[-1]["loss"] if v.steps else None
    val = v.history[-1]["val_loss"] if v.history else None
    m[0].metric({"image": "Images/s", "sequence": "Sequences/s"}.get(kind, "Points/s"), f"{v.images_per_s:,.0f}")
    m[1].metric("Elapsed", _fmt_s(v.elapsed_s))
    m[2].metric("Time left", _fmt_s(v.eta_s) if v.active else "-")
    m[3].metric("Train loss", "-" if last is None else f"{last:.4g}")
    m[4].metric("Validation loss", "-" if val is None else f"{val:.4g}")
    st.plotly_chart(_loss_figure(v), key=f"{key}_loss_chart")
    _snapshot(v, kind, key)
    if v.saved_as and not v.active:
        st.success(f"Saved as '{v.saved_as}'." + (" Explore it:" if explore_links else ""), icon="💾")
        if st.session_state.get(f"_shown_{key}") != v.id:  # once: the user may pick another model afterwards
            st.session_state[f"_shown_{key}"] = v.id
            st.session_state[MODEL_KEY] = v.saved_as
            st.session_state.pop(f"_pick_{MODEL_KEY}", None)
        if explore_links:
            for col, (page, label) in zip(st.columns(len(EXPLORE)), EXPLORE):
                col.page_link(page, label=label)
    if was_running and not v.active:
        st.rerun()  # one full run: re-enable the form and stop polling


def runs_table(current: TrainingJob | None) -> None:
    """Every run of this server, and a way to show one of them on this page."""
    jobs = registry().jobs()
    if not jobs:
        return
    with st.expander(f"All runs on this server ({len(jobs)})", expanded=current is None):
        views = {j.id: j.view() for j in jobs}
        rows = [
            {
                "run": i,
                "model": v.name,
                "preset": v.preset,
                "dataset": v.dataset,
                "status": v.status,
                "epoch": f"{v.epoch}/{v.epochs}",
                "device": v.device,
            }
            for i, v in views.items()
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        pick = st.selectbox("Show run", list(views), key="tr_show", format_func=lambda i: f"{i} ({views[i].name})")
        if st.button("Show", key="tr_show_btn"):
            st.session_state["tr_job"] = pick
            st.query_params["job"] = pick
            st.rerun()
