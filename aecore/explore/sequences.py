"""Seed 000's sequence task as small functions: read a typed sequence, the
expected answer, and fresh random examples.

The task (``reverse-seq`` in :mod:`aecore.data.builtin`): the input is
``length`` random integers from 1 to ``vocab - 1`` (6 from 1..50 in the seed);
the answer is its first ``out_len`` (3) integers in reverse order. Token 0 is
never data: it is the decoder's start token.
"""

from __future__ import annotations

import re

import numpy as np

from aecore.errors import ConfigError
from aecore.explore import inference
from aecore.models.trained import TrainedModel

_SEPARATORS = re.compile(r"[\s,;]+")


def parse_tokens(text: str, length: int, vocab: int) -> np.ndarray:
    """A sequence typed as integers separated by spaces or commas -> (length,) int64.

    The model reads exactly ``length`` tokens from 1 to ``vocab - 1``; anything
    else raises a ConfigError that says what was wrong."""
    parts = [p for p in _SEPARATORS.split((text or "").strip()) if p]
    if not parts:
        raise ConfigError(f"type {length} integers from 1 to {vocab - 1}, separated by spaces or commas.")
    bad = [p for p in parts if not re.fullmatch(r"[+-]?\d+", p)]
    if bad:
        shown = ", ".join(repr(p) for p in bad[:5])
        raise ConfigError(f"only whole numbers are allowed: {shown} {'is' if len(bad) == 1 else 'are'} not an integer.")
    ids = np.array([int(p) for p in parts], dtype=np.int64)
    out = [int(v) for v in ids if not 1 <= v <= vocab - 1]
    if out:
        shown = ", ".join(map(str, out[:5]))
        zero = " (0 is the decoder's start token, never data)" if 0 in out else ""
        raise ConfigError(
            f"the vocabulary is 1 to {vocab - 1}: {shown} {'is' if len(out) == 1 else 'are'} outside it{zero}."
        )
    if len(ids) != length:
        raise ConfigError(f"this model reads exactly {length} numbers; you typed {len(ids)}.")
    return ids


def expected_output(x: np.ndarray, out_len: int) -> np.ndarray:
    """The task's answer: the first ``out_len`` tokens reversed. (T,) -> (out_len,)
    or (N, T) -> (N, out_len)."""
    x = np.asarray(x)
    if x.shape[-1] < out_len:
        raise ConfigError(f"a sequence needs at least {out_len} tokens; got {x.shape[-1]}.")
    return np.ascontiguousarray(x[..., :out_len][..., ::-1])


def random_sequences(
    n: int, length: int, vocab: int, out_len: int, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fresh examples drawn as the dataset draws them: inputs (n, length)
    int64 in 1..vocab-1 and their expected outputs (n, out_len)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"the number of sequences must be a positive integer; got {n!r}.")
    x = np.random.default_rng(seed).integers(1, vocab, size=(int(n), length), dtype=np.int64)
    return x, expected_output(x, out_len)


def format_tokens(ids) -> str:
    return " ".join(str(int(v)) for v in np.asarray(ids).reshape(-1))


def task_description(length: int, vocab: int, out_len: int) -> str:
    """Seed 000's task, encoder, decoder and recipe as markdown."""
    return f"""
- **Input**: {length} random integers from 1 to {vocab - 1}, e.g. `12 7 33 4 9 41`.
  Each is one-hot encoded over a vocabulary of {vocab} classes; class 0 never occurs in the data,
  it is the decoder's *start* token.
- **Output**: the first {out_len} integers **in reverse order**: `12 7 33 4 9 41` → `33 7 12`.
  The last {length - out_len} inputs are distractors the model must learn to ignore.
- **Encoder**: LSTM(128) reads the {length} one-hot tokens; its final state (h, c), 256 numbers,
  is the code.
- **Decoder**: LSTM(128) started from that state, then a softmax over {vocab} classes. Training uses
  *teacher forcing* (it reads `[0] + target[:-1]`); predicting is *greedy*: start from token 0 and feed
  back its own most likely token, {out_len} steps.
- **The seed's recipe**: 100,000 training sequences, Adam (lr 0.001), batch 32, 1 epoch,
  categorical cross-entropy. Chance is 1 in {vocab - 1} per token.
"""


def seed_task_sizes() -> tuple[int, int, int]:
    """(length, vocab, out_len) of seed 000's task: 6 tokens in, a vocabulary of 51, 3 out."""
    from aecore.models import Seq2SeqConfig

    cfg = Seq2SeqConfig()
    return int(cfg.input_shape[0]), int(cfg.vocab), int(cfg.output_len)


def task_sizes(tm: TrainedModel) -> tuple[int, int, int]:
    """(length, vocab, out_len) of a sequence model."""
    cfg = tm.model.config
    return int(cfg.input_shape[0]), int(cfg.vocab), int(cfg.output_len)


def random_text(tm: TrainedModel) -> str:
    """One fresh example input for ``tm``, as it would be typed."""
    x, _ = random_sequences(1, *task_sizes(tm))
    return format_tokens(x[0])


def answer(tm: TrainedModel, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A typed sequence -> (its tokens, the expected answer, the model's answer)."""
    length, vocab, out_len = task_sizes(tm)
    ids = parse_tokens(text, length, vocab)
    pred = inference.reconstruct(tm, ids[None])[0]
    return ids, expected_output(ids, out_len), pred


def score_random(
    tm: TrainedModel, n: int, shown: int = 8, seed: int | None = None
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy on ``n`` fresh sequences, and the first ``shown`` of them:
    (accuracy dict, inputs, expected outputs, predicted outputs)."""
    length, vocab, out_len = task_sizes(tm)
    x, target = random_sequences(int(n), length, vocab, out_len, seed)
    acc = inference.sequence_accuracy(tm, x, target)
    return acc, x[:shown], target[:shown], inference.reconstruct(tm, x[:shown])


def examples_table(inputs: np.ndarray, targets: np.ndarray, predictions: np.ndarray) -> dict[str, list[str]]:
    return {
        "input": [format_tokens(v) for v in inputs],
        "expected": [format_tokens(v) for v in targets],
        "predicted": [format_tokens(v) for v in predictions],
        "right": ["✓" if (p == t).all() else "✗" for p, t in zip(predictions, targets)],
    }


__all__ = [
    "answer",
    "examples_table",
    "expected_output",
    "format_tokens",
    "parse_tokens",
    "random_sequences",
    "random_text",
    "score_random",
    "task_description",
    "task_sizes",
]
