"""The Reconstruct page's engine: test images beside their reconstructions (first,
worst or best), the user's own pictures and drawings, and denoising.

Every function takes a :class:`TrainedModel` of image data and, where test items
are shown, the model's own :class:`DataBundle` (``aecore.runs.request.model_data``:
the split ``python -m aecore eval`` scores), and returns arrays ready to show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from aecore.data import DataBundle, as_float
from aecore.data.raw import open_image
from aecore.errors import ConfigError
from aecore.explore import baselines, inference
from aecore.explore.uploads import PreparedImage, add_noise, prepare_image
from aecore.models.trained import TrainedModel

MAX_POOL = 10_000  # test items ranked for "worst"/"best": all of MNIST's test split
NOISE_SEED = 0  # one noise pattern, so reruns show the same noisy pictures
# order -> what it shows; invert mode (prepare_image's) -> when it inverts
ORDERS = {"first": "First in the test set", "worst": "Worst reconstructed", "best": "Best reconstructed"}
INVERT_MODES = {"auto": "auto (when the background is light)", "yes": "always", "no": "never"}
ORIGINAL_PX = 128  # an uploaded original is enlarged by whole pixels towards this size
EMPTY_CANVAS = 0.05  # a drawing whose pixels all stay this close to the background is empty


def format_db(v: float) -> str:
    return "∞ dB (identical)" if math.isinf(v) else f"{v:.2f} dB"


def dark_background(tm: TrainedModel) -> bool:
    """Whether the model saw light strokes on black; MNIST-like data do unless the
    data said otherwise, so an unknown answer is True."""
    dark = tm.meta.dark_background
    return True if dark is None else bool(dark)


def pool_size(bundle: DataBundle) -> int:
    """How many test items the page ranks (and can show)."""
    return min(len(bundle.test), MAX_POOL)


def _pool(bundle: DataBundle) -> np.ndarray:
    return as_float(bundle.test.x[:MAX_POOL], bundle)


def pool_errors(tm: TrainedModel, bundle: DataBundle) -> np.ndarray:
    """Per-item reconstruction errors (pool_size,) of the ranked test items: their
    mean over a whole test split is eval's test_mse."""
    return inference.per_item_errors(tm, _pool(bundle))


@dataclass
class ItemsView:
    idx: np.ndarray  # (n,) indices into the test split
    originals: np.ndarray  # (n, C, H, W) in [0, 1]
    recs: np.ndarray  # (n, C, H, W) in [0, 1]
    errs: np.ndarray  # (n,) each item's MSE
    pool_mean: float | None  # mean MSE of all pool_size ranked items; None for "first" (nothing was ranked)
    pool_size: int
    captions: list[str]  # "#index · label" under each original

    @property
    def mean(self) -> float:
        return float(self.errs.mean())

    @property
    def psnr(self) -> float:
        return baselines.psnr(self.mean)


def items_view(
    tm: TrainedModel, bundle: DataBundle, n: int, order: str = "first", errors: np.ndarray | None = None
) -> ItemsView:
    """``n`` test items in ``order``: the first ones, or the worst or best
    reconstructed of the pool. ``errors`` is :func:`pool_errors` when the caller
    keeps it (ranking MNIST's test split takes a moment); it is computed otherwise."""
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}; got {order!r}.")
    x = _pool(bundle)
    n = max(0, min(int(n), len(x)))
    if order == "first":
        idx = np.arange(n)
        errs, pool_mean = inference.per_item_errors(tm, x[:n]), None
    else:
        all_errs = pool_errors(tm, bundle) if errors is None else np.asarray(errors)
        if len(all_errs) != len(x):
            raise ConfigError(f"expected {len(x)} pool errors; got {len(all_errs)}.")
        ranked = np.argsort(all_errs, kind="stable")  # ties keep test-set order
        idx = ranked[::-1][:n] if order == "worst" else ranked[:n]
        errs, pool_mean = all_errs[idx], float(all_errs.mean())
    labels, names = bundle.test.labels, bundle.class_names
    captions = [f"#{i}" + ("" if labels is None else f" · {names[labels[i]] if names else labels[i]}") for i in idx]
    originals = x[idx]
    return ItemsView(idx, originals, inference.reconstruct(tm, originals), errs, pool_mean, len(x), captions)


