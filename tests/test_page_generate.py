"""The Generate page through AppTest: latent sliders, interpolation, the latent grid and VAE samples."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import open_page, store_env
from PIL import Image

from aecore.data import load_dataset
from aecore.explore import inference
from aecore.explore.figures import to_png_array
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest
from aecore.store import ModelStore

H = W = 8  # sklearn digits
PAD = 2  # figures.image_grid's default


def image(at, media, caption_start: str) -> np.ndarray:
    """The pixels of the one image whose caption starts with ``caption_start``."""
    urls = [i.url for el in at.get("image") for i in el.proto.imgs if i.caption.startswith(caption_start)]
    assert len(urls) == 1, [i.caption for el in at.get("image") for i in el.proto.imgs]
    return np.asarray(Image.open(io.BytesIO(media[urls[0].rsplit("/", 1)[1].split(".")[0]]))).astype(int)


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def tiles(img: np.ndarray, rows: int, cols: int) -> int:
    """Check that ``img`` is an image_grid of rows x cols 8x8 tiles enlarged s times (white
    padding between the tiles); returns s."""
    grid_h, grid_w = rows * H + (rows + 1) * PAD, cols * W + (cols + 1) * PAD
    s = img.shape[1] // grid_w
    assert s >= 1 and img.shape[:2] == (grid_h * s, grid_w * s), (img.shape, rows, cols)
    for r in range(rows + 1):  # every horizontal band of padding is white
        y = r * (H + PAD) * s
        assert (img[y : y + PAD * s] == 255).all()
    for c in range(cols + 1):
        x = c * (W + PAD) * s
        assert (img[:, x : x + PAD * s] == 255).all()
    return s


def test_sliders_start_at_the_median_code_and_decode_live(page_env, media):
    at = open_page("generate", model_name="ae-digits")
    ok(at)
    tm = ModelStore(page_env).load("ae-digits")
    codes = inference.encode(tm, load_dataset("digits").test.x)
    ranges = inference.latent_ranges(tm, codes)
    z = np.median(codes, 0)
    sliders = [at.slider(key=f"gen_z{i}") for i in range(8)]
    for i, s in enumerate(sliders):
        assert (s.min, s.max) == pytest.approx(tuple(ranges[i]), abs=1e-5)
        assert s.value == pytest.approx(z[i], abs=1e-5)
    before = image(at, media, "decoded")
    np.testing.assert_allclose(before, to_png_array(inference.decode(tm, z)[0], 32), atol=1)

    at.slider(key="gen_z0").set_value(sliders[0].max).run()
    ok(at)
    after = image(at, media, "decoded")
    z[0] = sliders[0].max
    np.testing.assert_allclose(after, to_png_array(inference.decode(tm, z)[0], 32), atol=1)
    assert np.abs(after - before).mean() > 1  # the image really changed

    at.button(key="gen_random").click().run()
    ok(at)
    assert not np.array_equal(image(at, media, "decoded"), after)
    at.button(key="gen_reset").click().run()
    ok(at)
    assert at.slider(key="gen_z0").value == pytest.approx(np.median(codes, 0)[0], abs=1e-5)
    np.testing.assert_array_equal(image(at, media, "decoded"), before)

    # a plain autoencoder has no prior: it says so instead of offering samples
    assert any("not a VAE" in i.value for i in at.info)
    with pytest.raises(KeyError):
        at.button(key="gen_sample")


def test_vae_uses_its_prior_and_draws_samples(page_env, media):
    at = open_page("generate", model_name="vae-digits")
    ok(at)
    for i in range(2):
        s = at.slider(key=f"gen_z{i}")
        assert (s.min, s.max, s.value) == (-3.0, 3.0, 0.0)
    assert not any("samples from the prior" in i.caption for el in at.get("image") for i in el.proto.imgs)
    at.slider(key="gen_sample_n").set_value(12)
    at.button(key="gen_sample").click().run()
    ok(at)
    first = image(at, media, "12 samples from the prior")
    tiles(first, 2, 8)  # 12 samples in rows of 8
    at.button(key="gen_sample").click().run()
    assert not np.array_equal(image(at, media, "12 samples from the prior"), first)  # a new draw


def test_grid_is_n_by_n_and_interpolation_has_the_chosen_steps(page_env, media):
    at = open_page("generate", model_name="ae-digits")
    at.slider(key="gen_grid_n").set_value(5).run()
    ok(at)
    grid = image(at, media, "5×5 grid: z0 down, z1 across")
    tiles(grid, 5, 5)
    at.selectbox(key="gen_d1").set_value(3).run()
    ok(at)
    assert not np.array_equal(image(at, media, "5×5 grid: z0 down, z3 across"), grid)
    # the same dimension twice: the engine's message, not a crash
    at.selectbox(key="gen_d1").set_value(0).run()
    assert not at.exception
    assert "two different latent dimensions" in at.error[0].value

    at.number_input(key="gen_a").set_value(5)
    at.number_input(key="gen_b").set_value(9)
    at.slider(key="gen_steps").set_value(6).run()
    assert not at.exception
    row = image(at, media, "through the latent space")
    s = tiles(row, 2, 6)
    # both ends of the top row decode the two images' own codes: their reconstructions
    tm = ModelStore(page_env).load("ae-digits")
    x = load_dataset("digits").test.x
    rec = inference.reconstruct(tm, x[[5, 9]])
    for col, r in ((0, rec[0]), (5, rec[1])):
        y0, x0 = PAD * s, (PAD + col * (W + PAD)) * s
        np.testing.assert_allclose(row[y0 : y0 + H * s, x0 : x0 + W * s], to_png_array(r, s), atol=1)


def test_one_and_many_dimensional_codes(tmp_path):
    with store_env(tmp_path):
        store = ModelStore()
        for name, latent in (("ae-1d", 1), ("ae-20d", 20)):
            tm, _, _ = train(
                TrainRequest(preset="vanilla", dataset="digits", epochs=1, limit=200, latent_dim=latent, device="cpu")
            )
            store.save(name, tm)
        at = open_page("generate", model_name="ae-1d")
        assert not at.exception
        assert [s.key for s in at.slider if s.key.startswith("gen_z")] == ["gen_z0"]
        assert len(at.error) == 1
        assert "cannot draw the grid: a latent grid needs a code of at least 2 dimensions" in at.error[0].value
        at.selectbox(key="_pick_model_name").set_value("ae-20d").run()
        ok(at)
        shown = [s.key for s in at.slider if s.key.startswith("gen_z")]
        assert len(shown) == 16 and len(at.multiselect(key="gen_dims").value) == 16
        at.multiselect(key="gen_dims").set_value([0, 19]).run()
        ok(at)
        assert sorted(s.key for s in at.slider if s.key.startswith("gen_z")) == ["gen_z0", "gen_z19"]


def test_empty_store_shows_what_to_do(tmp_path):
    with store_env(tmp_path):
        at = open_page("generate")
    assert not at.exception
    assert "No saved model of image data yet" in at.info[0].value
    assert not at.get("image")
