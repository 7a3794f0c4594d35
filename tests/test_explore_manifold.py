"""aecore.explore.manifold (the learned curve of a 1-D code) and aecore.explore.sequences (seed 000's sequence task)."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.errors import ConfigError
from aecore.explore import inference
from aecore.explore.manifold import decoded_curve, error_segments, learned_manifold, order_agreement
from aecore.explore.sequences import expected_output, format_tokens, parse_tokens, random_sequences
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest


@pytest.fixture(scope="module")
def line_model():
    tm, result, bundle = train(TrainRequest(preset="manifold-1d", dataset="line2d", epochs=60, device="cpu"))
    assert result.ok
    return tm, bundle


def test_learned_manifold_lies_on_the_decoder_curve(line_model):
    tm, bundle = line_model
    x = bundle.test.x[:300]
    view = learned_manifold(tm, x, n_curve=50)
    assert view.codes.shape == (300, 1) and view.recon.shape == (300, 2)
    np.testing.assert_allclose(view.codes, inference.encode(tm, x))
    np.testing.assert_allclose(view.recon, inference.reconstruct(tm, x))
    assert (np.diff(view.code[view.order]) >= 0).all()  # sorted by code along the curve
    np.testing.assert_allclose(view.errors, ((view.recon - x) ** 2).sum(1), rtol=1e-5)
    assert view.mse == pytest.approx(inference.per_item_errors(tm, x).mean(), rel=1e-4)
    # the decoder's curve spans the codes plus 10% at each end, and reconstructions sit on it
    z = view.curve_codes
    span = view.code.max() - view.code.min()
    assert z[0] == pytest.approx(view.code.min() - 0.1 * span, abs=1e-5)
    assert z[-1] == pytest.approx(view.code.max() + 0.1 * span, abs=1e-5)
    assert view.curve.shape == (50, 2)
    # a point's reconstruction equals decode(its code): the curve through the data is the decoder
    np.testing.assert_allclose(view.recon, inference.decode(tm, view.codes), atol=1e-5)
    # on a line, the learned code orders the points along it
    assert order_agreement(view.code, bundle.test.labels[:300]) > 0.9


def test_decoded_curve_checks_its_inputs(line_model):
    tm, _ = line_model
    with pytest.raises(ConfigError, match="from 2 to"):
        decoded_curve(tm, np.array([0.0, 1.0]), n=1)
    with pytest.raises(ConfigError, match="no finite"):
        decoded_curve(tm, np.array([np.nan]))
    z, pts = decoded_curve(tm, np.array([0.5, 0.5]), n=3, extend=0.0)  # one code value: a unit span around it
    assert z.tolist() == [0.0, 0.5, 1.0] and pts.shape == (3, 2)


def test_non_vector_and_wider_codes(line_model, digits):
    tm, bundle = line_model
    img, result, _ = train(
        TrainRequest(preset="vanilla", dataset="digits", epochs=1, limit=64, latent_dim=2, device="cpu"),
        evaluate_after=False,
    )
    with pytest.raises(ConfigError, match="vector data"):
        learned_manifold(img, digits.test.x[:4])
    wide, result, _ = train(
        TrainRequest(preset="manifold-1d", dataset="line2d", epochs=1, latent_dim=2, device="cpu"), evaluate_after=False
    )
    view = learned_manifold(wide, bundle.test.x[:20])
    assert view.codes.shape == (20, 2) and view.curve is None and view.curve_codes is None
    with pytest.raises(ConfigError, match="1-D code"):
        decoded_curve(wide, view.codes[:, 0])


def test_error_segments_and_order_agreement():
    x = np.array([[0, 0], [1, 1]], np.float32)
    r = np.array([[0, 1], [2, 1]], np.float32)
    seg = error_segments(x, r)
    assert seg.shape == (6, 2)
    np.testing.assert_array_equal(seg[[0, 1, 3, 4]], [[0, 0], [0, 1], [1, 1], [2, 1]])
    assert np.isnan(seg[[2, 5]]).all()
    with pytest.raises(ConfigError):
        error_segments(x, r[:1])
    t = np.arange(10.0)
    assert order_agreement(-t, t) == pytest.approx(1.0)  # either direction along the curve
    assert order_agreement(np.r_[t[:5], t[4::-1]], t) < 0.1  # a code that folds back on itself
    assert order_agreement(np.ones(10), t) == 0.0
    with pytest.raises(ConfigError):
        order_agreement(t, t[:3])


def test_parse_tokens():
    assert parse_tokens(" 12, 7 33;4  9,41 ", 6, 51).tolist() == [12, 7, 33, 4, 9, 41]
    for text, message in [
        ("", "type 6 integers"),
        ("1 2 three 4 5 6", "'three' is not an integer"),
        ("1 2 3.5 4 5 6", "'3.5' is not"),
        ("1 2 3 4 5 51", "51 is outside"),
        ("0 2 3 4 5 6", "start token"),
        ("-1 2 3 4 5 6", "-1 is outside"),
        ("1 2 3 4 5", "exactly 6 numbers; you typed 5"),
        ("1 2 3 4 5 6 7", "you typed 7"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_tokens(text, 6, 51)


def test_expected_output_and_random_sequences():
    assert expected_output(np.array([12, 7, 33, 4, 9, 41]), 3).tolist() == [33, 7, 12]
    x, t = random_sequences(500, 6, 51, 3, seed=1)
    assert x.shape == (500, 6) and x.dtype == np.int64 and x.min() >= 1 and x.max() <= 50
    assert (t == x[:, 2::-1]).all()
    assert (random_sequences(5, 6, 51, 3, seed=1)[0] == x[:5]).all()
    assert format_tokens(t[0]) == " ".join(map(str, x[0, 2::-1]))
    with pytest.raises(ConfigError):
        random_sequences(0, 6, 51, 3)
    with pytest.raises(ConfigError):
        expected_output(np.array([1, 2]), 3)