@dataclass
class DenoiseView:
    clean: np.ndarray  # (n, C, H, W) the first n test items
    noisy: np.ndarray  # clip(clean + std·N(0, 1), 0, 1)
    denoised: np.ndarray  # the model's reconstruction of ``noisy``
    errs: np.ndarray  # (n,) MSE of each denoised item against its clean one
    psnr_noisy: float
    psnr_denoised: float
    trained_on_noise: bool  # a denoising preset: it was taught to remove noise

    @property
    def gain(self) -> float | None:
        """dB gained over the noisy input; None when either side is identical (inf)."""
        if math.isinf(self.psnr_noisy) or math.isinf(self.psnr_denoised):
            return None
        return self.psnr_denoised - self.psnr_noisy


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def denoise_view(tm: TrainedModel, bundle: DataBundle, n: int, std: float, seed: int = NOISE_SEED) -> DenoiseView:
    """The first ``n`` test items, corrupted with Gaussian noise of ``std`` and reconstructed."""
    clean = _pool(bundle)[: max(0, int(n))]
    noisy = add_noise(clean, std, seed=seed)
    denoised = inference.reconstruct(tm, noisy)
    errs = ((denoised - clean) ** 2).reshape(len(clean), -1).mean(1)  # (n, C, H, W) -> (n,)
    return DenoiseView(
        clean,
        noisy,
        denoised,
        errs,
        baselines.psnr(_mse(noisy, clean)),
        baselines.psnr(_mse(denoised, clean)),
        any(k in tm.meta.preset for k in ("noise", "denois")),
    )


@dataclass
class PictureView:
    prepared: np.ndarray  # (C, H, W): the model's input
    rec: np.ndarray  # (C, H, W): its reconstruction
    mse: float
    steps: list[str] = field(default_factory=list)  # what was done to the picture, in words
    original: np.ndarray | None = None  # uint8 (h, w[, 3]) as it came, enlarged by whole pixels
    original_size: tuple[int, int] | None = None  # (width, height) before enlarging

    @property
    def psnr(self) -> float:
        return baselines.psnr(self.mse)


def prepare_upload(
    data: bytes, name: str, shape: tuple[int, ...], invert: str = "auto", dark: bool = True
) -> PreparedImage:
    """An uploaded file's bytes -> the model's input; a file that is no picture
    (or a cut one) raises a DataError naming ``name``."""
    return prepare_image(open_image(data, name=name), tuple(shape), invert=invert, dark_background=dark)


def _picture_view(tm: TrainedModel, prep: PreparedImage, steps: list[str], original: bool) -> PictureView:
    rec = inference.reconstruct(tm, prep.array[None])[0]
    view = PictureView(prep.array, rec, _mse(rec, prep.array), steps)
    if original and prep.original is not None:
        a = (np.clip(prep.original, 0, 1) * 255).round().astype(np.uint8)  # (H, W) or (H, W, 3)
        up = max(1, ORIGINAL_PX // max(a.shape[:2]))
        view.original, view.original_size = a.repeat(up, 0).repeat(up, 1), (a.shape[1], a.shape[0])
    return view


def upload_view(tm: TrainedModel, data: bytes, name: str, invert: str = "auto") -> PictureView:
    """An uploaded picture prepared for the model and reconstructed."""
    prep = prepare_upload(data, name, tuple(tm.model.config.input_shape), invert, dark_background(tm))
    return _picture_view(tm, prep, prep.steps, original=True)


def canvas_to_image(rgba: np.ndarray | None, dark: bool) -> Image.Image | None:
    """What a drawing canvas hands back, uint8 (H, W, 4) or (H, W, 3), as an RGB
    picture on the canvas colour; None when nothing is drawn."""
    if rgba is None or np.ndim(rgba) != 3:
        return None
    a = np.asarray(rgba, np.float32) / 255.0
    back = 0.0 if dark else 1.0
    if a.shape[2] == 4:  # composite onto the canvas colour: (H, W, 4) -> (H, W, 3)
        a = a[..., :3] * a[..., 3:] + back * (1 - a[..., 3:])
    if np.abs(a - back).max() < EMPTY_CANVAS:
        return None
    return Image.fromarray((a * 255).round().astype(np.uint8))


def drawing_view(tm: TrainedModel, rgba: np.ndarray | None) -> PictureView | None:
    """A drawing reconstructed, or None when the canvas is empty."""
    dark = dark_background(tm)
    pil = canvas_to_image(rgba, dark)
    if pil is None:
        return None
    prep = prepare_image(pil, tuple(tm.model.config.input_shape), invert="auto", dark_background=dark)
    return _picture_view(tm, prep, ["drawn on a canvas", *prep.steps], original=False)  # the canvas is shown already
