"""Sequences: seed 000's LSTM sequence-to-sequence autoencoder. Train it in the
background, then type a sequence and see what it answers."""

import pandas as pd
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import sequences as seq
from aecore.runs.request import TrainRequest
from pages._common import MODEL_KEY, ensure_navigation, pick_model, show_error
from pages._job_panel import attach_run, start_run
from pages._run_view import run_panel

ensure_navigation()  # before anything is drawn: see pages/_common.py

PRESET, DATASET = "seq2seq-lstm", "reverse-seq"
FIXED = dict(preset=PRESET, dataset=DATASET, device="auto")  # this page trains only seed 000's model
LENGTH, VOCAB, OUT_LEN = seq.seed_task_sizes()

st.title("Sequences")
st.caption(
    "An autoencoder need not copy its input: seed 000's LSTM encoder squeezes a whole sequence into its "
    "final state, and an LSTM decoder unrolls an answer from that state alone."
)

with st.expander("The task (seed 000)", expanded=True):
    st.markdown(seq.task_description(LENGTH, VOCAB, OUT_LEN))

# --- 1. Train --------------------------------------------------------------------------
st.header("1 · Train")
job = attach_run("seq_job", "seq_job")  # a reloaded page finds and adopts its run through the URL
active = job is not None and job.view().active
with st.form("seq_form"):
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input(
        "Training sequences",
        100,
        100_000,
        100_000,
        step=1000,
        key="seq_n",
        persist_state="session",
        help="The seed trains on 100,000; 5,000 already give a model that is often right.",
    )
    epochs = c2.number_input("Epochs", 1, 50, 1, key="seq_epochs", persist_state="session")
    batch = c3.number_input("Batch size", 1, 4096, 32, key="seq_batch", persist_state="session")
    lr = c4.number_input(
        "Learning rate", 1e-5, 1.0, 1e-3, step=1e-4, format="%.4f", key="seq_lr", persist_state="session"
    )
    name = st.text_input("Save as", key="seq_name", placeholder=f"automatic: {PRESET}-{DATASET}-YYYYMMDD-HHMMSS")
    pressed = st.form_submit_button("Train in the background", type="primary", disabled=active, key="seq_train")
if pressed:
    request = TrainRequest(**FIXED, epochs=int(epochs), batch_size=int(batch), lr=float(lr), limit=int(n))
    if start_run("seq_job", request, name.strip() or None, session_key="seq_job"):
        st.rerun()
if job is None:
    st.caption("No training job in this session yet.")
run_panel(job, "seq", kind="sequence", explore_links=False, page_saw_active=active)

# --- 2. Try it -------------------------------------------------------------------------
st.header("2 · Try it")
tm = pick_model(kind="sequence")
if tm is None:
    st.caption(
        f"Or train one in part 1 above (`{PRESET}` on `{DATASET}`): with 5,000 sequences it takes "
        "a few seconds on a CPU."
    )
    st.stop()
length, vocab, out_len = seq.task_sizes(tm)
if "sequence_accuracy" in tm.metrics:
    st.caption(
        f"On its test set: {tm.metrics['sequence_accuracy']:.1%} of sequences and "
        f"{tm.metrics['token_accuracy']:.1%} of tokens right."
    )

left, right = st.columns([4, 1], vertical_alignment="bottom")
text = left.text_input(
    f"A sequence of {length} integers from 1 to {vocab - 1} (spaces or commas between them)",
    key="seq_input",
    placeholder="e.g. 12 7 33 4 9 41",
)
right.button(
    "🎲 Random example",
    key="seq_random",
    on_click=lambda: st.session_state.update(seq_input=seq.random_text(tm)),
    width="stretch",
)


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
        ids, expected, pred = seq.answer(tm, text)
    except AecoreError as e:
        show_error(e, "cannot read this sequence")
    else:
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
    try:
        scored = seq.score_random(tm, int(n_eval))
    except AecoreError as e:
        show_error(e, "cannot score this model")
    else:
        st.session_state["seq_eval_result"] = (st.session_state.get(MODEL_KEY), int(n_eval), *scored)
result = st.session_state.get("seq_eval_result")
if result and result[0] == st.session_state.get(MODEL_KEY):
    _, n, acc, xs, ts, ps = result
    c1, c2, c3 = st.columns(3)
    c1.metric("Whole sequences right", f"{acc['sequence_accuracy']:.1%}")
    c2.metric("Tokens right", f"{acc['token_accuracy']:.1%}")
    c3.metric("Chance per token", f"{1 / (vocab - 1):.1%}")
    st.caption(f"{n:,} sequences drawn just now, as the dataset draws them; a few of them:")
    st.dataframe(pd.DataFrame(seq.examples_table(xs, ts, ps)), hide_index=True, width="stretch")
else:
    st.caption("Press **Measure** to score the model on sequences it has never seen.")
