"""What the dashboard and the CLI ask of a trained model, as plain functions.

Everything takes and returns numpy arrays in *display space*: images float32
(N, C, H, W) in [0, 1] (uint8 input is divided by 255), points (N, D) in their
own units, token ids (N, T) int64 for sequences. Model calls run batched under
``torch.inference_mode()`` in eval mode, so 70,000 MNIST images need no more
memory than one batch of activations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from aecore.errors import ConfigError
from aecore.models.trained import TrainedModel

DEFAULT_BATCH = 4096
VAE_PRIOR_RANGE = (-3.0, 3.0)  # ±3 standard deviations of N(0, 1) hold 99.7% of the prior
MAX_GRID = 50


# --- helpers ------------------------------------------------------------------
@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the previous mode comes back
    so that a model shared with a training thread is left as it was found."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _device(tm: TrainedModel) -> torch.device:
    return next(tm.model.parameters()).device


def _sample_shape(tm: TrainedModel) -> tuple[int, ...]:
    return tuple(tm.model.config.input_shape)


def _is_sequence(tm: TrainedModel) -> bool:
    return tm.data_kind == "sequence"


def _as_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_batch(tm: TrainedModel, x) -> np.ndarray:
    """Validate a batch against the model's input shape; images as float32 in [0, 1].

    (N, H, W) is accepted for one-channel models: MNIST arrays often come without
    the channel axis."""
    x = _as_numpy(x)
    shape = _sample_shape(tm)
    if _is_sequence(tm):
        if x.ndim != 2 or x.shape[1:] != shape:
            raise ConfigError(f"this model reads token sequences of shape (N, {shape[0]}); got {x.shape}.")
        if not np.issubdtype(x.dtype, np.integer):
            raise ConfigError("a sequence model reads integer token ids.")
        return x.astype(np.int64, copy=False)
    if len(shape) == 3 and shape[0] == 1 and x.ndim == 3 and x.shape[1:] == shape[1:]:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        raise ConfigError(f"this model reads items of shape {shape}; got a batch of shape {x.shape}.")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32, copy=False)


def _batches(n: int, batch_size: int) -> range:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer; got {batch_size!r}.")
    return range(0, n, batch_size)


def _model_input(tm: TrainedModel, xb: np.ndarray) -> torch.Tensor:
    if _is_sequence(tm):
        return torch.as_tensor(xb, dtype=torch.long, device=_device(tm))
    return tm.to_model_space(torch.as_tensor(xb))


def _model_output(tm: TrainedModel, out: torch.Tensor) -> np.ndarray:
    """Model-space output -> display space (token ids pass through)."""
    if _is_sequence(tm):
        return out.cpu().numpy().astype(np.int64, copy=False)
    return tm.to_display(out).cpu().numpy().astype(np.float32, copy=False)


def _decode_tensor(tm: TrainedModel, z: torch.Tensor) -> torch.Tensor:
    out = tm.model.decode(z)
    # The sequence decoder returns logits (B, T, V); what is shown are the chosen tokens.
    return out.argmax(-1) if _is_sequence(tm) else out


# --- the model's own functions ---------------------------------------------------
def encode(tm: TrainedModel, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Codes (N, latent_dim) from ``model.embed``: a VAE's posterior mean, a
    convolutional model's feature map flattened."""
    x = _check_batch(tm, x)
    out = []
    with _eval_mode(tm.model):
        for i in _batches(len(x), batch_size):
            out.append(tm.model.embed(_model_input(tm, x[i : i + batch_size])).float().cpu().numpy())
    if not out:
        return np.zeros((0, tm.model.latent_dim), np.float32)
    return np.concatenate(out)


