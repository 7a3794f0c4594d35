"""The Compare page through AppTest: loss curves, the metrics table against PCA, evaluation of
unevaluated models, the warnings, and the empty store."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import open_page, store_env

from aecore.store import ModelStore


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def chart(at, key: str) -> dict:
    for el in at.get("plotly_chart"):
        if key in el.proto.id:  # a keyed element's id carries its key
            return json.loads(el.proto.spec)
    raise AssertionError(f"no chart {key}")


def table(at):
    return next(df.value for df in at.dataframe if "test MSE" in df.value.columns)


def choose(names: list[str]):
    at = open_page("compare")
    at.multiselect(key="cmp_models").set_value(names).run()
    ok(at)
    return at


def test_default_selection_is_the_newest_models(page_env):
    at = open_page("compare")
    ok(at)
    default = at.multiselect(key="cmp_models").value
    created = {i.name: i.created for i in ModelStore(page_env).list()}
    assert len(default) == 3
    assert min(created[n] for n in default) >= max(created[n] for n in created if n not in default)
    assert len(table(at)) == 3


def test_one_row_and_two_curves_per_model_with_the_stored_metrics(page_env):
    names = ["ae-digits", "vae-digits", "conv-digits"]
    at = choose(names)
    df = table(at)
    assert df["model"].tolist() == names
    stored = {i.name: i.metrics for i in ModelStore(page_env).list()}
    for _, row in df.iterrows():
        m = stored[row["model"]]
        assert row["test MSE"] == pytest.approx(m["test_mse"], rel=1e-12)
        assert row["PCA MSE"] == pytest.approx(m["pca_test_mse"], rel=1e-12)
        assert row["AE / PCA"] == pytest.approx(m["test_mse"] / m["pca_test_mse"])
        assert row["epochs"] == m["epochs"] and row["dataset"] == "digits"
    assert df.set_index("model").loc["ae-digits", "code size"] == 8

    spec = chart(at, "cmp_losses")
    traces = {t["name"]: t for t in spec["data"]}
    assert len(spec["data"]) == 2 * len(names)  # train and validation per model
    assert set(traces) == {f"{n} · {s}" for n in names for s in ("train", "validation")}
    history = ModelStore(page_env).load("ae-digits").history
    assert traces["ae-digits · train"]["y"] == pytest.approx([h["train_loss"] for h in history])
    assert traces["ae-digits · validation"]["y"] == pytest.approx([h["val_loss"] for h in history])
    assert spec["layout"]["yaxis"]["type"] == "log"

    bars = chart(at, "cmp_bars")["data"]
    assert [b["name"] for b in bars] == ["autoencoder", "PCA, same code size"]
    assert bars[1]["y"] == pytest.approx([stored[n]["pca_test_mse"] for n in names])

    at.toggle(key="cmp_logy").set_value(False).run()
    assert chart(at, "cmp_losses")["layout"]["yaxis"]["type"] == "linear"


def test_models_of_other_datasets_are_allowed_with_a_warning(page_env):
    at = choose(["ae-digits"])
    assert not at.warning
    at = choose(["ae-digits", "line-1d"])
    assert len(table(at)) == 2
    assert any("not on one scale" in w.value and "datasets (digits, line2d)" in w.value for w in at.warning)
    at = choose(["ae-digits", "vae-digits"])  # one dataset, but MSE mean against summed MSE + KL
    assert any("loss functions" in w.value and "datasets" not in w.value for w in at.warning)


def test_sequence_models_show_accuracy_instead_of_mse(page_env):
    at = choose(["seq-reverse", "ae-digits"])
    df = table(at).set_index("model")
    m = ModelStore(page_env).load("seq-reverse").metrics
    assert df.loc["seq-reverse", "sequence accuracy"] == pytest.approx(m["sequence_accuracy"])
    assert df.loc["seq-reverse", "token accuracy"] == pytest.approx(m["token_accuracy"])
    assert math.isnan(df.loc["seq-reverse", "test MSE"])
    assert len(chart(at, "cmp_bars")["data"][0]["x"]) == 1  # only ae-digits has an MSE to set against PCA


def test_unevaluated_model_gets_evaluated_and_stored(page_env, tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(page_env / "ae-digits", root / "ae-noeval")
    full = json.loads((page_env / "ae-digits" / "metrics.json").read_text())
    bare = {k: v for k, v in full.items() if k in ("status", "epochs", "images_per_s", "wall_s")}
    (root / "ae-noeval" / "metrics.json").write_text(json.dumps(bare))
    with store_env(root):
        at = open_page("compare")
        ok(at)
        assert math.isnan(table(at)["test MSE"][0])
        assert any("ae-noeval" in i.value for i in at.info)
        at.button(key="cmp_eval").click().run()
        ok(at)
        stored = ModelStore(root).load("ae-noeval").metrics
        # the same weights on the same test split give the original evaluation back
        assert stored["test_mse"] == pytest.approx(full["test_mse"], rel=1e-5)
        assert stored["pca_test_mse"] == pytest.approx(full["pca_test_mse"], rel=1e-5)
        assert table(at)["test MSE"][0] == pytest.approx(stored["test_mse"], rel=1e-12)
        at.run()  # the next run reads the metrics from disk: no button any more
        ok(at)
        assert not at.button and table(at)["test MSE"][0] == pytest.approx(stored["test_mse"], rel=1e-12)


def test_empty_store_shows_the_info(tmp_path):
    with store_env(tmp_path / "empty"):
        at = open_page("compare")
    assert not at.exception
    assert any("No saved models" in i.value for i in at.info)
    assert not at.dataframe and not at.get("plotly_chart")
