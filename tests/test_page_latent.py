"""The Latent space page through AppTest: the scatter of test codes, and a click that decodes a point."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import open_page, store_env
from PIL import Image

from aecore.data import load_dataset
from aecore.explore import inference
from aecore.explore.figures import to_png_array
from aecore.explore.metrics import evaluate
from aecore.runs.request import model_data
from aecore.store import ModelStore


def images(at) -> dict[str, str]:
    """caption -> media URL of every image on the page."""
    return {i.caption: i.url for el in at.get("image") for i in el.proto.imgs}


def pixels(media: dict[str, bytes], url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(media[url.rsplit("/", 1)[1].split(".")[0]])))


STRIP = "probe originals (top) over their reconstructions"  # the replay's picture


def items(at) -> list[str]:
    """The subheaders of clicked items (the replay below has its own)."""
    return [h.value for h in at.subheader if h.value.startswith("Item ")]


def scatter(at) -> list[dict]:
    """The scatter's traces (the first plotly chart on the page)."""
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def select(at, *points: dict):
    """What a click in the browser sends back, read by the page with keys."""
    at.session_state["lat_scatter"] = {
        "selection": {
            "points": list(points),
            "point_indices": [p.get("point_index", 0) for p in points],
            "box": [],
            "lasso": [],
        }
    }
    return at.run()


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("name", ["ae-digits", "vae-digits"])
def test_scatter_has_every_encoded_item_coloured_by_label(page_env, name):
    at = open_page("latent", model_name=name)
    ok(at)
    digits = load_dataset("digits")
    n = len(digits.test)  # 359 < the default of 2000: every test item
    assert at.slider(key="lat_n").value == n
    traces = scatter(at)
    assert sum(len(t["customdata"]) for t in traces) == n
    # one trace (colour) per class, named by the bundle's class names, holding exactly that class's items
    assert [t["name"] for t in traces] == digits.class_names
    for t in traces:
        assert set(digits.test.labels[t["customdata"]]) == {int(t["name"])}
    assert all(t["type"] == "scatter" and t["mode"] == "markers" for t in traces)
    # the hover names the item, and for images carries it drawn in block characters
    assert "item %{customdata}" in traces[0]["hovertemplate"]
    assert "█" in traces[0]["text"][0] or "▓" in traces[0]["text"][0]
    method = at.radio(key="lat_method")
    if name == "vae-digits":  # a 2-D code needs no projection
        assert method.disabled
        assert any("shown as is" in c.value for c in at.caption)
    else:
        assert not method.disabled
    assert [i.value for i in at.info] == ["Click a point in the scatter to decode it."]


def test_clicking_a_point_decodes_that_point(page_env, media):
    at = open_page("latent", model_name="ae-digits")
    traces = scatter(at)
    tm = ModelStore(page_env).load("ae-digits")
    digits = load_dataset("digits")
    shown = []
    for trace_no in (0, 7):  # a "0" and a "7"
        i = traces[trace_no]["customdata"][3]
        select(at, {"curve_number": trace_no, "point_number": 3, "point_index": 3, "customdata": i})
        ok(at)
        assert items(at) == [f"Item {i}: {digits.class_names[trace_no]}"]
        urls = images(at)
        assert set(urls) - {STRIP} == {"original", "decoded code", "|difference|"}
        got = pixels(media, urls["decoded code"]).astype(int)
        x = digits.test.x[i : i + 1]
        want = to_png_array(inference.reconstruct(tm, x)[0], 12).astype(int)  # 8x8 shown 12x larger
        assert got.shape == want.shape == (96, 96)
        assert np.abs(got - want).max() <= 1
        assert np.array_equal(pixels(media, urls["original"]), to_png_array(x[0], 12))
        shown.append(got)
    assert np.abs(shown[0] - shown[1]).mean() > 5  # two points, two different decodes


def test_a_selection_without_customdata_uses_the_trace_and_point_index(page_env):
    at = open_page("latent", model_name="vae-digits")
    traces = scatter(at)
    select(at, {"curve_number": 2, "point_number": 5, "point_index": 5})
    ok(at)
    assert at.subheader[0].value == f"Item {traces[2]['customdata'][5]}: 2"
    # a stale index (e.g. from a bigger earlier figure) is ignored rather than crashing
    select(at, {"customdata": 10_000})
    ok(at)
    assert not items(at) and at.info[0].value.startswith("Click a point")


def test_fewer_items_and_tsne(page_env):
    at = open_page("latent", model_name="ae-digits")
    at.slider(key="lat_n").set_value(50).run()
    ok(at)
    pca = scatter(at)
    assert sum(len(t["customdata"]) for t in pca) == 50
    at.radio(key="lat_method").set_value("t-SNE").run()
    ok(at)
    tsne = scatter(at)
    assert sum(len(t["customdata"]) for t in tsne) == 50
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
    assert spec["layout"]["template"]["layout"]["paper_bgcolor"] != "white"  # plotly_dark
    assert tsne[0]["x"] != pca[0]["x"]  # the points really were re-projected


