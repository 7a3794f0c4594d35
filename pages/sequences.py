"""Sequences: seed 000's LSTM sequence-to-sequence autoencoder. Train it in the
background, then type a sequence and see what it answers."""

import pandas as pd
import streamlit as st

from aecore.errors import AecoreError
from aecore.explore import inference
from aecore.explore.sequences import expected_output, format_tokens, parse_tokens, random_sequences
from aecore.models.seq import Seq2SeqConfig
from aecore.runs.request import TrainRequest
from pages._common import MODEL_KEY, ensure_navigation, pick_model, show_error
from pages._job_panel import attach_run, run_panel, start_run

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
    request = TrainRequest(
        preset=PRESET,
        dataset=DATASET,
        epochs=int(epochs),
        batch_size=int(batch),
        lr=float(lr),
        limit=int(n),
        device="auto",
    )
    if start_run("seq_job", request, name.strip() or None, session_key="seq_job"):
        st.rerun()
st.button(
    "Stop",
    key="seq_stop",
    on_click=lambda: job and job.stop(),
    disabled=not active,
    help="Stops after the current batch and saves what was trained so far.",
)
if job is None:
    st.caption("No training job in this session yet.")
run_panel(job, "seq", kind="sequence", explore_links=False)

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
