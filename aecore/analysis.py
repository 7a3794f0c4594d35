"""What the dashboard and the CLI ask of a trained model, as plain functions.

Everything takes and returns numpy arrays in *display space*: images float32
(N, C, H, W) in [0, 1] (uint8 input is divided by 255), points (N, D) in their
own units, token ids (N, T) int64 for sequences. Model calls run batched under
``torch.inference_mode()`` in eval mode, so 70,000 MNIST images need no more
memory than one batch of activations. No streamlit, no matplotlib: figures are
returned as uint8 arrays that any front end can show.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aecore.errors import ConfigError
from aecore.store import TrainedModel

DEFAULT_BATCH = 4096
VAE_PRIOR_RANGE = (-3.0, 3.0)  # ±3 standard deviations of N(0, 1) hold 99.7% of the prior
MAX_GRID = 50
# Above this input size the PCA covariance matrix (D x D, float64) gets too big
# for a dashboard process; a randomized SVD of the data is used instead.
PCA_COVARIANCE_MAX_DIM = 4096


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


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10·log10(peak² / mse), of one *mean*
    squared error (e.g. ``per_item_errors(...).mean()``). Not a mean of
    per-item PSNRs: those over-weight the items reconstructed best. ``inf``
    when mse is 0; ``peak`` is 1.0 for images in [0, 1]."""
    m = np.asarray(mse, dtype=np.float64)
    if m.size != 1:
        raise ConfigError("psnr takes one mean squared error (average the per-item errors first).")
    m = float(m.reshape(()))
    if not m >= 0 or not peak > 0:
        raise ConfigError(f"psnr needs mse >= 0 and peak > 0; got mse={m}, peak={peak}.")
    if m == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / m)


@dataclass
class PCA:
    """A fitted PCA on flattened items: ``mean`` (D,), ``components`` (k, D) with
    orthonormal rows, ``explained_variance`` (k,) and the ``sample_shape`` that
    ``inverse_transform`` restores."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    total_variance: float
    sample_shape: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.components)

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        return (
            self.explained_variance / self.total_variance
            if self.total_variance > 0
            else np.zeros_like(self.explained_variance)
        )

    def _flat(self, x) -> np.ndarray:
        x = _as_numpy(x)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x
        d = self.mean.size
        if x.size % d or (x.ndim > 1 and math.prod(x.shape[1:]) != d):
            raise ConfigError(f"PCA was fitted on items of {d} values; got an array of shape {x.shape}.")
        return x.reshape(-1, d)  # (N, *sample_shape) -> (N, D)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, *sample_shape) -> (N, k)."""
        return ((self._flat(x) - self.mean) @ self.components.T).astype(np.float32)

    def inverse_transform(self, codes: np.ndarray) -> np.ndarray:
        """(N, k) -> (N, *sample_shape); not clipped: PCA is the linear baseline."""
        codes = np.asarray(codes, dtype=np.float64).reshape(-1, self.k)
        out = codes @ self.components + self.mean  # (N, D)
        return out.astype(np.float32).reshape(len(codes), *self.sample_shape)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.inverse_transform(self.transform(x))


def pca_fit(train_x: np.ndarray, k: int, max_items: int = 20000, seed: int = 0) -> PCA:
    """PCA of flattened items (uint8 images are divided by 255). ``k`` is clipped
    to min(k, D, N); above ``max_items`` a random subset is used, which gives
    nearly the same top components at a fraction of the time."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"the number of PCA components must be a positive integer; got {k!r}.")
    x = _as_numpy(train_x)
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError(f"PCA needs a batch of items (N, ...); got shape {x.shape}.")
    sample_shape = tuple(x.shape[1:])
    if len(x) > max_items:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), max_items, replace=False))
        x = x[idx]
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x
    x = x.reshape(len(x), -1).astype(np.float64)  # (N, *sample_shape) -> (N, D)
    n, d = x.shape
    k = int(min(k, n, d))
    mean = x.mean(0)
    xc = x - mean
    total = float((xc * xc).sum() / n)
    if d <= PCA_COVARIANCE_MAX_DIM:
        # eigh of the D x D covariance: exact, and far cheaper than an SVD of N x D when N >> D
        evals, evecs = np.linalg.eigh(xc.T @ xc / n)
        order = np.argsort(evals)[::-1][:k]
        comps, var = evecs[:, order].T, np.clip(evals[order], 0, None)
    else:
        u, s, v = torch.svd_lowrank(torch.as_tensor(xc), q=min(k + 10, n, d), niter=4)
        comps, var = v[:, :k].T.numpy(), (s[:k].numpy() ** 2) / n
    return PCA(mean, np.ascontiguousarray(comps), var, total, sample_shape)


def pca_errors(pca: PCA, x: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Per-item MSE of the PCA reconstruction (N,), in the units of :func:`per_item_errors`."""
    flat = pca._flat(x)
    out = np.empty(len(flat), np.float32)
    for i in _batches(len(flat), batch_size):
        xb = flat[i : i + batch_size].astype(np.float64)
        rec = ((xb - pca.mean) @ pca.components.T) @ pca.components + pca.mean
        out[i : i + batch_size] = np.mean((rec - xb) ** 2, axis=1)
    return out


