"""The Reconstruct page through AppTest, and aecore.explore.uploads.add_noise that it uses."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from conftest import open_page, store_env
from PIL import Image, ImageDraw

from aecore.data import load_dataset
from aecore.errors import ConfigError
from aecore.explore.metrics import evaluate
from aecore.explore.uploads import add_noise
from aecore.runs.request import model_data
from aecore.store import ModelStore

TEST, UPLOAD, NOISE, DRAW = range(4)  # the page's tabs


# --- aecore.explore.uploads.add_noise -----------------------------------------------------------
def test_add_noise_is_seeded_clipped_and_scaled():
    x = np.full((200, 1, 8, 8), 0.5, np.float32)
    a, b = add_noise(x, 0.1, seed=3), add_noise(x, 0.1, seed=3)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # stable across reruns
    assert not np.array_equal(a, add_noise(x, 0.1, seed=4))
    # 0.5 ± 0.1·N(0,1) is almost never clipped, so the added noise has std 0.1 and mean 0
    assert np.std(a - x) == pytest.approx(0.1, rel=0.05)
    assert abs(float(np.mean(a - x))) < 0.01
    # a larger std scales the same pattern (before clipping)
    np.testing.assert_allclose(2 * (add_noise(x, 0.05, seed=3) - x), a - x, atol=1e-6)
    big = add_noise(x, 5.0, seed=0)
    assert big.min() == 0.0 and big.max() == 1.0  # clipped to the image range
    np.testing.assert_array_equal(add_noise(x, 0.0, seed=0), x)


def test_add_noise_reads_uint8_and_refuses_bad_levels():
    x = np.full((2, 4, 4), 255, np.uint8)
    np.testing.assert_array_equal(add_noise(x, 0.0), np.ones((2, 4, 4), np.float32))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="noise level"):
            add_noise(x, bad)


# --- the page ----------------------------------------------------------------------------
def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def dark_on_white(w: int = 50, h: int = 37) -> bytes:
    """An odd-sized RGB picture: dark strokes on a white page, the opposite of the digits."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    ImageDraw.Draw(img).line([(w // 2, 4), (w // 2, h - 4)], fill=(20, 20, 20), width=5)
    return png(img)


def tab_images(at, tab: int) -> list[tuple[int, list[str]]]:
    """(number of images, captions) of each image element in one tab."""
    return [(len(im.proto.imgs), list(im.captions)) for im in at.tabs[tab].image]


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("model", ["ae-digits", "vae-digits", "conv-digits"])
def test_page_shows_originals_over_reconstructions_with_errors(page_env, model):
    at = open_page("reconstruct", model_name=model)
    ok(at)
    assert [t.value for t in at.title] == ["Reconstruct and denoise"]
    (n_orig, orig_caps), (n_rec, rec_caps) = tab_images(at, TEST)
    assert n_orig == n_rec == 10
    assert all(c.startswith("#") for c in orig_caps)  # index and label under each original
    errs = [float(c.removeprefix("MSE ")) for c in rec_caps]
    assert len(errs) == 10 and all(e > 0 for e in errs)
    assert float(metrics(at)["Mean MSE of these"]) == pytest.approx(np.mean(errs), abs=2e-4)
    assert at.info[0].value.startswith("Draw a digit")  # nothing drawn yet


def test_image_count_and_worst_best_order(page_env):
    at = open_page("reconstruct", model_name="ae-digits")
    at.number_input(key="rec_n").set_value(4).run()
    ok(at)
    assert [n for n, _ in tab_images(at, TEST)] == [4, 4]

    def shown_errors(order: str) -> list[float]:
        at.radio(key="rec_order").set_value(order).run()
        ok(at)
        return [float(c.removeprefix("MSE ")) for c in tab_images(at, TEST)[1][1]]

    worst, best = shown_errors("worst"), shown_errors("best")
    assert worst == sorted(worst, reverse=True) and best == sorted(best)
    assert min(worst) > max(best)
    pool = float(next(v for k, v in metrics(at).items() if k.startswith("Mean MSE of") and "test" in k))
    assert max(best) <= pool <= min(worst)


def test_upload_odd_size_rgb_picture_is_prepared_and_reconstructed(page_env):
    at = open_page("reconstruct", model_name="ae-digits")
    at.file_uploader(key="rec_upload").upload("strokes.png", dark_on_white(), "image/png").run()
    ok(at)
    steps = " ".join(m.value for m in at.tabs[UPLOAD].markdown if "Preprocessing" in m.value)
    assert "opened 50x37 RGB" in steps and "grayscale" in steps
    assert "resized to 8x8" in steps and "inverted" in steps
    caps = [c for _, cs in tab_images(at, UPLOAD) for c in cs]
    assert "original 50x37" in caps and "model input 8x8" in caps
    assert any(c.startswith("reconstruction · MSE") for c in caps), caps

    at.radio(key="rec_invert").set_value("no").run()  # the user can refuse the inversion
    ok(at)
    steps = " ".join(m.value for m in at.tabs[UPLOAD].markdown if "Preprocessing" in m.value)
    assert "resized" in steps and "inverted" not in steps


