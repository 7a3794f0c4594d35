"""The Generate page's engine: where the sliders start and how far they reach, and
pictures decoded from chosen codes (one code, an interpolation, a grid over two
dimensions, samples from a VAE's prior).

Pictures come back as uint8 (H, W[, 3]) enlarged by whole pixels towards a
width, ready to show; codes are float32 (latent_dim,).
"""

from __future__ import annotations

import numpy as np

from aecore.data import DataBundle, as_float
from aecore.errors import ConfigError
from aecore.explore import figures, inference
from aecore.models.trained import TrainedModel

MAX_SLIDERS = 16  # codes wider than this get a slider for each of the dimensions picked
MAX_CODES = 10_000  # test items encoded for the slider ranges (all of MNIST's test set)
IMAGE_PX = 256  # the decoded code is enlarged to about this width
GRID_PX = 560  # interpolations, grids and samples
SAMPLES_PER_ROW = 8


def reference_codes(tm: TrainedModel, bundle: DataBundle) -> np.ndarray:
    """Codes (N, latent_dim) of the first MAX_CODES test items: where the sliders reach."""
    return inference.encode(tm, bundle.test.x[:MAX_CODES])


def slider_state(tm: TrainedModel, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slider ranges (latent_dim, 2) and the code they start at (latent_dim,).

    A VAE's sliders span its prior's ±3 and start at its centre, the origin; other
    models' span the 1st..99th percentile of the test codes widened by 10% (see
    :func:`inference.latent_ranges`) and start at the median test code."""
    ranges = inference.latent_ranges(tm, codes)
    if tm.model.is_variational:
        return ranges, np.zeros(tm.model.latent_dim, np.float32)
    return ranges, np.median(codes, 0).astype(np.float32)


def busiest_dims(codes: np.ndarray, k: int = MAX_SLIDERS) -> list[int]:
    """The ``k`` dimensions whose codes spread most over the test set, in index
    order: dead units (no spread) are the least interesting to move."""
    c = np.asarray(codes, np.float32).reshape(len(codes), -1)  # (N, ...) -> (N, latent_dim)
    return sorted(np.argsort(-c.std(0), kind="stable")[:k].tolist())


def random_code(tm: TrainedModel, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A VAE's draw from its prior N(0, I); a plain autoencoder has no prior, so a
    random test item's code stands in."""
    if tm.model.is_variational:
        return rng.standard_normal(tm.model.latent_dim).astype(np.float32)
    if len(codes) == 0:
        raise ConfigError("there are no test codes to pick a random point from.")
    return np.asarray(codes[rng.integers(len(codes))], np.float32).copy()


def decoded_picture(tm: TrainedModel, z: np.ndarray, width: int = IMAGE_PX) -> np.ndarray:
    """One code decoded."""
    return figures.enlarge(figures.to_png_array(inference.decode(tm, z)[0]), width)


def interpolation_picture(
    tm: TrainedModel, bundle: DataBundle, a: int, b: int, steps: int = 8, width: int = GRID_PX
) -> np.ndarray:
    """Two rows from test item ``a`` to test item ``b``: the decoded codes on the
    straight line between theirs (top), and their pixels cross-faded (bottom)."""
    xa, xb = as_float(bundle.test.x[a], bundle), as_float(bundle.test.x[b], bundle)
    path = inference.interpolate(tm, xa, xb, steps)  # (steps, C, H, W)
    t = np.linspace(0, 1, steps, dtype=np.float32)[:, None, None, None]  # (steps, 1, 1, 1)
    fade = (1 - t) * xa[None] + t * xb[None]  # (C, H, W) ends -> (steps, C, H, W)
    return figures.enlarge(figures.image_grid([path, fade]), width)


def grid_picture(
    tm: TrainedModel, dims: tuple[int, int], n: int, ranges: np.ndarray, base: np.ndarray, width: int = GRID_PX
) -> np.ndarray:
    """An n x n grid: ``dims[0]`` moves down the rows, ``dims[1]`` across, each
    over its range; the other dimensions stay at ``base``."""
    grid = inference.latent_grid(tm, dims, n, ranges=ranges, base=base)  # (n, n, C, H, W)
    return figures.enlarge(figures.image_grid(list(grid)), width)


def samples_picture(tm: TrainedModel, k: int, seed: int, width: int = GRID_PX) -> np.ndarray:
    """``k`` codes drawn from a VAE's prior N(0, I) and decoded, in rows of
    SAMPLES_PER_ROW; the same ``seed`` draws the same codes. What model.sample(k)
    does, but through inference.decode, so the images are in display space."""
    if not tm.model.is_variational:
        raise ConfigError("this model is not a VAE: it has no prior to draw codes from.")
    zs = np.random.default_rng(seed).standard_normal((k, tm.model.latent_dim)).astype(np.float32)
    imgs = inference.decode(tm, zs)
    rows = [imgs[i : i + SAMPLES_PER_ROW] for i in range(0, k, SAMPLES_PER_ROW)]
    return figures.enlarge(figures.image_grid(rows), width)
