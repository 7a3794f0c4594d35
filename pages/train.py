"""Train: pick a preset or design a model, train it live (pause, step, stop), replay
how its code space formed, continue it.

What the run needs is chosen above the form (preset, dataset, model family); the
hyper-parameters, the name and the Train button are one form, so what the user
typed is what is submitted, whatever reruns happen meanwhile. The run itself
lives in the server's job registry and is followed by the shared job panel."""

from __future__ import annotations

import streamlit as st

from aecore.data import DATASETS
from aecore.errors import AecoreError, ConfigError
from aecore.presets import PRESETS
from aecore.runs.request import TrainRequest, resume_request
from pages._common import (
    DATA_DIR,
    MODEL_KEY,
    available_datasets,
    ensure_navigation,
    load_bundle,
    load_model,
    show_error,
    store,
)
from pages._design import choice, design_fields, family_choices, hyper_parameters, more_options
from pages._job_panel import attach_run, runs_table, start_run
from pages._run_view import run_panel

ensure_navigation()  # before anything is drawn: see pages/_common.py

st.title("🏋️ Train")
st.caption(
    "Pick a preset (a classic experiment) or design your own autoencoder, then watch it learn: "
    "loss terms, reconstructions and the code update live. Runs keep going if you leave this page."
)
job = attach_run("job", "tr_job")
running = job is not None and job.view().active


def preset_request() -> tuple[TrainRequest, str, bool, str] | None:
    preset = choice(
        "Preset",
        list(PRESETS),
        "vanilla",
        "tr_preset",
        persist_state="session",
        format_func=lambda n: f"{n}  ({'seed ' + PRESETS[n].source if PRESETS[n].source else 'added'})",
        help="A preset reproduces one experiment of the source tutorials.",
    )
    p = PRESETS[preset]
    st.caption(p.summary + (f"  \n{p.notes}" if p.notes else ""))
    present = [d for d in available_datasets() if DATASETS[d].kind in p.accepts]
    if not present:
        raise ConfigError(f"no dataset for {preset} is present; its data are {', '.join(p.accepts)}.")
    dataset = choice(
        "Dataset",
        present,
        p.dataset if p.dataset in present else "digits",
        f"tr_dataset_{preset}",
        help="Built-in datasets need no download; MNIST-like ones appear when their files are in the data dir.",
    )
    bundle = load_bundle(dataset)
    base_cfg, t = p.model_config(bundle.sample_shape), p.train
    design = st.toggle(
        "Design my own architecture", key="tr_custom", help="Start from the preset's model, change any option."
    )
    kinds = family_choices(bundle.kind)
    kind = choice("Model family", kinds, base_cfg.kind, f"tr_kind_{preset}", disabled=not design)
    with st.form("tr_form", border=False, enter_to_submit=False):  # Enter confirms a box, the button trains
        options = {
            **hyper_parameters(t, getattr(base_cfg, "latent_dim", None), f"tr_latent_{preset}"),
            **more_options(t),
        }
        custom, mistake = None, None
        if design:  # drawn only when used: every run of this page is cheaper
            with st.expander("Architecture (every option of the engine)", expanded=True):
                start_cfg = base_cfg if kind == base_cfg.kind else None
                custom, mistake = design_fields(
                    kind, start_cfg, f"tr_m_{preset}_{dataset}_{kind}", bundle.sample_shape, options["latent_dim"]
                )
        name = st.text_input(
            "Save as",
            key=f"tr_name_{preset}_{dataset}",
            placeholder=f"automatic: {preset}-{dataset}-YYYYMMDD-HHMMSS",
            help="Letters, digits, '.', '_' and '-'. Empty: a new unique name.",
        )
        overwrite = st.checkbox("Overwrite a model of the same name", key="tr_overwrite")
        pressed = st.form_submit_button("Train", type="primary", key="tr_start", disabled=running, width="stretch")
    if mistake is not None:
        raise mistake
    request = TrainRequest(preset=preset, dataset=dataset, data_dir=DATA_DIR, model=custom, **options)
    request.train_config()  # out-of-range values are reported, and nothing starts
    return (request, name.strip() or None, overwrite, None) if pressed else None


def resume_form() -> tuple[TrainRequest, str, bool, str] | None:
    names = [i.name for i in store().list() if i.ok]
    if not names:
        st.info("No saved model yet: train one from a preset first.")
        return None
    name = choice("Model", names, st.session_state.get(MODEL_KEY), "tr_resume")
    tm = load_model(name)
    st.caption(
        f"{tm.meta.preset} on {tm.meta.dataset}, {len(tm.history)} epoch(s) so far; training continues "
        "with its optimizer state and is saved under the same name."
    )
    with st.form("tr_resume_form", border=False, enter_to_submit=False):
        c1, c2 = st.columns(2)
        more = int(c1.number_input("More epochs", 1, 10_000, 5, key="tr_more"))
        lr_text = c2.text_input("Learning rate (empty: as before)", "", key="tr_resume_lr")
        pressed = st.form_submit_button("Train", type="primary", key="tr_start", disabled=running, width="stretch")
    request = resume_request(tm, more, float(lr_text) if lr_text.strip() else None, data_dir=DATA_DIR)
    request.train_config()
    return (request, name, False, name) if pressed else None


form_col, live_col = st.columns([1, 2], gap="large")
with form_col:
    mode = st.radio(
        "Start from", ["Preset", "Continue a saved model"], horizontal=True, key="tr_mode", persist_state="session"
    )
    try:
        submitted = preset_request() if mode == "Preset" else resume_form()
    except AecoreError as e:
        show_error(e)
        submitted = None
    except ValueError as e:
        show_error(ConfigError(f"check the form: {e}"))
        submitted = None
    if submitted is not None:
        request, name, overwrite, resume_from = submitted
        if start_run("job", request, name, overwrite=overwrite, resume_from=resume_from, session_key="tr_job"):
            st.session_state.pop(f"tr_name_{request.preset}_{request.dataset}", None)  # the next run: a new name
            st.rerun()  # the form comes back disabled and the panel follows the new run

with live_col:
    if job is not None:
        kind = DATASETS[job.view().dataset].kind if job.view().dataset in DATASETS else "image"
        run_panel(job, "tr", kind, page_saw_active=running)
    else:
        st.info(
            "No run selected. Choose a preset and press **Train**; the run's id goes into the URL, "
            "so you can reload or come back to it later.",
            icon="ℹ️",
        )
    runs_table(job)
