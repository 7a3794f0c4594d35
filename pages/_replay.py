"""The replay of a run's timeline (Train's run panel and the Latent space page): an
"Epoch" slider and a Play button move through the frames; the probe items' codes
(all frames in one fixed basis: aecore.explore.replay) and the reconstruction strip
show that frame; a caption says how the code space moved and when it settled.

Play advances the slider from a fragment timer, so the slider is the one state and
a paused replay is an ordinary page. A live run's replay polls for new frames and
follows the newest one unless the user moved the slider back."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from aecore.explore import replay
from aecore.timeline import Timeline

PLAY_S = 0.4  # seconds per frame while playing: a 40-frame run plays in 16 s
# A live run's replay looks for new frames this often: frames come every few seconds at
# most, and every timed rerun of a fragment is a moment when a click on the page's other
# fragment (the run panel's controls) can land on an element being redrawn.
LIVE_REPLAY_S = 5.0


def replay_panel(
    timeline: Callable[[], Timeline | None], key: str, live: bool = False, class_names: list[str] | None = None
) -> None:
    """``timeline`` is called on every refresh (a live run adds frames)."""
    playing = st.session_state.get(f"{key}_playing", False)
    every = PLAY_S if playing else LIVE_REPLAY_S if live else None
    st.fragment(_replay, run_every=every)(timeline, key, class_names, playing)


def _replay(timeline: Callable[[], Timeline | None], key: str, class_names: list[str] | None, timer: bool) -> None:
    playing_key, slider, seen = f"{key}_playing", f"{key}_frame", f"{key}_frames"
    if st.session_state.get(playing_key, False) != timer:
        st.rerun()  # Play was pressed or the end was reached: the timer is set by a full run
    tl = timeline()
    if tl is None or len(tl.frames) < 2:
        st.caption(
            "No timeline: this model was trained before timelines were recorded."
            if tl is None
            else "The replay starts once two frames are recorded (the first is the untrained model)."
        )
        return
    rp = replay.replay(tl, class_names)
    n, cur, before = len(tl.frames), st.session_state.get(slider), st.session_state.get(seen, len(tl.frames))
    new = cur
    if cur is None or cur >= n or (cur == before - 1 and n > before):
        new = n - 1  # show (and keep following) the newest frame
    if timer:
        new = min(new + 1, n - 1)
        if new == n - 1:
            st.session_state[playing_key] = False
    if new != cur:  # written only to move it: a value set here overrides the browser's newer one
        st.session_state[slider] = new
    st.session_state[seen] = n
    i = st.select_slider(
        "Epoch",
        options=list(range(n)),
        format_func=lambda j: replay.frame_label(rp.epochs, j),
        key=slider,
        help="Each frame is the code space at that moment of training; Play moves through them.",
    )
    st.button(
        "Pause replay" if timer else "▶ Play",
        key=f"{key}_play",
        on_click=_toggle_play,
        args=(playing_key, slider, n),
    )
    left, right = st.columns([3, 2])
    left.plotly_chart(replay.frame_figure(rp, i), key=f"{key}_replay_fig")
    strip = replay.frame_strip(tl, i)
    if strip is not None:
        right.image(
            strip, output_format="PNG", width="stretch", caption="probe originals (top) over their reconstructions"
        )
    st.caption(rp.caption)


def _toggle_play(playing_key: str, slider: str, n: int) -> None:
    playing = not st.session_state.get(playing_key, False)
    st.session_state[playing_key] = playing
    if playing and st.session_state.get(slider, n - 1) >= n - 1:
        st.session_state[slider] = 0  # from the start when pressed at the end
