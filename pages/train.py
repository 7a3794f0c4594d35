"""Train: pick a preset or design a model, train it live, stop it, continue it.

The run lives in the process-wide job registry (aecore.runs.jobs), not in this page:
the page keeps only the job id, in the URL, so a reload or a page switch finds
the same run. A fragment polls the job while it runs.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aecore.data import DATASETS
from aecore.device import describe_device
from aecore.errors import AecoreError, ConfigError
from aecore.explore import figures, latent
from aecore.forms import FieldSpec, model_fields, parse_int_list, unflatten
from aecore.models import MODELS, config_from_dict, parameter_count
from aecore.presets import PRESETS
from aecore.runs.jobs import LIVE_POLL_S, JobView
from aecore.runs.pipeline import default_name
from aecore.runs.request import TrainRequest, resume_request
from pages._common import (
    DATA_DIR,
    MODEL_KEY,
    MY_JOBS,
    available_datasets,
    enlarge,
    ensure_navigation,
    load_bundle,
    load_model,
    registry,
    remember_job,
    show_error,
    store,
)

ensure_navigation()  # before anything is drawn: see pages/_common.py

POLL_S = LIVE_POLL_S  # the live view refreshes at least this often (and at every epoch)
JOB_PARAM = "job"

st.title("🏋️ Train")
st.caption(
    "Pick a preset (a classic experiment) or design your own autoencoder, then watch it learn: "
    "loss terms, reconstructions and the code update live. Runs keep going if you leave this page."
)

reg = registry()
if JOB_PARAM in st.query_params and reg.get(st.query_params[JOB_PARAM]) is None:
    st.warning(
        f"Run '{st.query_params[JOB_PARAM]}' is not known to this server (it may have restarted); "
        "its model is in the store if it finished an epoch."
    )
    del st.query_params[JOB_PARAM]
job_id = st.query_params.get(JOB_PARAM) or st.session_state.get("tr_job")
job = reg.get(job_id)
running = job is not None and job.view().active
if running and job.id not in st.session_state.get(MY_JOBS, []):
    remember_job(job.id)  # a reload or a shared link adopts the run: this session now keeps it alive


def _devices() -> list[str]:
    import torch

    out = ["auto", "cpu"]
    out += [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _field_widget(f: FieldSpec, key: str):
    """One form widget per engine option; the value comes back in the config's types."""
    label = f.name.replace(".", " · ").replace("_", " ")
    if f.type == "choice":
        return st.selectbox(label, f.choices, index=list(f.choices).index(f.default), key=key, help=f.help or None)
    if f.type == "bool":
        return st.checkbox(label, value=bool(f.default), key=key, help=f.help or None)
    if f.type == "int":
        return int(st.number_input(label, value=int(f.default), step=1, key=key, help=f.help or None))
    if f.type == "float":
        return float(st.number_input(label, value=float(f.default), format="%g", key=key, help=f.help or None))
    if f.type in ("optional_int", "optional_float"):
        text = st.text_input(
            label,
            "" if f.default is None else str(f.default),
            key=key,
            help=(f.help + " " if f.help else "") + "(empty: none)",
        )
        if not text.strip():
            return None
        try:
            return int(text) if f.type == "optional_int" else float(text)
        except ValueError:
            raise ConfigError(f"{label} must be a number or empty; got {text!r}.") from None
    if f.type == "int_list":
        default = "" if f.default is None else ", ".join(map(str, f.default))
        text = st.text_input(label, default, key=key, help=f.help or None)
        if not text.strip() and "optional" in f.choices:
            return None
        return parse_int_list(text, label)
    if f.type == "choice_list":
        return st.multiselect(label, f.choices, default=list(f.default), key=key, help=f.help or None)
    raise ConfigError(f"no widget for {f.name}")


def _start(request: TrainRequest, name: str, resume_from: str | None = None, overwrite: bool = False) -> None:
    try:
        new = reg.submit(request, name, resume_from=resume_from, overwrite=overwrite, snapshot_every_s=POLL_S)
    except AecoreError as e:
        st.session_state["tr_error"] = str(e)
        return
    st.session_state.pop("tr_error", None)
    if not resume_from:  # the next run from this form gets a fresh default name
        st.session_state.pop(f"tr_name_{request.preset}_{request.dataset}", None)
    st.session_state["tr_job"] = new.id
    remember_job(new.id)
    st.query_params[JOB_PARAM] = new.id


