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


__all__ = ["expected_output", "format_tokens", "parse_tokens", "random_sequences"]
