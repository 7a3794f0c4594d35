"""aecore.explore.anomalies: outlier sets, thresholds and AUROC, and the Anomalies page's views of them,
without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.data import as_float, load_dataset
from aecore.errors import ConfigError
from aecore.explore import anomalies, figures, inference
from aecore.explore.anomalies import auroc, flagged_fraction, outlier_set, threshold_at, worst
from aecore.runs.request import TrainRequest, prepare


def test_auroc_of_separable_scores_is_one_and_reversed_is_zero():
    normal, odd = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.9])
    assert auroc(normal, odd) == 1.0
    assert auroc(odd, normal) == 0.0


def test_auroc_of_identical_scores_is_one_half():
    assert auroc(np.full(7, 0.25), np.full(4, 0.25)) == 0.5
    # same distribution, many ties: still 0.5 exactly by symmetry
    s = np.array([1, 2, 2, 3, 3, 3], float)
    assert auroc(s, s) == 0.5


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    normal = rng.integers(0, 20, 300).astype(float)  # integers: plenty of ties across the two sets
    odd = rng.integers(5, 30, 120).astype(float)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(120)], np.r_[normal, odd])
    assert auroc(normal, odd) == pytest.approx(expected, abs=1e-12)


def test_auroc_refuses_empty_or_non_finite_scores():
    with pytest.raises(ConfigError):
        auroc(np.array([]), np.array([1.0]))
    with pytest.raises(ConfigError):
        auroc(np.array([np.nan]), np.array([1.0]))


def test_threshold_at_is_the_quantile_and_flags_the_rest():
    errors = np.arange(1, 101, dtype=float)  # 1..100
    assert threshold_at(errors, 0.0) == 1.0
    assert threshold_at(errors, 1.0) == 100.0
    t = threshold_at(errors, 0.99)
    assert t == pytest.approx(np.quantile(errors, 0.99))
    assert flagged_fraction(errors, t) == pytest.approx(0.01)  # only the 100 is above 99.01
    assert flagged_fraction(errors, threshold_at(errors, 0.9)) == pytest.approx(0.10)
    for q in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError):
            threshold_at(errors, q)
    with pytest.raises(ConfigError):
        threshold_at(np.array([]), 0.5)


def test_worst_returns_the_largest_errors_largest_first():
    e = np.array([0.3, 0.9, 0.1, 0.9, 0.5])
    assert worst(e, 3).tolist() == [1, 3, 4]
    assert worst(e, 0).tolist() == []
    assert worst(e, 10).tolist() == [1, 3, 4, 0, 2]


@pytest.mark.parametrize("kind", ["invert", "flip", "shuffle", "noise"])
def test_image_outlier_sets_keep_shape_and_range(kind):
    rng = np.random.default_rng(1)
    x = rng.random((5, 1, 8, 8), dtype=np.float32)
    out = outlier_set(x, kind, seed=3)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, x)
    np.testing.assert_array_equal(out, outlier_set(x, kind, seed=3))  # deterministic


def test_image_outlier_set_semantics():
    x = np.zeros((2, 1, 4, 4), np.float32)
    x[:, 0, 0, :] = 1.0  # a bright top row
    np.testing.assert_array_equal(outlier_set(x, "invert"), 1.0 - x)
    flipped = outlier_set(x, "flip")
    assert flipped[:, 0, -1, :].min() == 1.0 and flipped[:, 0, 0, :].max() == 0.0  # now the bottom row
    shuffled = outlier_set(x, "shuffle", seed=0)
    # a permutation of each image's own pixels
    np.testing.assert_array_equal(np.sort(shuffled.reshape(2, -1), 1), np.sort(x.reshape(2, -1), 1))
    u8 = (x * 255).astype(np.uint8)
    np.testing.assert_allclose(outlier_set(u8, "invert"), 1.0 - x)


def test_vector_outlier_sets():
    t = np.linspace(-1, 1, 200, dtype=np.float32)
    x = np.stack([t, 0.6 * t + 0.2], 1)  # points on a line
    noise = outlier_set(x, "noise", seed=0)
    assert noise.shape == x.shape
    lo, hi = x.min(0), x.max(0)
    pad = 0.1 * (hi - lo)
    assert (noise >= lo - pad - 1e-6).all() and (noise <= hi + pad + 1e-6).all()
    off_line = np.abs(noise[:, 1] - (0.6 * noise[:, 0] + 0.2))
    assert np.median(off_line) > 0.1  # almost every noise point is off the line
    sh = outlier_set(x, "shuffle", seed=0)
    np.testing.assert_allclose(np.sort(sh, 1), np.sort(x, 1))
    with pytest.raises(ConfigError):
        outlier_set(x, "invert")  # inverting is for images
    with pytest.raises(ConfigError):
        outlier_set(np.zeros((3, 2, 2)), "noise")


def test_outlier_sources_offer_same_shape_datasets_first_and_load_only_those_they_must():
    line = load_dataset("line2d")
    loaded = []

    def load(name):
        loaded.append(name)
        return load_dataset(name)

    sources = anomalies.outlier_sources(line, load=load)
    assert sources[0] == "dataset:sine" and "dataset:helix3d" not in sources  # 2-D points; helix3d is 3-D
    assert sources[-3:] == ["synthetic:noise", "synthetic:shuffle", "none"]
    assert "line2d" not in loaded and "digits" not in loaded  # neither its own dataset nor one of images
    digits = anomalies.outlier_sources(load_dataset("digits"), load=load)
    assert digits == [f"synthetic:{k}" for k in anomalies.IMAGE_KINDS] + ["none"]  # no other 8x8 dataset


def test_source_items_of_each_kind_of_source():
    digits = load_dataset("digits")
    test = anomalies.source_items(digits, "test")
    np.testing.assert_array_equal(test.x, as_float(digits.test.x, digits))
    inverted = anomalies.source_items(digits, "synthetic:invert")
    np.testing.assert_array_equal(inverted.x, outlier_set(test.x, "invert", seed=0))
    noise = anomalies.source_items(digits, "synthetic:noise")
    np.testing.assert_array_equal(noise.x, anomalies.source_items(digits, "synthetic:noise").x)  # same every call
    assert inverted.labels is digits.test.labels
    sine = anomalies.source_items(load_dataset("line2d"), "dataset:sine", max_items=7)
    assert len(sine.x) == 7 and (sine.labels is None or len(sine.labels) == 7)
    for bad in ("none", "file:x", "synthetic:invert2"):
        with pytest.raises(ConfigError):
            anomalies.source_items(digits, bad)


def test_score_view_threshold_flags_and_axis():
    normal = np.array([1e-4, 1e-3, 1e-2, 1e-1, 0.0])
    odd = np.array([0.5, 1.0])
    v = anomalies.score_view(normal, odd, 80.0)
    assert v.threshold == pytest.approx(np.quantile(normal, 0.8))
    assert v.flagged.tolist() == [False, False, False, True, False]
    assert v.flagged_normal == pytest.approx(0.2) and v.flagged_outliers == 1.0 and v.auroc == 1.0
    assert v.normal_axis[-1] == -12.0  # an error of 0 sits at 1e-12 on the log axis, not at -inf
    assert v.threshold_axis == pytest.approx(np.log10(v.threshold))
    assert v.edges[0] == -12.0 and v.edges[-1] == pytest.approx(0.0) and len(v.edges) == 61  # both sets binned
    linear = anomalies.score_view(normal, None, 80.0, log=False, bins=10)
    assert linear.threshold_axis == linear.threshold and linear.outlier_axis is None
    assert linear.flagged_outliers is None and linear.auroc is None and len(linear.edges) == 11


def test_score_view_of_a_model_that_outputs_nan_has_bins_but_no_auroc():
    v = anomalies.score_view(np.array([0.1, 0.2, 0.3]), np.array([np.nan, 0.5]), 50.0)
    assert v.auroc is None and np.isfinite(v.edges).all()


def test_worst_view_of_points_tabulates_coordinates_beside_reconstructions():
    bundle, tm, _ = prepare(TrainRequest(preset="manifold-1d", dataset="line2d", device="cpu"))
    items = anomalies.Items(as_float(bundle.test.x, bundle)[:6], np.array([0, 1, 0, 1, 0, 1]), ["a", "b"])
    errors = np.array([0.1, 0.6, 0.3, 0.5, 0.2, 0.4])
    view = anomalies.worst_view(tm, items, errors, 3, threshold=0.45)
    assert list(view.columns) == [
        "rank",
        "item",
        "label",
        "error",
        "flagged",
        "x0",
        "reconstructed x0",
        "x1",
        "reconstructed x1",
    ]
    assert view.columns["item"].tolist() == [1, 3, 5] and view.columns["label"] == ["b", "b", "b"]
    assert view.columns["flagged"].tolist() == [True, True, False]
    rec = inference.reconstruct(tm, items.x[[1, 3, 5]])
    np.testing.assert_allclose(view.columns["reconstructed x1"], rec[:, 1])
    assert view.grid is None


def test_worst_view_of_images_draws_originals_over_reconstructions():
    bundle, tm, _ = prepare(TrainRequest(preset="vanilla", dataset="digits", device="cpu"))
    items = anomalies.source_items(bundle, "test")
    errors = inference.per_item_errors(tm, items.x)
    view = anomalies.worst_view(tm, items, errors, 4, threshold=float(errors.max()), width=300)
    idx = worst(errors, 4)
    assert "x0" not in view.columns and not view.columns["flagged"].any()
    grid = figures.image_grid([items.x[idx], inference.reconstruct(tm, items.x[idx])])
    f = view.grid.shape[1] // grid.shape[1]
    assert f == max(1, min(8, 300 // grid.shape[1]))
    np.testing.assert_array_equal(view.grid, grid.repeat(f, 0).repeat(f, 1))
