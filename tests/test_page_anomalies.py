"""The Anomalies page through AppTest: the error histogram, the threshold and what it flags, AUROC
against an outlier set, the worst-reconstructed inputs, vector models, and the empty store.
(aecore.explore.anomalies itself is unit-tested in test_anomaly.py.)"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from conftest import open_page, store_env
from PIL import Image

from aecore.data import load_dataset
from aecore.explore import anomalies, figures, inference
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
    return lambda url: np.asarray(Image.open(io.BytesIO(seen[url.rsplit("/", 1)[-1].split(".")[0]])))


@pytest.fixture(scope="module")
def direct(page_store):
    """ae-digits' per-item errors on its test split and on the inverted test split, computed here."""
    tm = ModelStore(page_store).load("ae-digits")
    x = load_dataset("digits").test.x
    return tm, x, inference.per_item_errors(tm, x), inference.per_item_errors(tm, anomalies.outlier_set(x, "invert"))


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def pct(text: str) -> float:
    return float(text.rstrip("%")) / 100


def values(v) -> np.ndarray:
    """A plotly spec's array: a list, or with plotly 7 a base64 typed array for numpy input."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def worst_table(at):
    return next(df.value for df in at.dataframe if "error" in df.value.columns)


def test_threshold_slider_sets_the_flagged_fraction(page_env, direct):
    _, _, normal, _ = direct
    at = open_page("anomalies", model_name="ae-digits", an_other="none")
    ok(at)
    slider = at.slider(key="an_threshold")
    assert slider.value == 99.0  # the 99th percentile of the normal test errors
    m = metrics(at)
    t99 = np.quantile(normal, 0.99)
    assert float(m["Threshold (error)"]) == pytest.approx(t99, rel=1e-3)
    assert pct(m["Flagged: normal test items"]) == pytest.approx(np.mean(normal > t99), abs=1e-3)
    assert "AUROC" not in m  # no outlier set chosen

    slider.set_value(80.0).run()
    ok(at)
    m80 = metrics(at)
    assert pct(m80["Flagged: normal test items"]) == pytest.approx(np.mean(normal > np.quantile(normal, 0.8)), abs=1e-3)
    assert m80["Flagged: normal test items"] != m["Flagged: normal test items"]

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"]) == 1 and values(spec["data"][0]["x"]) == pytest.approx(np.log10(normal), rel=1e-5)
    line = spec["layout"]["shapes"][0]  # the threshold, on the log10 axis by default
    assert line["x0"] == pytest.approx(np.log10(np.quantile(normal, 0.8)), rel=1e-4)


def test_worst_k_are_the_largest_errors(page_env, direct, media):
    tm, x, normal, _ = direct
    at = open_page("anomalies", model_name="ae-digits", an_other="none")
    at.slider(key="an_k").set_value(5).run()
    ok(at)
    table = worst_table(at)
    expected = np.argsort(-normal, kind="stable")[:5]
    assert table["item"].tolist() == expected.tolist()
    assert table["error"].to_numpy() == pytest.approx(np.sort(normal)[::-1][:5], rel=1e-5)
    assert table["label"].tolist() == [str(v) for v in load_dataset("digits").test.labels[expected]]
    # the picture: those five originals over their reconstructions, each pixel a crisp square
    grid = figures.image_grid([x[expected], inference.reconstruct(tm, x[expected])])
    png = media(at.get("image")[0].proto.imgs[0].url)
    f = png.shape[1] // grid.shape[1]
    np.testing.assert_array_equal(png, grid.repeat(f, 0).repeat(f, 1))


def test_inverted_digits_are_detected(page_env, direct):
    _, _, normal, inverted = direct
    at = open_page("anomalies", model_name="ae-digits", an_other="synthetic:invert")
    ok(at)
    m = metrics(at)
    auc = float(m["AUROC"])
    assert auc == pytest.approx(anomalies.auroc(normal, inverted), abs=1e-3)
    assert auc > 0.5  # inverted digits are reconstructed worse than real ones, well beyond chance
    t = np.quantile(normal, 0.99)
    assert pct(m["Flagged: outliers"]) == pytest.approx(np.mean(inverted > t), abs=1e-3)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [len(values(tr["x"])) for tr in spec["data"]] == [len(normal), len(inverted)]  # overlaid histograms
    # the worst inputs can come from the outlier set too
    at.radio(key="an_worst_from").set_value("synthetic:invert").run()
    ok(at)
    assert worst_table(at)["error"].to_numpy() == pytest.approx(np.sort(inverted)[::-1][:8], rel=1e-5)


def test_digits_offer_synthetic_outliers_only(page_env):
    at = open_page("anomalies", model_name="ae-digits")
    ok(at)
    options = at.selectbox(key="an_other").options
    assert not any(o.startswith("fashion") or o.startswith("mnist") for o in options)  # no 8x8 dataset
    assert any("inverted" in o for o in options) and "no outlier set" in options


def test_vector_model_scores_points_and_offers_a_same_shape_dataset(page_env):
    at = open_page("anomalies", model_name="line-1d")
    ok(at)
    options = at.selectbox(key="an_other").options
    assert options[0] == "sine (its test split)"  # 2-D points like line2d; helix3d (3-D) is not offered
    assert not any("helix3d" in o for o in options)
    assert "AUROC" in metrics(at)
    table = worst_table(at)
    assert {"x0", "x1", "reconstructed x0", "reconstructed x1"} <= set(table.columns)
    assert not at.get("image")
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[1].proto.spec)["data"]]
    assert names == ["sine (its test split)", "normal test items", "flagged"]


def test_outlier_choice_starts_again_for_another_model(page_env):
    at = open_page("anomalies", model_name="ae-digits")
    at.selectbox(key="an_other").set_value("synthetic:noise").run()
    ok(at)
    assert "AUROC" in metrics(at)
    at.selectbox(key="_pick_model_name").set_value("line-1d").run()  # noise exists for points too
    ok(at)
    assert at.selectbox(key="an_other").value == "dataset:sine"


def test_empty_store_shows_the_info(tmp_path):
    with store_env(tmp_path / "empty"):
        at = open_page("anomalies")
    assert not at.exception
    assert any("No saved model" in i.value for i in at.info)
    assert not at.get("plotly_chart")
