"""The Weights page through AppTest: weight tiles, conv filters, weight histograms, the empty store."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from conftest import open_page, store_env
from PIL import Image
from torch import nn

from aecore.explore import figures
from aecore.store import ModelStore


@pytest.fixture
def media(monkeypatch):
    """Pixels of what st.image sent, by URL: AppTest keeps only the URL, a hash of the bytes."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        seen[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)

    def pixels(url: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(seen[url.rsplit("/", 1)[-1].split(".")[0]])))

    return pixels


def assert_enlarged(png: np.ndarray, sheet: np.ndarray) -> None:
    """``png`` is ``sheet`` blown up by a whole factor, every weight a crisp square (PNG, not JPEG)."""
    f = png.shape[1] // sheet.shape[1]
    assert f >= 1 and png.shape == (sheet.shape[0] * f, sheet.shape[1] * f, *sheet.shape[2:])
    np.testing.assert_array_equal(png, sheet.repeat(f, 0).repeat(f, 1))


def conv_layers(model) -> list:
    return [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]


def images(at) -> list:
    return [img for el in at.get("image") for img in el.proto.imgs]


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_dense_model_shows_each_units_weights_as_tiles(page_env, media):
    tm = ModelStore(page_env).load("ae-digits")
    w = tm.model.first_layer_weight().detach()  # (8 units, 64 pixels)
    at = open_page("weights", model_name="ae-digits")
    ok(at)
    slider = at.slider(key="w_tiles")
    assert (slider.min, slider.max, slider.value) == (1, 8, 8)  # one tile per hidden unit
    first = images(at)[0]
    assert "8 of 8 hidden units" in first.caption and "8×8 image" in first.caption
    assert_enlarged(media(first.url), figures.weight_tiles(w, (1, 8, 8), min_tile=15))

    slider.set_value(3).run()
    ok(at)
    fewer = images(at)[0]
    assert "3 of 8 hidden units" in fewer.caption
    assert_enlarged(media(fewer.url), figures.weight_tiles(w[:3], (1, 8, 8), min_tile=15))

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t["name"] for t in spec["data"]]
    assert len(names) == 2 and any("(8, 64)" in n for n in names) and any("(64, 8)" in n for n in names)
    assert {m.label: m.value for m in at.metric}["Code units"] == "8"


def test_conv_model_shows_first_and_second_layer_filters(page_env, media):
    tm = ModelStore(page_env).load("conv-digits")
    convs = conv_layers(tm.model)
    w1, w2 = convs[0].weight.detach(), convs[1].weight.detach()  # (16, 1, 3, 3), (8, 16, 3, 3)
    at = open_page("weights", model_name="conv-digits")
    ok(at)
    assert at.slider(key="w_tiles").max == len(w1) == 16
    first = images(at)
    assert len(first) == 1 and "16 of 16 first-layer filters, each 3×3" in first[0].caption
    assert_enlarged(media(first[0].url), figures.weight_tiles(w1, (1, 8, 8), min_tile=24))

    at.checkbox(key="w_second").check().run()
    ok(at)
    both = images(at)
    assert len(both) == 2 and "8 second-layer filters" in both[1].caption
    assert_enlarged(media(both[1].url), figures.weight_tiles(w2, (1, 8, 8), min_tile=24))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    n_layers = sum(1 for _, p in tm.model.named_parameters() if p.ndim >= 2)
    assert len(spec["data"]) == n_layers  # every conv layer, encoder and decoder


def test_slider_value_above_a_smaller_models_units_is_clamped(page_env):
    at = open_page("weights", model_name="conv-digits")
    at.slider(key="w_tiles").set_value(12).run()
    at.session_state["model_name"] = "ae-digits"
    at.selectbox(key="_pick_model_name").set_value("ae-digits").run()
    ok(at)
    assert at.slider(key="w_tiles").max == 8 and at.slider(key="w_tiles").value == 8


def test_vector_models_are_not_offered(page_env, tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(page_env / "line-1d", root / "line-1d")  # only a model of 2-D points
    with store_env(root):
        at = open_page("weights")
    assert not at.exception
    assert any("of image data" in i.value for i in at.info)
    assert not at.get("image")


def test_empty_store_shows_the_info(tmp_path):
    with store_env(tmp_path / "empty"):
        at = open_page("weights")
    assert not at.exception
    assert any("No saved model" in i.value for i in at.info)
    assert not at.get("image") and not at.get("plotly_chart")
