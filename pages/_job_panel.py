"""Runs in the dashboard: the server's job registry, the sessions that keep runs
alive, and the one panel that follows a run. Train, Sequences, the Home quick start
and the Data page's manifold demo start runs with :func:`start_run` and show them
with :func:`run_panel`; what the panel shows is computed by aecore.runs.live. A page
keeps only the run's id, in the URL, so a reload finds the same run and adopts it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aecore.errors import AecoreError
from aecore.runs import live
from aecore.runs.jobs import LIVE_POLL_S, JobRegistry, TrainingJob
from aecore.runs.request import TrainRequest
from pages._common import MODEL_KEY

MY_JOBS = "_my_jobs"  # ids of the runs this browser session started or adopted
EXPLORE = ("Reconstruct", "Latent space", "Generate", "Compare")  # pages/<first word>.py


@st.cache_resource
def registry() -> JobRegistry:
    """One registry per server process: every session sees every job."""
    reg = JobRegistry.from_env()
    reg.start_janitor()
    return reg


def remember_job(job_id: str) -> None:
    """This session started (or adopted) the run: keep it alive while the session is."""
    st.session_state[MY_JOBS] = [*st.session_state.get(MY_JOBS, []), job_id]


def keep_my_jobs_alive() -> None:
    """Called by app.py on every run of every page, and by a quiet heartbeat while a
    run of this session is active, so a run is only abandoned when its browser is gone."""
    reg = registry()
    mine = [j for j in (reg.get(i) for i in st.session_state.get(MY_JOBS, [])) if j is not None and j.view().active]
    for j in mine:
        j.touch()
    st.session_state[MY_JOBS] = [j.id for j in mine]
    if mine:
        st.fragment(_touch_mine, run_every=reg.heartbeat_s)()


def _touch_mine() -> None:
    for j in filter(None, map(registry().get, st.session_state.get(MY_JOBS, []))):
        j.touch()


def attach_run(param: str, session_key: str | None = None) -> TrainingJob | None:
    """The run this page shows: the one in the URL (``?param=id``) or the last one it
    started in this session. An active run found this way is adopted."""
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


def run_panel(job: TrainingJob | None, key: str, kind: str = "image", explore_links: bool = True) -> None:
    """Progress, every loss term, reconstructions and codes of ``job``, refreshed every
    ``LIVE_POLL_S`` while it runs; when it ends, one full rerun (the page's buttons come
    back) and the saved model becomes the chosen one on every page."""
    if job is not None:
        running = job.view().active  # wrapped on every script run: a finished run is not polled
        st.fragment(_panel, run_every=LIVE_POLL_S if running else None)(job.id, running, key, kind, explore_links)


def _panel(job_id: str, was_running: bool, key: str, kind: str, explore_links: bool) -> None:
    job = registry().get(job_id)
    if job is None:
        return
    job.touch()
    v = job.view()
    lv = live.live_view(v, kind)
    st.subheader(lv.title)
    st.progress(lv.progress, text=lv.progress_text)
    {"error": st.error, "warning": st.warning}.get(lv.level, st.caption)(lv.message)
    for col, (label, value) in zip(st.columns(len(lv.metrics)), lv.metrics):
        col.metric(label, value)
    st.plotly_chart(live.loss_figure(lv), key=f"{key}_loss_chart")
    _snapshot(lv, key)
    if v.saved_as and not v.active:
        st.success(f"Saved as '{v.saved_as}'." + (" Explore it:" if explore_links else ""), icon="💾")
        if st.session_state.get(f"_shown_{key}") != v.id:  # once: the user may pick another model afterwards
            st.session_state[f"_shown_{key}"] = v.id
            st.session_state[MODEL_KEY] = v.saved_as
            st.session_state.pop(f"_pick_{MODEL_KEY}", None)
        for col, label in zip(st.columns(len(EXPLORE)), EXPLORE if explore_links else ()):
            col.page_link(f"pages/{label.split()[0].lower()}.py", label=label)
    if was_running and not v.active:
        st.rerun()  # one full run: re-enable the form and stop polling


def _snapshot(lv: live.LiveView, key: str) -> None:
    if lv.codes_xy is None and lv.recon_image is None and lv.recon_points is None and lv.recon_text is None:
        st.caption("Reconstructions and codes appear after the first second of training.")
        return
    left, right = st.columns(2)
    if lv.recon_image is not None:
        left.image(lv.recon_image, width="stretch", output_format="PNG", caption=live.RECON_CAPTION)
    elif lv.recon_points is not None:
        left.plotly_chart(live.points_figure(lv), key=f"{key}_points")
    elif lv.recon_text is not None:
        left.code(lv.recon_text, language=None)
    if lv.codes_xy is not None:
        right.plotly_chart(live.codes_figure(lv), key=f"{key}_codes")


def runs_table(current: TrainingJob | None) -> None:
    """Every run of this server, and a way to show one of them on the Train page."""
    views = {j.id: j.view() for j in registry().jobs()}
    if not views:
        return
    with st.expander(f"All runs on this server ({len(views)})", expanded=current is None):
        st.dataframe(pd.DataFrame(live.runs_rows(list(views.values()))), hide_index=True, width="stretch")
        pick = st.selectbox("Show run", list(views), key="tr_show", format_func=lambda i: f"{i} ({views[i].name})")
        if st.button("Show", key="tr_show_btn"):
            st.session_state["tr_job"] = pick
            st.query_params["job"] = pick
            st.rerun()
