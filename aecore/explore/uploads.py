"""Turning a user's picture into what a model was trained on.

An upload can be any size and mode, and is usually dark ink on a light page,
while MNIST-like data is light on dark. Each step taken is returned in words
so that the dashboard and the CLI can show exactly what was done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from aecore.data.raw import image_to_array, open_image
from aecore.errors import ConfigError, DataError


@dataclass
class PreparedImage:
    array: np.ndarray  # (C, H, W) float32 in [0, 1], ready for the model's normaliser
    steps: list[str] = field(default_factory=list)
    original: np.ndarray | None = None  # the picture as uploaded, (H, W) or (H, W, 3) in [0, 1]


def prepare_image(
    source: bytes | str | os.PathLike | Image.Image,
    sample_shape: tuple[int, ...],
    invert: str = "auto",
    dark_background: bool = True,
) -> PreparedImage:
    """Convert to the model's channels, resize to its size, and invert when a
    light-background picture meets a dark-background dataset ("auto"), or
    always ("yes") or never ("no")."""
    if len(sample_shape) != 3:
        raise DataError("this model does not take images (its data are points or sequences).")
    C, H, W = sample_shape
    img = source if isinstance(source, Image.Image) else open_image(source)
    steps = [f"opened {img.width}x{img.height} {img.mode} image"]
    if img.info.get("exif_transposed"):
        steps.append(f"turned upright as its EXIF orientation ({img.info['exif_transposed']}) asks")
    mode = "L" if C == 1 else "RGB"
    if C not in (1, 3):
        raise DataError(f"this model takes {C}-channel images; only 1 (grayscale) and 3 (RGB) can come from a picture.")
    original = image_to_array(img, mode)
    if img.mode != mode:
        steps.append(f"converted {img.mode} to {'grayscale' if mode == 'L' else 'RGB'}")
    pil = Image.fromarray((original * 255).round().astype(np.uint8), mode)
    if (pil.width, pil.height) != (W, H):
        # Fit the longer side and centre on the background, as MNIST digits are centred in their box.
        scale = min(W / pil.width, H / pil.height)
        new = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        small = pil.resize(new, Image.Resampling.LANCZOS)
        border = np.asarray(pil).reshape(-1, C)
        edge = np.concatenate([np.asarray(pil)[0].reshape(-1, C), np.asarray(pil)[-1].reshape(-1, C)])
        fill = tuple(int(v) for v in np.median(edge if len(edge) else border, axis=0))
        canvas = Image.new(mode, (W, H), fill[0] if mode == "L" else fill)
        canvas.paste(small, ((W - new[0]) // 2, (H - new[1]) // 2))
        pil = canvas
        steps.append(f"resized to {W}x{H} (aspect kept, centred)")
    arr = np.asarray(pil, dtype=np.float32) / 255.0
    arr = arr[None] if mode == "L" else arr.transpose(2, 0, 1)  # (H, W[, 3]) -> (C, H, W)
    border_mean = float(
        np.concatenate(
            [arr[:, 0, :].ravel(), arr[:, -1, :].ravel(), arr[:, :, 0].ravel(), arr[:, :, -1].ravel()]
        ).mean()
    )
    light_background = border_mean > 0.5
    do_invert = invert == "yes" or (invert == "auto" and dark_background and light_background)
    if invert not in ("auto", "yes", "no"):
        raise DataError(f"invert must be auto, yes or no; got {invert!r}.")
    if do_invert:
        arr = 1.0 - arr
        steps.append(
            "inverted (dark on light -> light on dark, like the training data)" if invert == "auto" else "inverted"
        )
    return PreparedImage(np.ascontiguousarray(arr, dtype=np.float32), steps, original)


def add_noise(x: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian corruption, ``clip(x + std·N(0, 1), 0, 1)``, as float32
    shaped like ``x`` (images in [0, 1]; uint8 is divided by 255).

    The noise depends on ``seed`` and the shape only, so a page that reruns
    shows the same noisy pictures, and a larger ``std`` scales the same pattern."""
    std = float(std)
    if not (np.isfinite(std) and std >= 0):
        raise ConfigError(f"the noise level must be a finite number >= 0; got {std}.")
    x = np.asarray(x)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + np.float32(std) * noise, 0.0, 1.0)


def dataset_has_dark_background(x: np.ndarray) -> bool:
    """True when a dataset's image borders are mostly dark (MNIST, Fashion-MNIST)."""
    x = x[:500].astype(np.float32)
    if x.max() > 1.5:
        x = x / 255.0
    border = np.concatenate(
        [x[:, :, 0, :].ravel(), x[:, :, -1, :].ravel(), x[:, :, :, 0].ravel(), x[:, :, :, -1].ravel()]
    )
    return float(border.mean()) < 0.5
