"""The yardsticks a model is measured against: PSNR, PCA at the same code size,
the compression ratio and a linear probe on the codes (codes as features)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aecore.errors import ConfigError
from aecore.explore.inference import DEFAULT_BATCH, _as_numpy, _batches

# Above this input size the PCA covariance matrix (D x D, float64) gets too big
# for a dashboard process; a randomized SVD of the data is used instead.
PCA_COVARIANCE_MAX_DIM = 4096


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
