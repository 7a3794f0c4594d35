"""Sequences: seed 000's LSTM sequence-to-sequence autoencoder. Train it in the
background, then type a sequence and see what it answers."""

import pandas as pd
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import inference
from aecore.explore.sequences import expected_output, format_tokens, parse_tokens, random_sequences
from aecore.models.seq import Seq2SeqConfig
from aecore.runs.jobs import step_frame
from aecore.runs.pipeline import default_name
from aecore.runs.request import TrainRequest
from pages._common import MODEL_KEY, ensure_navigation, pick_model, registry, remember_job, show_error

ensure_navigation()  # before anything is drawn: see pages/_common.py

PRESET, DATASET = "seq2seq-lstm", "reverse-seq"
TASK = Seq2SeqConfig()  # the seed's sizes: 6 tokens in, vocabulary 51, 3 tokens out
LENGTH, VOCAB, OUT_LEN = TASK.input_shape[0], TASK.vocab, TASK.output_len
JOB_KEY = "seq_job"

st.title("Sequences")
st.caption(
    "An autoencoder need not copy its input: seed 000's LSTM encoder squeezes a whole sequence into its "
    "final state, and an LSTM decoder unrolls an answer from that state alone."
)

with st.expander("The task (seed 000)", expanded=True):
    st.markdown(f"""
- **Input**: {LENGTH} random integers from 1 to {VOCAB - 1}, e.g. `12 7 33 4 9 41`.
  Each is one-hot encoded over a vocabulary of {VOCAB} classes; class 0 never occurs in the data,
  it is the decoder's *start* token.
- **Output**: the first {OUT_LEN} integers **in reverse order**: `12 7 33 4 9 41` → `33 7 12`.
  The last {LENGTH - OUT_LEN} inputs are distractors the model must learn to ignore.
- **Encoder**: LSTM(128) reads the {LENGTH} one-hot tokens; its final state (h, c), 256 numbers,
  is the code.
- **Decoder**: LSTM(128) started from that state, then a softmax over {VOCAB} classes. Training uses
  *teacher forcing* (it reads `[0] + target[:-1]`); predicting is *greedy*: start from token 0 and feed
  back its own most likely token, {OUT_LEN} steps.
- **The seed's recipe**: 100,000 training sequences, Adam (lr 0.001), batch 32, 1 epoch,
  categorical cross-entropy. Chance is 1 in {VOCAB - 1} per token.
""")

# --- 1. Train --------------------------------------------------------------------------
st.header("1 · Train")
job_id = st.session_state.get(JOB_KEY) or st.query_params.get(JOB_KEY)
job = registry().get(job_id)
if job_id and job is None:
    # The server restarted (or the job was forgotten): nothing to re-attach to.
    st.session_state.pop(JOB_KEY, None)
    st.query_params.pop(JOB_KEY, None)
elif job is not None:
    st.session_state[JOB_KEY] = job.id  # a reload found it through the URL: keep it in the session too
    st.query_params[JOB_KEY] = job.id
view = job.view() if job is not None else None
active = bool(view and view.active)


def _start() -> None:
    ss = st.session_state
    ss.pop("seq_start_error", None)
    request = TrainRequest(
        preset=PRESET,
        dataset=DATASET,
        epochs=int(ss["seq_epochs"]),
        batch_size=int(ss["seq_batch"]),
        lr=float(ss["seq_lr"]),
        limit=int(ss["seq_n"]),
        device="auto",
    )
    name = (ss.get("seq_name") or "").strip() or default_name(PRESET, DATASET)
    try:
        new = registry().submit(request, name)
    except AecoreError as e:
        ss["seq_start_error"] = str(e)
        return
    ss[JOB_KEY] = new.id
    remember_job(new.id)
    st.query_params[JOB_KEY] = new.id


def _stop() -> None:
    j = registry().get(st.session_state.get(JOB_KEY))
    if j is not None:
        j.stop()


with st.form("seq_form"):
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input(
        "Training sequences",
        100,
        100_000,
        100_000,
        step=1000,
        key="seq_n",
        persist_state="session",
        help="The seed trains on 100,000; 5,000 already give a model that is often right.",
    )
    c2.number_input("Epochs", 1, 50, 1, key="seq_epochs", persist_state="session")
    c3.number_input("Batch size", 1, 4096, 32, key="seq_batch", persist_state="session")
    c4.number_input("Learning rate", 1e-5, 1.0, 1e-3, step=1e-4, format="%.4f", key="seq_lr", persist_state="session")
    st.text_input("Save as", key="seq_name", placeholder=f"automatic: {PRESET}-{DATASET}-HHMMSS")
    st.form_submit_button("Train in the background", type="primary", on_click=_start, disabled=active, key="seq_train")
if err := st.session_state.get("seq_start_error"):
    st.error(f"Training did not start: {err}", icon="⚠️")
st.button(
    "Stop",
    key="seq_stop",
    on_click=_stop,
    disabled=not active,
    help="Stops after the current batch and saves what was trained so far.",
)