# --- the form ---------------------------------------------------------------------------
form_col, live_col = st.columns([1, 2], gap="large")
with form_col:
    mode = st.radio(
        "Start from", ["Preset", "Continue a saved model"], horizontal=True, key="tr_mode", persist_state="session"
    )
    request: TrainRequest | None = None
    name = ""
    resume_from = None
    overwrite = False
    try:
        if mode == "Preset":
            preset_names = list(PRESETS)
            preset = st.selectbox(
                "Preset",
                preset_names,
                index=preset_names.index("vanilla"),
                key="tr_preset",
                persist_state="session",
                format_func=lambda n: f"{n}  ({PRESETS[n].source and 'seed ' + PRESETS[n].source or 'added'})",
                help="A preset reproduces one experiment of the source tutorials.",
            )
            p = PRESETS[preset]
            st.caption(p.summary + (f"  \n{p.notes}" if p.notes else ""))
            kinds = set(p.accepts)
            present = [d for d in available_datasets() if DATASETS[d].kind in kinds]
            missing = [d for d, s in DATASETS.items() if s.kind in kinds and d not in present]
            if not present:
                raise ConfigError(f"no dataset for {preset} is present; its data are {', '.join(p.accepts)}.")
            default_ds = p.dataset if p.dataset in present else ("digits" if "digits" in present else present[0])
            dataset = st.selectbox(
                "Dataset",
                present,
                index=present.index(default_ds),
                key=f"tr_dataset_{preset}",
                help="Built-in datasets need no download; MNIST-like ones appear when their files are in the data dir.",
            )
            if missing:
                st.caption(f"Not present here: {', '.join(missing)} (see the Data page for how to add them).")
            bundle = load_bundle(dataset)
            base_cfg = p.model_config(bundle.sample_shape)
            t = p.train
            c1, c2 = st.columns(2)
            epochs = int(c1.number_input("Epochs", 1, 10_000, t.epochs, key="tr_epochs"))
            batch = int(c2.number_input("Batch size", 1, 100_000, t.batch_size, key="tr_batch"))
            lr = float(c1.number_input("Learning rate", 1e-6, 10.0, float(t.lr), format="%g", key="tr_lr"))
            optimizer = c2.selectbox(
                "Optimizer", ["adam", "adamw", "sgd"], index=["adam", "adamw", "sgd"].index(t.optimizer), key="tr_opt"
            )
            latent_default = getattr(base_cfg, "latent_dim", None)
            latent = None
            if latent_default is not None:
                latent = int(c1.number_input("Code size", 1, 4096, int(latent_default), key=f"tr_latent_{preset}"))
            limit = int(
                c2.number_input(
                    "Training items (0: all)",
                    0,
                    10_000_000,
                    0,
                    key="tr_limit",
                    help="Train on the first N items only, for a quick try.",
                )
            )
            with st.expander("More training options"):
                d1, d2 = st.columns(2)
                patience = int(
                    d1.number_input(
                        "Early stopping patience (0: off)", 0, 1000, t.early_stopping_patience or 0, key="tr_patience"
                    )
                )
                schedule = d2.selectbox(
                    "LR schedule",
                    ["constant", "cosine"],
                    index=["constant", "cosine"].index(t.lr_schedule),
                    key="tr_schedule",
                )
                wd = float(d1.number_input("Weight decay", 0.0, 10.0, float(t.weight_decay), format="%g", key="tr_wd"))
                precision = d2.selectbox(
                    "Precision",
                    ["fp32", "bf16"],
                    key="tr_precision",
                    help="bf16 is refused with a reason where the hardware lacks fast bf16.",
                )
                device = d1.selectbox("Device", _devices(), key="tr_device", help=describe_device())
                seed = int(d2.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed"))
            custom = None
            with st.expander("Design the architecture (every option of the engine)"):
                design = st.toggle(
                    "Use my own architecture",
                    key="tr_custom",
                    help="Start from the preset's model and change any option.",
                )
                kind_names = [k for k in MODELS if (k == "seq2seq") == (bundle.kind == "sequence")]
                kind = st.selectbox(
                    "Model family",
                    kind_names,
                    index=kind_names.index(base_cfg.kind) if base_cfg.kind in kind_names else 0,
                    key=f"tr_kind_{preset}",
                    disabled=not design,
                )
                start_cfg = base_cfg if kind == base_cfg.kind else None
                if design:  # the fields are drawn only when used: every run of this page is cheaper
                    values = {}
                    for f in model_fields(kind, start_cfg):
                        if f.name == "latent_dim":
                            continue  # set above as "Code size"
                        values[f.name] = _field_widget(f, f"tr_m_{preset}_{dataset}_{kind}_{f.name}")
                    custom = {"kind": kind, **unflatten(values), "input_shape": list(bundle.sample_shape)}
                    if latent is not None:
                        custom["latent_dim"] = latent
                    n_params = parameter_count(config_from_dict(custom))
                    st.caption(f"{n_params:,} parameters")
            request = TrainRequest(
                preset=preset,
                dataset=dataset,
                epochs=epochs,
                batch_size=batch,
                lr=lr,
                optimizer=optimizer,
                latent_dim=latent,
                limit=limit or None,
                device=device,
                seed=seed,
                early_stopping_patience=patience or None,
                precision=precision,
                data_dir=DATA_DIR,
                model=custom,
                train_overrides={"lr_schedule": schedule, "weight_decay": wd},
            )
            request.train_config()  # out-of-range values are reported before the button is pressed
            name_key = f"tr_name_{preset}_{dataset}"
            if name_key not in st.session_state:
                # Set once, not passed as the widget's value: a default that changes (it holds the
                # time) would make Streamlit reset what the user typed on the next rerun.
                st.session_state[name_key] = default_name(preset, dataset)
            name = st.text_input("Save as", key=name_key, help="Letters, digits, '.', '_' and '-'.")
            overwrite = st.checkbox("Overwrite a model of the same name", key="tr_overwrite")
        else:
            names = [i.name for i in store().list() if i.ok]
            if not names:
                st.info("No saved model yet: train one from a preset first.")
            else:
                current = st.session_state.get(MODEL_KEY)
                resume_from = st.selectbox(
                    "Model", names, index=names.index(current) if current in names else 0, key="tr_resume"
                )
                tm = load_model(resume_from)
                st.caption(
                    f"{tm.meta.preset} on {tm.meta.dataset}, {len(tm.history)} epoch(s) so far; "
                    "training continues with its optimizer state and is saved under the same name."
                )
                c1, c2 = st.columns(2)
                more = int(c1.number_input("More epochs", 1, 10_000, 5, key="tr_more"))
                lr_text = c2.text_input("Learning rate (empty: as before)", "", key="tr_resume_lr")
                lr = float(lr_text) if lr_text.strip() else None
                request = resume_request(tm, more, lr, data_dir=DATA_DIR)
                name = resume_from
    except AecoreError as e:
        show_error(e)
        request = None
    except ValueError as e:
        show_error(ConfigError(f"check the form: {e}"))
        request = None

    start_col, stop_col = st.columns(2)
    start_col.button(
        "Train",
        type="primary",
        key="tr_start",
        disabled=request is None or running,
        on_click=_start,
        args=(request, name, resume_from, overwrite),
        width="stretch",
    )
    stop_col.button("Stop", key="tr_stop", disabled=not running, on_click=lambda: job and job.stop(), width="stretch")
    if "tr_error" in st.session_state:
        st.error(st.session_state["tr_error"], icon="⚠️")


# --- the live view ----------------------------------------------------------------------
def _loss_figure(v: JobView) -> go.Figure:
    fig = go.Figure()
    if v.steps:
        df = pd.DataFrame(v.steps)
        spe = max(v.steps_per_epoch, 1)
        x = df["step"] / spe  # steps -> epochs, so step and epoch curves share an axis
        for col in [c for c in df.columns if c not in ("step", "epoch")]:
            fig.add_scatter(x=x, y=df[col], mode="lines", name=f"train {col} (step)", opacity=0.6)
    if v.history:
        h = pd.DataFrame(v.history)
        fig.add_scatter(x=h["epoch"], y=h["train_loss"], mode="lines+markers", name="train loss (epoch)")
        if "val_loss" in h and h["val_loss"].notna().any():
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


def _snapshot_views(v: JobView, kind: str) -> None:
    snap = v.snapshot
    if snap is None:
        st.caption("Reconstructions and codes appear after the first second of training.")
        return
    left, right = st.columns(2)
    with left:
        if kind == "image":
            st.image(
                enlarge(figures.recon_grid(snap.originals, snap.reconstructions, n=10)),
                width="stretch",
                output_format="PNG",
                caption="validation originals (top) over reconstructions (bottom)",
            )
        elif kind == "vector":
            o, r = (
                snap.originals.reshape(len(snap.originals), -1),
                snap.reconstructions.reshape(len(snap.originals), -1),
            )
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
            st.plotly_chart(fig, key="tr_live_points")
        else:
            rows = [
                f"{' '.join(map(str, a.astype(int)))} -> {' '.join(map(str, b.astype(int)))}"
                for a, b in zip(snap.originals[:5], snap.reconstructions[:5])
            ]
            st.code("\n".join(rows), language=None)
    with right:
        codes = snap.codes.reshape(len(snap.codes), -1)
        if codes.shape[1] >= 1 and len(codes) > 1:
            xy = latent.project_2d(codes, "pca")
            labels = None if snap.labels is None else snap.labels.astype(str)
            fig = go.Figure(
                go.Scattergl(
                    x=xy[:, 0],
                    y=xy[:, 1],
                    mode="markers",
                    text=labels,
                    marker=dict(
                        size=4, color=None if snap.labels is None else snap.labels, colorscale="Turbo", showscale=False
                    ),
                )
            )
            how = "as is" if codes.shape[1] <= 2 else f"PCA of {codes.shape[1]}-D codes"
            fig.update_layout(
                template="plotly_dark",
                height=300,
                margin=dict(l=10, r=10, t=30, b=10),
                title=f"codes of validation items ({how}), coloured by label",
            )
            st.plotly_chart(fig, key="tr_live_codes")


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@st.fragment(run_every=POLL_S if running else None)
def live_panel(job_id: str, was_running: bool) -> None:
    job = reg.get(job_id)
    if job is None:
        return
    job.touch()
    v = job.view()
    icon = {
        "queued": "⏳",
        "preparing": "⏳",
        "running": "🔄",
        "saving": "💾",
        "done": "✅",
        "stopped": "⏹️",
        "early_stopped": "✅",
        "diverged": "⚠️",
        "failed": "❌",
    }.get(v.status, "")
    st.subheader(f"{icon} {v.name}")
    st.progress(
        v.progress,
        text=f"{v.status}: epoch {v.epoch}/{v.epochs}"
        + (f", step {v.step}/{v.steps_per_epoch}" if v.status == "running" and v.steps_per_epoch else ""),
    )
    if v.status in ("diverged", "failed"):
        st.error(v.message, icon="⚠️")
    elif v.status == "queued":
        st.warning(v.message, icon="⏳")
    else:
        st.caption(v.message)
    m = st.columns(5)
    last = v.steps[-1]["loss"] if v.steps else None
    val = v.history[-1].get("val_loss") if v.history else None
    m[0].metric("Images/s", f"{v.images_per_s:,.0f}")
    m[1].metric("Elapsed", _fmt_s(v.elapsed_s))
    m[2].metric("Time left", _fmt_s(v.eta_s) if v.active else "-")
    m[3].metric("Train loss", "-" if last is None else f"{last:.4g}")
    m[4].metric("Validation loss", "-" if val is None else f"{val:.4g}")
    st.plotly_chart(_loss_figure(v), key="tr_loss_chart")
    kind = DATASETS[v.dataset].kind if v.dataset in DATASETS else "image"
    _snapshot_views(v, kind)
    if v.saved_as and not v.active:
        st.success(f"Saved as '{v.saved_as}'. Explore it:", icon="💾")
        st.session_state[MODEL_KEY] = v.saved_as
        links = st.columns(4)
        for col, (page, label) in zip(
            links,
            [
                ("pages/reconstruct.py", "Reconstruct"),
                ("pages/latent.py", "Latent space"),
                ("pages/generate.py", "Generate"),
                ("pages/compare.py", "Compare"),
            ],
        ):
            col.page_link(page, label=label)
    if was_running and not v.active:
        st.rerun()  # one full run: re-enable the form and stop polling


with live_col:
    if job is not None:
        live_panel(job.id, running)
    else:
        st.info(
            "No run selected. Choose a preset and press **Train**; the run's id goes into the URL, "
            "so you can reload or come back to it later.",
            icon="ℹ️",
        )

    jobs = reg.jobs()
    if jobs:
        with st.expander(f"All runs on this server ({len(jobs)})", expanded=job is None):
            rows = [
                {
                    "run": j.id,
                    "model": (v := j.view()).name,
                    "preset": v.preset,
                    "dataset": v.dataset,
                    "status": v.status,
                    "epoch": f"{v.epoch}/{v.epochs}",
                    "device": v.device,
                }
                for j in jobs
            ]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            pick = st.selectbox(
                "Show run",
                [j.id for j in jobs],
                key="tr_show",
                format_func=lambda i: f"{i} ({reg.get(i).view().name})" if reg.get(i) else i,
            )
            if st.button("Show", key="tr_show_btn"):
                st.session_state["tr_job"] = pick
                st.query_params[JOB_PARAM] = pick
                st.rerun()
