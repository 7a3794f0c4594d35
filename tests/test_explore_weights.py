"""aecore.explore.weights: the layers the Weights page draws, their histograms and code activity, without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aecore.explore import weights
from aecore.runs.request import TrainRequest, prepare


def untrained(preset: str, dataset: str = "digits", **kw):
    bundle, tm, _ = prepare(TrainRequest(preset=preset, dataset=dataset, device="cpu", **kw))
    tm.model.eval()
    return bundle, tm


def dense_layers(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(m.weight.shape)) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("preset", ["vanilla", "vae-mlp", "conv-bce"])
def test_every_linear_and_conv_layer_has_a_histogram_that_integrates_to_one(preset):
    _, tm = untrained(preset)
    hists = weights.weight_histograms(tm, bins=40)
    assert [(h.name, h.shape) for h in hists] == dense_layers(tm.model)
    for h in hists:
        width = h.centres[1] - h.centres[0]  # equal bins
        assert len(h.centres) == len(h.density) == 40
        assert np.sum(h.density) * width == pytest.approx(1.0, rel=1e-6), h.name


def test_non_finite_weights_are_left_out_and_an_all_nan_layer_has_no_histogram():
    _, tm = untrained("multilayer")  # 64-128-64-128-64: four Linear layers
    layers = [m for m in tm.model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        layers[0].weight[:3] = float("nan")  # a run diverging
        layers[1].weight[:] = float("inf")
    hists = {h.name: h for h in weights.weight_histograms(tm)}
    names = [n for n, _ in dense_layers(tm.model)]
    assert list(hists) == [names[0], *names[2:]]
    h = hists[names[0]]
    assert np.isfinite(h.density).all() and np.sum(h.density) * (h.centres[1] - h.centres[0]) == pytest.approx(1.0)


def test_first_and_second_layer_of_a_conv_model():
    _, tm = untrained("conv-bce")
    convs = weights.conv_layers(tm.model)
    w1, w2 = convs[0].weight, convs[1].weight
    assert weights.first_layer(tm) == weights.Layer(len(w1), True, w1.shape[-1], w1.shape[1])
    assert weights.second_layer(tm) == weights.Layer(len(w2), True, w2.shape[-1], w2.shape[1])
    # more filters asked for than the layer has: all of them, no error
    assert weights.first_layer_sheet(tm, 10_000).shape == weights.first_layer_sheet(tm, len(w1)).shape


def test_a_dense_model_has_no_second_layer_and_a_vector_model_no_first():
    _, dense = untrained("vanilla", latent_dim=8)
    assert weights.first_layer(dense) == weights.Layer(8, False, 0, 0)
    assert weights.second_layer(dense) is None
    _, points = untrained("manifold-1d", "line2d")
    assert weights.first_layer(points) is None and weights.second_layer(points) is None


def test_code_units_that_never_change_are_counted_dead():
    bundle, tm = untrained("vanilla", latent_dim=8)
    code = tm.model.encoder_layers[-1]
    with torch.no_grad():
        code.weight.abs_()  # non-negative weights over non-negative pixels: ReLU never clips a unit...
        code.bias.fill_(0.1)
        code.weight[[0, 3]] = 0.0  # ...except these two, fixed at their bias
    mean, std, dead = weights.code_activity(tm, bundle, n=500)
    assert mean.shape == std.shape == (8,)
    assert dead == 2
    assert mean[[0, 3]] == pytest.approx(0.1) and std[[0, 3]] == pytest.approx(0.0, abs=1e-7)