@st.fragment(run_every=1.0 if active else None)
def _progress() -> None:
    j = registry().get(st.session_state.get(JOB_KEY))
    if j is None:
        st.caption("No training job in this session yet.")
        return
    j.touch()
    v = j.view()
    step = f", step {v.step}/{v.steps_per_epoch}" if v.status == "running" and v.steps_per_epoch else ""
    st.progress(v.progress, text=f"{v.status}: epoch {v.epoch}/{v.epochs}{step} — model '{v.name}'")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Last loss", f"{v.steps[-1]['loss']:.3f}" if v.steps else "–")
    m2.metric("Sequences/s", f"{v.images_per_s:,.0f}" if v.images_per_s else "–")
    m3.metric("Elapsed", f"{v.elapsed_s:.0f} s")
    m4.metric("Remaining", f"{v.eta_s:.0f} s" if v.active and v.eta_s is not None else "–")
    if v.steps:
        frame = pd.DataFrame(step_frame(v)).set_index("step")[["loss"]]
        st.line_chart(frame, x_label="step", y_label="cross-entropy", height=220)
    if v.status == "done":
        st.success(f"done: {v.message}", icon="✅")
    elif v.status in ("stopped", "early_stopped"):
        st.warning(f"{v.status}: {v.message}")
    elif not v.active:
        st.error(f"{v.status}: {v.message}", icon="⚠️")
    else:
        st.caption(v.message)
    if active and not v.active:
        st.rerun()  # one full run: re-enable the form, stop polling, offer the new model below


_progress()

if view is not None and not active and view.saved_as and st.session_state.get("seq_shown") != view.id:
    # The job just finished: select its model below (once, so the user can pick another afterwards).
    st.session_state["seq_shown"] = view.id
    st.session_state[MODEL_KEY] = view.saved_as
    st.session_state.pop(f"_pick_{MODEL_KEY}", None)

# --- 2. Try it -------------------------------------------------------------------------
st.header("2 · Try it")
tm = pick_model(kind="sequence")
if tm is None:
    st.caption(
        f"Or train one in part 1 above (`{PRESET}` on `{DATASET}`): with 5,000 sequences it takes "
        "a few seconds on a CPU."
    )
    st.stop()
cfg = tm.model.config
length, vocab, out_len = int(cfg.input_shape[0]), int(cfg.vocab), int(cfg.output_len)
if "sequence_accuracy" in tm.metrics:
    st.caption(
        f"On its test set: {tm.metrics['sequence_accuracy']:.1%} of sequences and "
        f"{tm.metrics['token_accuracy']:.1%} of tokens right."
    )


def _random_example() -> None:
    x, _ = random_sequences(1, length, vocab, out_len)
    st.session_state["seq_input"] = format_tokens(x[0])


left, right = st.columns([4, 1], vertical_alignment="bottom")
text = left.text_input(
    f"A sequence of {length} integers from 1 to {vocab - 1} (spaces or commas between them)",
    key="seq_input",
    placeholder="e.g. 12 7 33 4 9 41",
)
right.button("🎲 Random example", key="seq_random", on_click=_random_example, width="stretch")


def _chips(ids, ok=None, colour="blue") -> str:
    """Tokens as coloured chips; with ``ok``, green ✓ for a right token and red ✗ for a wrong one."""
    if ok is None:
        return " ".join(f":{colour}-background[**{t}**]" for t in ids)
    return " ".join(
        f":green-background[**{t}** ✓]" if good else f":red-background[**{t}** ✗]" for t, good in zip(ids, ok)
    )


if not (text or "").strip():
    st.info("Type a sequence above, or press **Random example**.", icon="⌨️")
else:
    try:
        ids = parse_tokens(text, length, vocab)
        pred = inference.reconstruct(tm, ids[None])[0]  # (1, length) -> (1, out_len) token ids
    except AecoreError as e:
        show_error(e, "cannot read this sequence")
    else:
        expected = expected_output(ids, out_len)
        ok = pred == expected
        head, tail = ids[:out_len].tolist(), ids[out_len:].tolist()
        st.markdown(f"**Input** &nbsp; {_chips(head)} {' '.join(f'`{t}`' for t in tail)}")
        st.markdown(f"**Expected** (the first {out_len} reversed) &nbsp; {_chips(expected.tolist(), colour='gray')}")
        st.markdown(f"**Predicted** &nbsp; {_chips(pred.tolist(), ok.tolist())}")
        c1, c2 = st.columns(2)
        c1.metric("Tokens right", f"{int(ok.sum())} / {out_len}")
        c2.metric("Whole sequence", "right" if ok.all() else "wrong")

st.subheader("Accuracy on fresh random sequences")
e1, e2 = st.columns([3, 1], vertical_alignment="bottom")
n_eval = e1.number_input("Sequences", 10, 100_000, 1000, step=100, key="seq_eval_n", persist_state="session")
if e2.button("Measure", key="seq_eval", width="stretch"):
    x, target = random_sequences(int(n_eval), length, vocab, out_len)
    try:
        acc = inference.sequence_accuracy(tm, x, target)
        examples = inference.reconstruct(tm, x[:8])
    except AecoreError as e:
        show_error(e, "cannot score this model")
    else:
        st.session_state["seq_eval_result"] = (
            st.session_state.get(MODEL_KEY),
            int(n_eval),
            acc,
            x[:8],
            target[:8],
            examples,
        )
result = st.session_state.get("seq_eval_result")
if result and result[0] == st.session_state.get(MODEL_KEY):
    _, n, acc, xs, ts, ps = result
    c1, c2, c3 = st.columns(3)
    c1.metric("Whole sequences right", f"{acc['sequence_accuracy']:.1%}")
    c2.metric("Tokens right", f"{acc['token_accuracy']:.1%}")
    c3.metric("Chance per token", f"{1 / (vocab - 1):.1%}")
    st.caption(f"{n:,} sequences drawn just now, as the dataset draws them; a few of them:")
    st.dataframe(
        pd.DataFrame(
            {
                "input": [format_tokens(v) for v in xs],
                "expected": [format_tokens(v) for v in ts],
                "predicted": [format_tokens(v) for v in ps],
                "right": ["✓" if (p == t).all() else "✗" for p, t in zip(ps, ts)],
            }
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("Press **Measure** to score the model on sequences it has never seen.")
