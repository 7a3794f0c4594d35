"""The Latent space page's engine: codes of a dataset projected to 2-D."""

from __future__ import annotations

import numpy as np

from aecore.errors import ConfigError
from aecore.explore.baselines import pca_fit


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