def reconstruct(tm: TrainedModel, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Reconstructions in display space, shaped like ``x`` (images clamped to
    [0, 1]); for a sequence model the predicted token ids (N, output_len)."""
    x_in = _as_numpy(x)
    x = _check_batch(tm, x_in)
    out = []
    with _eval_mode(tm.model):
        for i in _batches(len(x), batch_size):
            out.append(_model_output(tm, tm.model.reconstruct(_model_input(tm, x[i : i + batch_size]))))
    if _is_sequence(tm):
        return np.concatenate(out) if out else np.zeros((0, tm.model.config.output_len), np.int64)
    rec = np.concatenate(out) if out else np.zeros(x.shape, np.float32)
    return rec.reshape(x_in.shape)  # (N, 1, H, W) back to (N, H, W) when that is what came in


def decode(tm: TrainedModel, z: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Codes (N, latent_dim) or one code (latent_dim,) -> (N, *sample_shape) in
    display space (token ids (N, output_len) for a sequence model)."""
    z = np.asarray(_as_numpy(z), dtype=np.float32)
    if z.ndim == 1:
        z = z[None]  # (latent_dim,) -> (1, latent_dim)
    d = tm.model.latent_dim
    if z.ndim != 2 or z.shape[1] != d:
        raise ConfigError(f"codes for this model have {d} values each; got an array of shape {z.shape}.")
    if len(z) == 0:
        tail = (tm.model.config.output_len,) if _is_sequence(tm) else _sample_shape(tm)
        return np.zeros((0, *tail), np.int64 if _is_sequence(tm) else np.float32)
    out = []
    with _eval_mode(tm.model):
        for i in _batches(len(z), batch_size):
            zb = torch.as_tensor(z[i : i + batch_size], device=_device(tm))
            out.append(_model_output(tm, _decode_tensor(tm, zb)))
    return np.concatenate(out)


def _one_item(tm: TrainedModel, x) -> np.ndarray:
    """One item (sample_shape) or a batch of one -> a batch of one."""
    x = _as_numpy(x)
    shape = _sample_shape(tm)
    if x.shape == shape or (len(shape) == 3 and shape[0] == 1 and x.shape == shape[1:]):
        x = x[None]
    if len(x) != 1:
        raise ConfigError(f"expected one item of shape {shape}; got an array of shape {x.shape}.")
    return x


def interpolate(tm: TrainedModel, x_a: np.ndarray, x_b: np.ndarray, steps: int = 8) -> np.ndarray:
    """Decode ``steps`` codes on the straight line from code(x_a) to code(x_b),
    both ends included: (steps, *sample_shape)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 1000:
        raise ConfigError(f"interpolation steps must be an integer from 2 to 1000; got {steps!r}.")
    za = encode(tm, _one_item(tm, x_a))[0]
    zb = encode(tm, _one_item(tm, x_b))[0]
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # (steps, 1)
    # Written as (1-t)·a + t·b so that both ends are exactly the two codes.
    return decode(tm, (1 - t) * za[None] + t * zb[None])


# --- the latent space --------------------------------------------------------------
def latent_ranges(tm: TrainedModel, codes: np.ndarray | None = None) -> np.ndarray:
    """Slider ranges (latent_dim, 2).

    A VAE's codes are drawn towards N(0, 1), so its prior's ±3 is used. Other
    models' codes live wherever training put them: the 1st..99th percentiles of
    ``codes`` (outliers would make the sliders coarse), widened by 10% so the
    extremes are reachable; a constant (dead) unit gets ±1 around its value."""
    d = tm.model.latent_dim
    if tm.model.is_variational:
        return np.tile(np.array(VAE_PRIOR_RANGE, np.float32), (d, 1))
    if codes is None:
        raise ConfigError(
            "this model is not variational: pass codes of some data (from encode) to know where its latent values lie."
        )
    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)  # (N, ...) -> (N, latent_dim)
    if codes.shape[1] != d or len(codes) == 0:
        raise ConfigError(f"expected codes of shape (N, {d}) with N >= 1; got {codes.shape}.")
    lo, hi = np.nanpercentile(codes, [1, 99], axis=0)
    span = hi - lo
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    flat = ~(span > 1e-6)  # also catches NaN from an all-NaN column
    centre = np.where(np.isfinite(lo), (lo + hi) / 2, 0.0)
    lo = np.where(flat, centre - 1.0, lo)
    hi = np.where(flat, centre + 1.0, hi)
    return np.stack([lo, hi], 1).astype(np.float32)


def latent_grid(
    tm: TrainedModel,
    dims: tuple[int, int] = (0, 1),
    n: int = 10,
    ranges: np.ndarray | None = None,
    base: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """Decode an n x n grid over two latent dimensions: (n, n, *sample_shape).

    ``grid[i, j]`` decodes the code ``base`` with ``dims[0]`` set to the i-th and
    ``dims[1]`` to the j-th of n evenly spaced values across ``ranges``; the other
    dimensions stay at ``base``. Defaults: a VAE uses its prior (ranges ±3, base
    0); other models need ``codes`` (ranges from :func:`latent_ranges`, base their
    median) or explicit ``ranges`` (base then the middle of the ranges)."""
    d = tm.model.latent_dim
    if d < 2:
        raise ConfigError("a latent grid needs a code of at least 2 dimensions; this model has 1.")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_GRID:
        raise ConfigError(f"the grid size must be an integer from 1 to {MAX_GRID}; got {n!r}.")
    d0, d1 = (int(v) for v in dims)
    if d0 == d1 or not (0 <= d0 < d and 0 <= d1 < d):
        raise ConfigError(f"choose two different latent dimensions between 0 and {d - 1}; got {tuple(dims)}.")
    if ranges is None:
        ranges = latent_ranges(tm, codes)
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (d, 2):
        raise ConfigError(f"ranges must have shape ({d}, 2); got {ranges.shape}.")
    if base is None:
        if tm.model.is_variational:
            base = np.zeros(d, np.float32)
        elif codes is not None:
            base = np.median(np.asarray(codes, np.float32).reshape(len(codes), -1), axis=0)
        else:
            base = ranges.mean(1)
    base = np.asarray(base, dtype=np.float32).reshape(-1)
    if base.shape != (d,):
        raise ConfigError(f"base must be a code of {d} values; got shape {base.shape}.")
    v0 = np.linspace(ranges[d0, 0], ranges[d0, 1], n, dtype=np.float32)
    v1 = np.linspace(ranges[d1, 0], ranges[d1, 1], n, dtype=np.float32)
    z = np.tile(base, (n, n, 1))  # (n, n, d)
    z[:, :, d0] = v0[:, None]
    z[:, :, d1] = v1[None, :]
    out = decode(tm, z.reshape(n * n, d))
    return out.reshape(n, n, *out.shape[1:])  # (n*n, ...) -> (n, n, ...)


# --- errors and baselines ------------------------------------------------------------
def per_item_errors(
    tm: TrainedModel, x: np.ndarray, target: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH
) -> np.ndarray:
    """Per-item mean squared error in display space (N,): the anomaly score.

    ``target`` is what the reconstruction is compared with (default ``x``). A
    sequence model needs it and scores 1.0 where the predicted sequence differs
    from the target anywhere, else 0.0."""
    rec = reconstruct(tm, x, batch_size)
    if _is_sequence(tm):
        if target is None:
            raise ConfigError("a sequence model predicts a target sequence: pass target.")
        t = np.asarray(_as_numpy(target))
        if t.shape != rec.shape:
            raise ConfigError(f"targets must have shape {rec.shape}; got {t.shape}.")
        return np.any(rec != t, axis=1).astype(np.float32)
    ref = _check_batch(tm, x if target is None else target)
    if len(ref) != len(rec):
        raise ConfigError(f"got {len(rec)} items but {len(ref)} targets.")
    d = math.prod(ref.shape[1:])
    rec = rec.reshape(len(rec), d)  # (N, *sample_shape) -> (N, D)
    ref = ref.reshape(len(ref), d)
    out = np.empty(len(ref), np.float32)
    for i in _batches(len(ref), batch_size):  # float64 differences, one batch at a time
        diff = rec[i : i + batch_size].astype(np.float64) - ref[i : i + batch_size]
        out[i : i + batch_size] = np.mean(diff * diff, axis=1)
    return out


def sequence_accuracy(
    tm: TrainedModel, x: np.ndarray, target: np.ndarray, batch_size: int = DEFAULT_BATCH
) -> dict[str, float]:
    """Exact-match rate of whole sequences and rate of correct tokens."""
    if not _is_sequence(tm):
        raise ConfigError("sequence accuracy applies to a sequence model only.")
    pred = reconstruct(tm, x, batch_size)
    t = np.asarray(_as_numpy(target))
    if t.shape != pred.shape:
        raise ConfigError(f"targets must have shape {pred.shape}; got {t.shape}.")
    if len(t) == 0:
        raise ConfigError("no sequences to score.")
    hit = pred == t
    return {"sequence_accuracy": float(hit.all(1).mean()), "token_accuracy": float(hit.mean())}
