"""Figures as uint8 arrays that any front end can show: image grids, weight
tiles, enlarged pictures. No plotting library: a page draws what these return."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from aecore.errors import ConfigError
from aecore.explore.inference import _as_numpy


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


def to_png_array(img: np.ndarray, scale: int = 1) -> np.ndarray:
    """(C, H, W) in [0, 1] -> uint8 (H*scale, W*scale[, 3]) for saving or display."""
    a = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if scale > 1:
        a = a.repeat(scale, 0).repeat(scale, 1)
    return a


def enlarge(img: np.ndarray, width: int = 640, max_factor: int | None = None) -> np.ndarray:
    """A uint8 picture (H, W[, 3]) scaled up by a whole factor towards ``width``
    pixels, so small images stay sharp on screen (no blurring interpolation)."""
    f = max(1, width // max(img.shape[1], 1))
    if max_factor is not None:
        f = min(f, max_factor)
    return img.repeat(f, 0).repeat(f, 1)