def compression_ratio(sample_shape: Sequence[int], latent_dim: int) -> float:
    """Input values per code value (784 / 32 = 24.5)."""
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be positive; got {latent_dim}.")
    return math.prod(sample_shape) / latent_dim


def linear_probe(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    max_iter: int = 1000,
    seed: int = 0,
) -> float:
    """Test accuracy of a logistic regression on standardised codes: how much of
    the label a linear read-out finds in the code (the encoder as a feature extractor)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tr = np.asarray(train_codes, np.float64).reshape(len(train_codes), -1)
    te = np.asarray(test_codes, np.float64).reshape(len(test_codes), -1)
    ytr, yte = np.asarray(train_labels), np.asarray(test_labels)
    if len(tr) != len(ytr) or len(te) != len(yte) or len(te) == 0:
        raise ConfigError("codes and labels must have the same number of items (and the test set at least one).")
    if len(np.unique(ytr)) < 2:
        raise ConfigError("a linear probe needs training labels of at least two classes.")
    scaler = StandardScaler().fit(tr)
    clf = LogisticRegression(max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(tr), ytr)
    return float(clf.score(scaler.transform(te), yte))


def project_2d(codes: np.ndarray, method: str = "pca", seed: int = 0, max_items: int = 5000) -> np.ndarray:
    """Codes -> (N, 2) points to plot. 1-D codes become (code, 0) and 2-D codes
    are returned as they are, whatever the method; wider codes are projected
    with PCA or t-SNE (sklearn, init="pca"). t-SNE is quadratic in N, so more
    than ``max_items`` items is refused rather than left to run for minutes."""
    if method not in ("pca", "tsne"):
        raise ConfigError(f"projection method must be 'pca' or 'tsne'; got {method!r}.")
    c = np.asarray(codes, dtype=np.float32)
    c = c.reshape(len(c), -1)  # (N,) or (N, C, h, w) -> (N, d)
    n, d = c.shape
    if d == 1:
        return np.concatenate([c, np.zeros_like(c)], 1)
    if d == 2:
        return c.copy()
    if method == "pca":
        if n == 0:
            return np.zeros((0, 2), np.float32)
        p = pca_fit(c, 2, max_items=max(max_items, 20000), seed=seed).transform(c)
        return np.pad(p, ((0, 0), (0, 2 - p.shape[1])))  # a single item gives one component
    if n > max_items:
        raise ConfigError(
            f"t-SNE on {n:,} items would take too long; subsample to at most {max_items:,} (or use method='pca')."
        )
    if n < 4:
        raise ConfigError("t-SNE needs at least 4 items.")
    from sklearn.manifold import TSNE

    # sklearn requires perplexity < n; 30 is its default for large sets.
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (n - 1) / 3))
    return tsne.fit_transform(c).astype(np.float32)


# --- figures as arrays ------------------------------------------------------------------
def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _tile_layout(n: int, cols: int | None) -> tuple[int, int]:
    if cols is None:
        cols = math.ceil(math.sqrt(n))
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ConfigError(f"cols must be a positive integer; got {cols!r}.")
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _paste(tiles: np.ndarray, rows: int, cols: int, pad: int, pad_value: int) -> np.ndarray:
    """tiles (n, h, w) or (n, h, w, 3) uint8 -> one image with ``pad`` pixels
    between the tiles and around them."""
    n, h, w = tiles.shape[:3]
    H, W = rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad
    out = np.full((H, W, *tiles.shape[3:]), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = tiles[i]
    return out


def weight_tiles(
    weight: torch.Tensor | np.ndarray,
    sample_shape: Sequence[int],
    max_tiles: int = 400,
    cols: int | None = None,
    pad: int = 1,
    min_tile: int = 15,
    pad_value: int = 255,
) -> np.ndarray:
    """The first layer's weights drawn as images: uint8 (H, W), or (H, W, 3) for RGB.

    Dense weights (units, input_dim) show each unit's weights as an image of the
    input (what pattern excites it); convolution filters (out, in, k, k) one tile
    per filter, RGB when in=3, the mean over input channels otherwise. Each tile
    is scaled to its own min..max, since units differ in overall weight size, and
    tiles smaller than ``min_tile`` are enlarged by nearest neighbour (a 3x3
    filter becomes 15x15). At most ``max_tiles`` units are drawn."""
    w = _as_numpy(weight).astype(np.float32)
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ConfigError("weights can be drawn as images only for image data; this model reads vectors.")
    if w.ndim == 2:
        if w.shape[1] != math.prod(shape):
            raise ConfigError(f"a dense layer with {w.shape[1]} inputs does not match images of shape {shape}.")
        tiles = w.reshape(len(w), *shape)  # (units, D) -> (units, C, H, W)
    elif w.ndim == 4:
        tiles = w  # (out, in, k, k)
    else:
        raise ConfigError(f"expected dense (units, inputs) or conv (out, in, k, k) weights; got shape {w.shape}.")
    if len(tiles) == 0:
        raise ConfigError("the layer has no units to draw.")
    tiles = tiles[:max_tiles]
    if tiles.shape[1] != 3:
        tiles = tiles.mean(1, keepdims=True)  # 1 channel stays, others are averaged
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    hi = tiles.max(axis=(1, 2, 3), keepdims=True)
    span = hi - lo
    # a constant tile has no pattern to show: mid grey rather than a division by zero
    scaled = np.where(span > 0, (tiles - lo) / np.where(span > 0, span, 1), 0.5)
    img = _to_uint8(scaled)  # (n, c, h, w)
    h, wd = img.shape[2:]
    f = max(1, math.ceil(min_tile / max(h, wd)))
    if f > 1:
        img = img.repeat(f, axis=2).repeat(f, axis=3)
    img = img.transpose(0, 2, 3, 1)  # (n, c, h, w) -> (n, h, w, c)
    img = img[..., 0] if img.shape[-1] == 1 else img
    rows, cols = _tile_layout(len(img), cols)
    return _paste(img, rows, cols, pad, pad_value)


def image_grid(rows: list[np.ndarray], pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Rows of images -> one uint8 picture. Each row is (n, C, H, W) or (n, H, W)
    in [0, 1] (uint8 accepted); all share H and W, shorter rows are filled with
    ``pad_value``. Output (rows·H + (rows+1)·pad, n·W + (n+1)·pad), with a
    trailing 3 when any row is RGB (grey rows are then repeated to RGB)."""
    if not rows:
        raise ConfigError("image_grid needs at least one row of images.")
    prepared = []
    for r in rows:
        a = _as_numpy(r)
        a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        if a.ndim == 3:
            a = a[:, None]  # (n, H, W) -> (n, 1, H, W)
        if a.ndim != 4 or a.shape[1] not in (1, 3):
            raise ConfigError(f"each row must be images (n, 1 or 3, H, W); got shape {a.shape}.")
        prepared.append(a)
    hw = {a.shape[2:] for a in prepared}
    if len(hw) != 1:
        raise ConfigError(f"all images in a grid must have one size; got {sorted(hw)}.")
    h, w = hw.pop()
    rgb = any(a.shape[1] == 3 for a in prepared)
    n = max(len(a) for a in prepared)
    if n == 0:
        raise ConfigError("image_grid needs at least one image.")
    c = 3 if rgb else 1
    tiles = np.full((len(prepared) * n, c, h, w), pad_value, np.float32)
    for i, a in enumerate(prepared):
        tiles[i * n : i * n + len(a)] = a  # a grey row broadcasts to RGB here
    img = _to_uint8(tiles).transpose(0, 2, 3, 1)  # (n, c, h, w) -> (n, h, w, c)
    img = img if rgb else img[..., 0]
    return _paste(img, len(prepared), n, pad, int(_to_uint8(np.float32(pad_value))))


def recon_grid(originals: np.ndarray, reconstructions: np.ndarray, n: int = 10, pad: int = 2) -> np.ndarray:
    """The first ``n`` originals over their reconstructions (uint8 image)."""
    return image_grid([_as_numpy(originals)[:n], _as_numpy(reconstructions)[:n]], pad=pad)


__all__ = [
    "PCA",
    "compression_ratio",
    "decode",
    "encode",
    "image_grid",
    "interpolate",
    "latent_grid",
    "latent_ranges",
    "linear_probe",
    "pca_errors",
    "pca_fit",
    "per_item_errors",
    "project_2d",
    "psnr",
    "recon_grid",
    "reconstruct",
    "sequence_accuracy",
    "weight_tiles",
]
