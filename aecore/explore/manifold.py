"""What an autoencoder learned about points on a curve: the manifold demos.

Seeds 000 and 001 make one point: data that lives on a curve (a line, a sine
wave, a helix) inside 2-D or 3-D space needs one number per point, not two or
three. A model with a 1-D code learns that number (its code) and a curve (its
decoder). These functions return both as arrays in the data's own units, ready
to draw over the data; no plotting library is needed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aecore.errors import ConfigError
from aecore.explore import inference
from aecore.models.trained import TrainedModel


@dataclass
class LearnedManifold:
    """A vector model's view of some points.

    ``codes`` (N, d) and ``recon`` (N, D) are in the order of the points;
    ``order`` sorts them by the first code value, so ``recon[order]`` traces the
    learned curve from one end to the other. ``curve_codes`` (n,) and ``curve``
    (n, D) are the decoder's curve over the code range (1-D codes only, else None).
    ``errors`` (N,) is each point's squared distance to its reconstruction."""

    codes: np.ndarray
    recon: np.ndarray
    order: np.ndarray
    errors: np.ndarray
    curve_codes: np.ndarray | None = None
    curve: np.ndarray | None = None

    @property
    def code(self) -> np.ndarray:
        """The first code value of every point (N,): what the points are coloured by."""
        return self.codes[:, 0]

    @property
    def mse(self) -> float:
        """Mean squared error per coordinate, as :func:`inference.per_item_errors` averages it."""
        return float(self.errors.mean() / self.recon.shape[1]) if len(self.errors) else float("nan")


def _check_vector_model(tm: TrainedModel) -> None:
    if tm.data_kind != "vector":
        raise ConfigError(
            f"the manifold view needs a model of vector data (points); this one reads {tm.data_kind} data."
        )


def decoded_curve(
    tm: TrainedModel, codes: np.ndarray, n: int = 200, extend: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's curve of a 1-D code model: decode ``n`` evenly spaced code
    values from the smallest to the largest of ``codes``, each end pushed out by
    ``extend`` times the span (to show where the curve goes past the data).
    Returns (code values (n,), points (n, D)) in the data's units."""
    _check_vector_model(tm)
    if tm.model.latent_dim != 1:
        raise ConfigError(f"a decoded curve needs a 1-D code; this model's code has {tm.model.latent_dim} values.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= 100_000:
        raise ConfigError(f"the curve needs from 2 to 100,000 points; got {n!r}.")
    c = np.asarray(codes, dtype=np.float64).reshape(-1)
    c = c[np.isfinite(c)]
    if len(c) == 0:
        raise ConfigError("no finite code values to span.")
    lo, hi = float(c.min()), float(c.max())
    if hi <= lo:  # one code value (or a dead code): a unit span centred on it
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    z = np.linspace(lo - extend * span, hi + extend * span, int(n), dtype=np.float32)
    return z, inference.decode(tm, z[:, None])  # (n,) -> (n, 1) codes -> (n, D) points


def learned_manifold(tm: TrainedModel, x: np.ndarray, n_curve: int = 200, extend: float = 0.1) -> LearnedManifold:
    """Encode and reconstruct points ``x`` (N, D); for a 1-D code also the decoder's
    curve over the codes' range (see :func:`decoded_curve`)."""
    _check_vector_model(tm)
    x = np.asarray(x, dtype=np.float32)
    codes = inference.encode(tm, x)  # (N, d)
    recon = inference.reconstruct(tm, x)  # (N, D), on the learned manifold
    order = np.argsort(codes[:, 0], kind="stable") if len(codes) else np.zeros(0, np.int64)
    errors = ((recon.astype(np.float64) - x) ** 2).sum(1)
    view = LearnedManifold(codes, recon, order, errors.astype(np.float32))
    if tm.model.latent_dim == 1 and len(x):
        view.curve_codes, view.curve = decoded_curve(tm, codes, n_curve, extend)
    return view


def error_segments(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Line segments from every point to its reconstruction, as one polyline
    broken by NaN rows (a single plot trace draws them all): (3N, D)."""
    x, recon = np.asarray(x, np.float32), np.asarray(recon, np.float32)
    if x.shape != recon.shape or x.ndim != 2:
        raise ConfigError(f"points and reconstructions must have one shape (N, D); got {x.shape} and {recon.shape}.")
    out = np.full((len(x), 3, x.shape[1]), np.nan, np.float32)
    out[:, 0], out[:, 1] = x, recon
    return out.reshape(-1, x.shape[1])  # (N, 3, D) -> (3N, D): point, reconstruction, gap


def order_agreement(code: np.ndarray, position: np.ndarray) -> float:
    """How well a 1-D code orders the points along the curve: the absolute
    Spearman rank correlation of the code with the true position (the built-in
    demos' labels: the curve parameter cut into ten bins). 1.0 when the code
    runs along the curve in one direction; near 0 when it folds back on itself.
    The sign is dropped: a code may run either way along the curve."""
    from scipy.stats import spearmanr

    c = np.asarray(code, np.float64).reshape(-1)
    p = np.asarray(position, np.float64).reshape(-1)
    if len(c) != len(p):
        raise ConfigError(f"got {len(c)} code values but {len(p)} positions.")
    if len(c) < 2 or np.ptp(c) == 0 or np.ptp(p) == 0:
        return 0.0  # a constant says nothing about order
    return float(abs(spearmanr(c, p).statistic))


__all__ = ["LearnedManifold", "decoded_curve", "error_segments", "learned_manifold", "order_agreement"]
