"""aecore.explore.catalogue: what the model pickers offer."""

from __future__ import annotations

from aecore.explore.catalogue import available_datasets, model_caption, model_names, no_model_hint
from aecore.runs.pipeline import train_and_save
from aecore.runs.request import TrainRequest
from aecore.store import ModelStore


def test_pickers_offer_models_of_one_kind_newest_first(tmp_path):
    store = ModelStore(tmp_path)
    train_and_save(TrainRequest(preset="vanilla", dataset="digits", epochs=1, device="cpu"), store, "b-older")
    train_and_save(TrainRequest(preset="vanilla", dataset="digits", epochs=1, device="cpu"), store, "a-newer")
    train_and_save(TrainRequest(preset="manifold-1d", dataset="line2d", epochs=1, device="cpu"), store, "curve")
    assert model_names(store, ("image",)) == ["a-newer", "b-older"]  # not alphabetical: the newest first
    assert model_names(store, ("vector",)) == ["curve"]
    assert set(model_names(store)) == {"a-newer", "b-older", "curve"}
    caption = model_caption(store.load("a-newer"))
    assert "preset vanilla" in caption and "dataset digits" in caption and "1 epoch(s)" in caption
    assert "test MSE" in caption


def test_hints_and_datasets():
    assert "--preset seq2seq-lstm" in no_model_hint(("sequence",))
    assert "of image or vector data" in no_model_hint(("image", "vector"))
    assert {"digits", "line2d", "reverse-seq"} <= set(available_datasets())
    assert available_datasets(kind="sequence") == ["reverse-seq"]
