"""The Data page through AppTest: dataset overview, image samples, the manifold
demos in 2-D/3-D with the learned code drawn on the data, missing datasets."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from conftest import open_page, store_env

from aecore.data import DATASETS, load_dataset
from aecore.explore import inference
from aecore.store import ModelStore


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def ok(at) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


def arr(v) -> np.ndarray:
    """A plotly data array from the figure JSON: a list, or plotly's typed array {dtype, bdata[, shape]}."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(s) for s in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.array([np.nan if e is None else e for e in v], dtype=float)


def figure(at, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(charts) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(charts[0].proto.spec)


def points(trace: dict) -> np.ndarray:
    axes = ("x", "y", "z") if trace["type"] == "scatter3d" else ("x", "y")
    return np.stack([arr(trace[a]) for a in axes], 1)


def images(at) -> list:
    return [im for el in at.get("image") for im in el.proto.imgs]


@pytest.fixture
def empty_store(tmp_path):
    with store_env(tmp_path / "empty") as root:
        yield root


def test_digits_shows_sizes_counts_and_random_samples(empty_store):
    at = open_page("data", data_name="digits")
    ok(at)
    bundle = load_dataset("digits")
    m = {x.label: x.value for x in at.metric}
    assert m["train items"] == f"{len(bundle.train):,}" and m["test items"] == f"{len(bundle.test):,}"
    assert m["Item shape"] == "1 × 8 × 8" and m["Values (train)"] == "0 … 1"
    counts = figure(at, "data_counts")
    assert [t["name"] for t in counts["data"]] == ["train", "val", "test"]
    assert arr(counts["data"][0]["y"]).sum() == len(bundle.train)
    shown = images(at)
    assert len(shown) == 32 and all(c in "0123456789" for c in (im.caption for im in shown))
    first = [im.url for im in shown]
    at.button(key="data_shuffle").click()
    at.run()
    ok(at)
    assert [im.url for im in images(at)] != first  # another random draw


def test_class_filter_shows_only_that_class(empty_store):
    at = open_page("data", data_name="digits")
    at.selectbox(key="data_class").set_value("7")
    at.slider(key="data_count").set_value(16)
    at.run()
    ok(at)
    shown = images(at)
    assert len(shown) == 16 and {im.caption for im in shown} == {"7"}


@pytest.mark.parametrize("name, dim", [("line2d", 2), ("helix3d", 3)])
def test_vector_data_is_an_interactive_scatter(empty_store, name, dim):
    at = open_page("data", data_name=name)
    ok(at)
    fig = figure(at, "data_points_plot")
    assert len(fig["data"]) == 1
    trace = fig["data"][0]
    assert trace["type"] == ("scatter3d" if dim == 3 else "scatter")
    pts = points(trace)
    assert pts.shape == (1000, dim)
    train = load_dataset(name).train
    # every drawn point is a training point, and its colour is that point's position label
    lookup = {tuple(np.round(p, 5)): lab for p, lab in zip(train.x, train.labels)}
    assert [lookup[tuple(np.round(p, 5))] for p in pts] == arr(trace["marker"]["color"]).tolist()
    at.slider(key="data_points").set_value(250)
    at.run()
    ok(at)
    assert points(figure(at, "data_points_plot")["data"][0]).shape == (250, dim)
    # no model trained on it in this store: the page says how to get one
    assert any("manifold-1d" in i for i in texts(at.info))
    assert at.button(key="data_train_demo") is not None


def test_sequence_data_shows_input_target_pairs(empty_store):
    at = open_page("data", data_name="reverse-seq")
    ok(at)
    table = at.dataframe[0].value
    assert len(table) == 10
    for inp, tgt in zip(table["input"], table["target"]):
        assert tgt.split() == inp.split()[:3][::-1]


def test_a_missing_dataset_says_where_to_put_it(empty_store, tmp_path, monkeypatch):
    import pages._common as common

    data_dir = tmp_path / "no-data"
    data_dir.mkdir()
    monkeypatch.setenv("AECORE_DATA_DIR", str(data_dir))
    monkeypatch.setattr(common, "DATA_DIR", str(data_dir))
    at = open_page("data", data_name="fashion-mnist")
    assert not at.exception, texts(at.exception)
    warning = " ".join(texts(at.warning))
    assert "fashion-mnist is not available" in warning and str(data_dir / "FashionMNIST" / "raw") in warning
    how = " ".join(texts(at.markdown))
    assert "train-images-idx3-ubyte.gz" in how and f"download('fashion-mnist', '{data_dir.resolve()}')" in how
    assert "not available" in at.selectbox(key="data_name").format_func("mnist")
    assert "not available" not in at.selectbox(key="data_name").format_func("digits")
    assert not images(at) and not at.metric  # nothing else is drawn


def test_mnist_from_the_data_dir(empty_store, data_dir, monkeypatch):
    import pages._common as common

    if not DATASETS["mnist"].available(data_dir):
        pytest.skip(f"MNIST is not in {data_dir}")
    monkeypatch.setattr(common, "DATA_DIR", str(data_dir))
    at = open_page("data", data_name="mnist")
    ok(at)
    m = {x.label: x.value for x in at.metric}
    assert m["Item shape"] == "1 × 28 × 28" and m["test items"] == "10,000"
    assert len(images(at)) == 32


@pytest.mark.parametrize("model, name, dim", [("line-1d", "line2d", 2), ("helix-1d", "helix3d", 3)])
def test_manifold_demo_draws_the_learned_code_on_the_data(page_env, model, name, dim):
    at = open_page("data", data_name=name, data_model=model)
    ok(at)
    fig = figure(at, "data_manifold_plot")
    names = [t["name"] for t in fig["data"]]
    assert names == ["data, coloured by code", "reconstructions (the learned manifold)", "decoder curve decode(z)"]
    data, recon, curve = fig["data"]
    assert {t["type"] for t in fig["data"]} == {"scatter3d" if dim == 3 else "scatter"}
    pts = points(data)
    assert pts.shape == (1000, dim)
    tm = ModelStore(page_env).load(model)
    code = inference.encode(tm, pts.astype(np.float32))[:, 0]
    np.testing.assert_allclose(arr(data["marker"]["color"]), code, rtol=1e-4, atol=1e-5)  # coloured by code
    # the learned curve: every point's reconstruction, in order of its code
    order = np.argsort(code, kind="stable")
    expected = inference.reconstruct(tm, pts.astype(np.float32))[order]
    np.testing.assert_allclose(points(recon), expected, rtol=1e-4, atol=1e-4)
    assert points(curve).shape == (200, dim)
    m = {x.label: x.value for x in at.metric}
    assert m["Code size"] == "1" and 0.0 <= float(m["Order agreement"]) <= 1.0
    # optional traces: the joins to the reconstructions on, the decoder curve off
    at.checkbox(key="data_show_errors").check()
    at.checkbox(key="data_show_curve").uncheck()
    at.run()
    ok(at)
    names = [t["name"] for t in figure(at, "data_manifold_plot")["data"]]
    assert names == ["data, coloured by code", "point → reconstruction", "reconstructions (the learned manifold)"]


def test_train_demo_button_trains_saves_and_draws(empty_store):
    from pages._job_panel import registry

    at = open_page("data", data_name="sine")
    at.button(key="data_train_demo").click()
    at.run()
    ok(at)
    job = registry().get(at.session_state["_run_data_job"])  # trained as a run, not in the page's thread
    assert job is not None and job.join(120) and job.view().status == "done", job.view().message
    at.run()
    ok(at)
    assert ModelStore(empty_store).names() == ["manifold-1d-sine"]
    assert at.selectbox(key="data_model").value == "manifold-1d-sine"
    fig = figure(at, "data_manifold_plot")
    assert len(fig["data"]) == 3
    # 200 epochs learn the sine's order along the curve well
    assert float({x.label: x.value for x in at.metric}["Order agreement"]) > 0.9
