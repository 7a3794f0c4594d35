"""aecore.explore.anomalies: outlier sets, thresholds and AUROC, without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.errors import ConfigError
from aecore.explore.anomalies import auroc, flagged_fraction, outlier_set, threshold_at, worst


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