def test_bad_files_give_their_own_error_and_the_good_one_still_shows(page_env):
    good = dark_on_white(31, 64)
    at = open_page("reconstruct", model_name="conv-digits")
    at.file_uploader(key="rec_upload").set_value(
        [
            ("x.png", b"this is a text file, not a picture\n", "image/png"),
            ("cut.png", good[: len(good) // 2], "image/png"),
            ("fine.png", good, "image/png"),
        ]
    ).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 2, errors
    assert "x.png" in errors[0] and "not an image" in errors[0]
    assert "cut.png" in errors[1] and "truncated" in errors[1]
    recs = [c for _, cs in tab_images(at, UPLOAD) for c in cs if c.startswith("reconstruction")]
    assert len(recs) == 1  # fine.png, after the two bad ones
    assert "original 31x64" in [c for _, cs in tab_images(at, UPLOAD) for c in cs]


def test_noise_slider_changes_noisy_psnr_and_is_stable(page_env):
    at = open_page("reconstruct", model_name="ae-digits")
    ok(at)
    assert at.slider(key="rec_noise").value == 0.5
    first = metrics(at)["PSNR noisy vs clean"]
    assert [n for n, _ in tab_images(at, NOISE)] == [10, 10, 10]  # clean / noisy / denoised
    at.run()
    assert metrics(at)["PSNR noisy vs clean"] == first  # fixed seed: the same noise on a rerun
    at.slider(key="rec_noise").set_value(0.1).run()
    ok(at)
    quieter = metrics(at)["PSNR noisy vs clean"]
    assert float(quieter.split()[0]) > float(first.split()[0]) + 5
    denoised = next(m for m in at.metric if m.label == "PSNR denoised vs clean")
    assert denoised.delta.endswith("dB")  # the gain over the noisy input
    at.slider(key="rec_noise").set_value(0.0).run()
    ok(at)
    assert metrics(at)["PSNR noisy vs clean"].startswith("∞")


def canvas_state(img: Image.Image) -> dict:
    """What the canvas component sends back after a stroke (its RGBA picture as a data URL)."""
    url = "data:image/png;base64," + base64.b64encode(png(img)).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}}


def test_drawing_is_reconstructed_and_an_empty_canvas_gives_a_hint(page_env):
    at = open_page("reconstruct", model_name="ae-digits")
    ok(at)
    blank = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    at.session_state["rec_canvas"] = canvas_state(blank)
    at.run()
    ok(at)
    assert any("canvas is empty" in i.value for i in at.tabs[DRAW].info)
    assert not tab_images(at, DRAW)

    stroke = blank.copy()
    ImageDraw.Draw(stroke).line([(140, 40), (140, 240)], fill=(255, 255, 255, 255), width=22)
    at.session_state["rec_canvas"] = canvas_state(stroke)
    at.run()
    ok(at)
    assert not at.tabs[DRAW].info
    caps = [c for _, cs in tab_images(at, DRAW) for c in cs]
    assert "model input 8x8" in caps and any(c.startswith("reconstruction · MSE") for c in caps)
    steps = " ".join(m.value for m in at.tabs[DRAW].markdown if "Preprocessing" in m.value)
    assert "resized to 8x8" in steps and "inverted" not in steps  # white on black already matches


def test_empty_store_shows_the_info(tmp_path):
    with store_env(tmp_path):
        at = open_page("reconstruct")
    assert not at.exception, [e.value for e in at.exception]
    assert any("No saved model of image data" in i.value for i in at.info)
    assert not at.tabs and not at.image


def test_only_vector_models_ask_for_an_image_model(page_env, tmp_path):
    shutil.copytree(page_env / "line-1d", tmp_path / "line-1d")  # a copy: the shared store is left alone
    with store_env(tmp_path):
        at = open_page("reconstruct")
    assert not at.exception, [e.value for e in at.exception]
    assert any("No saved model of image data" in i.value for i in at.info)
    assert not at.tabs


def test_the_ranked_pool_is_the_test_split_eval_scores(seed3_store):
    """The page ranks the model's own test split (as trained, with its seed), so its
    mean is ``python -m aecore eval``'s test_mse over eval's n_items, not the score
    of the dataset split with the default seed."""
    tm = ModelStore(seed3_store).load("s3")
    own = model_data(tm)
    assert not np.array_equal(own.test.x, load_dataset("digits").test.x)  # the seed does change the split
    ev = evaluate(tm, own)
    with store_env(seed3_store):
        at = open_page("reconstruct", model_name="s3")
        at.radio(key="rec_order").set_value("worst").run()
    ok(at)
    pools = {k: v for k, v in metrics(at).items() if k.startswith("Mean MSE of") and "test" in k}
    assert pools == {f"Mean MSE of {ev['n_items']:,} test images": f"{ev['test_mse']:.4f}"}
