"""The Weights page's engine: first- and second-layer weights as tile sheets,
the spread of every layer's weights, and how active each code unit is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from torch import Tensor, nn

from aecore.data import DataBundle, as_float
from aecore.errors import ConfigError
from aecore.explore import figures, inference
from aecore.models.trained import TrainedModel

SHEET_WIDTH = 640  # px a tile sheet is enlarged towards
MAX_FACTOR = 8  # beyond this a sheet of few tiles is a blur of big squares, not a picture
MAX_TILES = 400


@dataclass(frozen=True)
class Layer:
    """What a caption says about one layer's weights."""

    units: int  # hidden units of a dense layer, filters of a convolution
    conv: bool
    kernel: int  # k of the k x k filters; 0 for a dense layer
    in_channels: int  # channels a filter reads; 0 for a dense layer


class Histogram(NamedTuple):
    name: str  # the module's name in the model, e.g. "encoder.net.0"
    shape: tuple[int, ...]
    centres: np.ndarray  # (bins,)
    density: np.ndarray  # (bins,), integrating to 1 over the bins


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The encoder's convolutions in the order the image meets them."""
    return [m for m in getattr(model, "encoder", model).modules() if isinstance(m, nn.Conv2d)]


def _first_weight(tm: TrainedModel) -> Tensor | None:
    """None for models whose first layer does not read pixels: no image shape to draw."""
    w = tm.model.first_layer_weight()
    if w is None or len(tm.model.config.input_shape) != 3:
        return None
    return w.detach().cpu()


def _layer(w: Tensor) -> Layer:
    conv = w.ndim == 4
    return Layer(len(w), conv, int(w.shape[-1]) if conv else 0, int(w.shape[1]) if conv else 0)


def _sheet(tm: TrainedModel, w: Tensor, width: int) -> np.ndarray:
    # 24 px keeps a 3x3 filter readable; a dense tile is a whole image, 15 px is enough.
    min_tile = 24 if w.ndim == 4 else 15
    sheet = figures.weight_tiles(w, tm.model.config.input_shape, max_tiles=len(w), min_tile=min_tile)
    return figures.enlarge(sheet, width, max_factor=MAX_FACTOR)


def first_layer(tm: TrainedModel) -> Layer | None:
    """The layer that reads the pixels, or None when the model has none to draw
    (points, sequences, or a design without such a layer)."""
    w = _first_weight(tm)
    return None if w is None else _layer(w)


def first_layer_sheet(tm: TrainedModel, n: int, width: int = SHEET_WIDTH) -> np.ndarray:
    """The first ``n`` units (or filters) of the first layer as one uint8 sheet
    (H, W[, 3]), enlarged by a whole factor so each weight stays a crisp square."""
    w = _first_weight(tm)
    if w is None:
        raise ConfigError("this model has no first layer over image pixels; check first_layer(tm) first.")
    return _sheet(tm, w[: max(1, min(n, MAX_TILES))], width)


def second_layer(tm: TrainedModel) -> Layer | None:
    """The encoder's second convolution, or None for a model with fewer than two."""
    w = _first_weight(tm)
    convs = conv_layers(tm.model) if w is not None and w.ndim == 4 else []
    return _layer(convs[1].weight) if len(convs) > 1 else None


def second_layer_sheet(tm: TrainedModel, width: int = SHEET_WIDTH) -> np.ndarray:
    """The second convolution's filters (at most MAX_TILES), each averaged over
    its input channels, so only a rough picture of what they combine."""
    convs = conv_layers(tm.model)
    if len(convs) < 2:
        raise ConfigError("this model has no second convolution; check second_layer(tm) first.")
    return _sheet(tm, convs[1].weight.detach().cpu()[:MAX_TILES], width)


def weight_histograms(tm: TrainedModel, bins: int = 60) -> list[Histogram]:
    """One normalised histogram per Linear or Conv2d layer, in the model's order.

    Binned here because a page drawing a million raw weights would send a 20 MB
    chart. Non-finite weights (a diverged run) are left out of the counts; a
    layer without a single finite weight has no histogram."""
    out = []
    for name, module in tm.model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            values = module.weight.detach().cpu().double().numpy().ravel()
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            density, edges = np.histogram(values, bins=bins, density=True)
            out.append(Histogram(name, tuple(module.weight.shape), (edges[:-1] + edges[1:]) / 2, density))
    return out


def code_activity(tm: TrainedModel, bundle: DataBundle, n: int = 2000) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard deviation of each code unit over the first ``n`` test
    items, and how many units never change over them (dead units)."""
    codes = inference.encode(tm, as_float(bundle.test.x[:n], bundle))
    codes = codes.reshape(len(codes), -1)  # a convolutional code (N, C, h, w) counts every value as a unit
    mean, std = codes.mean(0), codes.std(0)
    return mean, std, int((std < 1e-6).sum())


__all__ = [
    "Histogram",
    "Layer",
    "code_activity",
    "conv_layers",
    "first_layer",
    "first_layer_sheet",
    "second_layer",
    "second_layer_sheet",
    "weight_histograms",
]
