"""The one panel that follows a run (Train, Sequences, the Home quick start, the Data
page's demo): progress, the controls (Pause or Resume, Step, Stop), every loss term,
reconstructions and codes, and the replay of the run's timeline. What it shows is
computed by aecore.runs.live and aecore.explore.replay; a control is one call of the
job (aecore.runs.jobs), which reaches the training process through its RunControl."""

from __future__ import annotations

import streamlit as st

from aecore.runs import live
from aecore.runs.jobs import LIVE_POLL_S, STEP_CHOICES, JobView, TrainingJob
from pages._common import MODEL_KEY
from pages._job_panel import registry
from pages._replay import replay_panel

EXPLORE = ("Reconstruct", "Latent space", "Generate", "Compare")  # pages/<first word>.py


def run_panel(
    job: TrainingJob | None, key: str, kind: str = "image", explore_links: bool = True, page_saw_active: bool = False
) -> None:
    """Progress, controls, every loss term, reconstructions and codes of ``job``,
    refreshed every ``LIVE_POLL_S`` while it runs (or is paused); when it ends, one
    full rerun (the page's buttons come back) and the saved model becomes the chosen
    one on every page. Below it, the replay of the frames recorded so far.
    ``page_saw_active``: the page drew its buttons for an active run; if the run ended
    since, the panel's first look sees the change and reruns the page."""
    if job is None:
        return
    # wrapped on every script run: a finished run is not polled
    running = page_saw_active or job.view().active
    st.fragment(_panel, run_every=LIVE_POLL_S if running else None)(job.id, running, key, kind, explore_links)
    with st.expander("Replay: how the code space formed", expanded=not running):
        replay_panel(lambda: _timeline(job.id), key, live=running)


def _timeline(job_id: str):
    job = registry().get(job_id)
    return None if job is None else job.view().timeline


def _panel(job_id: str, was_running: bool, key: str, kind: str, explore_links: bool) -> None:
    job = registry().get(job_id)
    if job is None:
        return
    job.touch()
    v = job.view()
    lv = live.live_view(v, kind)
    st.subheader(lv.title)
    st.progress(lv.progress, text=lv.progress_text)
    run_controls(job, v, key)
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


def run_controls(job: TrainingJob, v: JobView, key: str) -> None:
    """Pause after the current batch, Resume, Step a chosen number of batches (then
    pause again), Stop (ends the run and saves what it trained)."""
    pause, step, size, stop = st.columns([1, 1, 1.4, 1], vertical_alignment="bottom")
    if v.paused:
        pause.button("Resume", key=f"{key}_resume", on_click=job.resume, type="primary", width="stretch")
    else:
        pause.button(
            "Pause",
            key=f"{key}_pause",
            on_click=job.pause,
            disabled=v.status != "running",
            width="stretch",
            help="Pause after the current batch; the run keeps its place and its optimizer state.",
        )
    size.selectbox("Step by", list(STEP_CHOICES), key=f"{key}_step_n", disabled=not v.paused)
    step.button(
        "Step",
        key=f"{key}_step",
        disabled=not v.paused,
        width="stretch",
        on_click=lambda: job.step_batches(STEP_CHOICES[st.session_state.get(f"{key}_step_n", "1 batch")]),
        help="Train exactly this many batches, update every view, and pause again.",
    )
    stop.button(
        "Stop",
        key=f"{key}_stop",
        on_click=job.stop,
        disabled=not v.active,
        width="stretch",
        help="End the run after the current batch and save what it trained.",
    )


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
