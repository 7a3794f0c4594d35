"""Runs in the dashboard: the server's job registry, the sessions that keep runs
alive, and how a page finds its run. Train, Sequences, the Home quick start and the
Data page's manifold demo start runs with :func:`start_run` and show them with
pages._run_view.run_panel. A page keeps only the run's id, in the URL, so a reload
finds the same run and adopts it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aecore.errors import AecoreError
from aecore.runs import live
from aecore.runs.jobs import LIVE_POLL_S, JobRegistry, TrainingJob
from aecore.runs.request import TrainRequest

MY_JOBS = "_my_jobs"  # ids of the runs this browser session started or adopted


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