def test_vector_model_shows_coordinates_of_the_clicked_point(page_env):
    at = open_page("latent", model_name="helix-1d")
    ok(at)
    assert any("shown as is" in c.value for c in at.caption)  # a 1-D code: (code, 0)
    traces = scatter(at)
    assert sum(len(t["customdata"]) for t in traces) == len(load_dataset("helix3d").test)
    assert traces[0]["text"][0].split("<br>")[1].startswith("point (")
    i = traces[1]["customdata"][0]
    select(at, {"customdata": i})
    ok(at)
    table = at.dataframe[0].value
    assert list(table.index) == ["original", "decoded code"] and list(table.columns) == ["x", "y", "z"]
    np.testing.assert_allclose(table.loc["original"].to_numpy(), load_dataset("helix3d").test.x[i], rtol=1e-6)
    point_fig = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert [t["type"] for t in point_fig["data"]] == ["scatter3d"] * 3
    assert not at.get("image")


def test_empty_store_shows_what_to_do(tmp_path):
    with store_env(tmp_path):
        at = open_page("latent")
    assert not at.exception
    assert "No saved model of image or vector data yet" in at.info[0].value
    assert not at.get("plotly_chart")


def test_points_and_a_clicked_item_are_the_models_own_test_split(seed3_store, media):
    """Every point is an item of the test split eval scores (the model's seed drew it),
    and a click shows that item, not the item at that index of the default split."""
    tm = ModelStore(seed3_store).load("s3")
    own = model_data(tm)
    n_items = evaluate(tm, own)["n_items"]
    with store_env(seed3_store):
        at = open_page("latent", model_name="s3")
        ok(at)
        traces = scatter(at)
        assert sum(len(t["customdata"]) for t in traces) == n_items
        default = load_dataset("digits").test.x
        trace_no, k = next(
            (t, k)
            for t, tr in enumerate(traces)
            for k, i in enumerate(tr["customdata"])
            if i >= len(default) or not np.array_equal(own.test.x[i], default[i])
        )
        i = traces[trace_no]["customdata"][k]
        select(at, {"curve_number": trace_no, "point_number": k, "point_index": k, "customdata": i})
    ok(at)
    assert items(at) == [f"Item {i}: {own.class_names[own.test.labels[i]]}"]
    shown = pixels(media, images(at)["original"])
    np.testing.assert_array_equal(shown, to_png_array(own.test.x[i], 12))  # 8x8 shown 12x larger


def test_selected_item_reads_every_shape_a_selection_comes_in():
    from aecore.explore.latent import selected_item

    groups = [("0", np.array([4, 7])), ("1", np.array([2, 9]))]
    point = {"curve_number": 1, "point_index": 1}
    assert selected_item({"selection": {"points": [point]}}, groups, 10) == 9  # no customdata: trace and index
    # a typed array comes back from the browser as {"0": i}; a list or a plain value as itself
    for cd in ({"0": 7}, [7], 7):
        assert selected_item({"selection": {"points": [{"customdata": cd}]}}, groups, 10) == 7
    # an index beyond this figure (a bigger earlier one) is skipped for the next point
    stale = {"customdata": 12}
    assert selected_item({"selection": {"points": [stale, {"customdata": 2}]}}, groups, 10) == 2
    assert selected_item(None, groups, 10) is None
    assert selected_item({"selection": {"points": [{"curve_number": 5, "point_index": 0}]}}, groups, 10) is None


def replay_figure(at) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if "validation items, epoch" in str(s["layout"].get("title", ""))]
    assert found, "no replay figure on the page"
    return found[0]


def test_the_epoch_slider_replays_how_the_code_space_formed(page_env, media):
    at = open_page("latent", model_name="ae-digits")
    assert not at.exception
    tl = ModelStore(page_env).timeline("ae-digits")
    slider = at.select_slider(key="lat_replay_frame")
    assert slider.label == "Epoch" and len(slider.options) == len(tl.frames)
    assert slider.value == len(tl.frames) - 1  # it opens on the trained model
    last = replay_figure(at)
    strip_last = pixels(media, images(at)[STRIP])
    slider.set_value(0).run()
    first = replay_figure(at)
    assert "epoch 0" in first["layout"]["title"]["text"] and first["layout"]["title"] != last["layout"]["title"]
    assert first["data"][0]["x"] != last["data"][0]["x"]
    assert first["layout"]["xaxis"]["range"] == last["layout"]["xaxis"]["range"]  # one basis, fixed axes
    strip_first = pixels(media, images(at)[STRIP])
    half = strip_first.shape[0] // 2
    assert np.array_equal(strip_first[:half], strip_last[:half])  # the same originals
    assert not np.array_equal(strip_first[half:], strip_last[half:])  # untrained reconstructions differ
    assert any("per epoch" in c.value for c in at.caption)  # what moved, and whether it settled


def test_a_model_without_a_timeline_says_so(tmp_path):
    from aecore.runs.pipeline import train
    from aecore.runs.request import TrainRequest

    store = ModelStore(tmp_path / "store")
    tm, _, _ = train(TrainRequest(preset="vanilla", dataset="digits", epochs=1, latent_dim=4, device="cpu"))
    tm.timeline = None  # as a model saved before timelines were recorded
    store.save("old-model", tm)
    with store_env(tmp_path / "store"):
        at = open_page("latent", model_name="old-model")
    assert not at.exception
    assert any("No timeline" in c.value for c in at.caption)
