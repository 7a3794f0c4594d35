"""aecore.runs.request: what a user does (train a preset, evaluate it) and what it reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aecore.data import load_dataset
from aecore.errors import ConfigError, DataError
from aecore.explore import inference
from aecore.explore.metrics import evaluate
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest, prepare
from aecore.train import evaluate as evaluate_loss
from aecore.train import split_tensors


class NeverTrains:
    """Fails the test if training starts."""

    def on_train_start(self, info):
        raise AssertionError("training started for a request that should have been refused")


def numpy_pca_mse(train_x: np.ndarray, test_x: np.ndarray, k: int) -> float:
    a = train_x.reshape(len(train_x), -1).astype(np.float64)
    b = test_x.reshape(len(test_x), -1).astype(np.float64)
    mean = a.mean(0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    comps = vt[:k]
    rec = (b - mean) @ comps.T @ comps + mean
    return float(((rec - b) ** 2).mean())


@pytest.fixture(scope="module")
def vanilla_run():
    req = TrainRequest(preset="vanilla", dataset="digits", epochs=4, latent_dim=8, batch_size=64, device="cpu")
    return train(req)


def test_train_reports_metrics_that_match_a_direct_computation(vanilla_run):
    tm, result, bundle = vanilla_run
    m = tm.metrics
    assert result.status == "done" and m["status"] == "done"
    assert m["epochs"] == 4 and len(tm.history) == 4
    for key in ("test_mse", "pca_test_mse", "psnr_db", "images_per_s", "wall_s", "final_train_loss", "final_val_loss"):
        assert math.isfinite(m[key]), key
    direct = float(inference.per_item_errors(tm, bundle.test.x).mean())
    assert m["test_mse"] == pytest.approx(direct, rel=1e-6)
    assert m["psnr_db"] == pytest.approx(10 * math.log10(1 / direct), rel=1e-6)
    assert m["pca_components"] == 8 and m["latent_dim"] == 8
    assert m["pca_test_mse"] == pytest.approx(numpy_pca_mse(bundle.train.x, bundle.test.x, 8), rel=1e-4)
    assert m["n_items"] == len(bundle.test)
    assert m["final_train_loss"] == result.history[-1]["train_loss"]
    assert m["compression_ratio"] == pytest.approx(64 / 8)
    # the model comes back in eval mode with its provenance
    assert not tm.model.training
    assert tm.meta.preset == "vanilla" and tm.meta.dataset == "digits" and tm.meta.data_kind == "image"


def test_evaluate_on_another_split_is_consistent(vanilla_run):
    tm, _, bundle = vanilla_run
    val = evaluate(tm, bundle, split="val")
    assert val["n_items"] == len(bundle.val)
    assert val["test_mse"] == pytest.approx(float(inference.per_item_errors(tm, bundle.val.x).mean()), rel=1e-6)


def test_vae_metrics_have_the_test_loss():
    req = TrainRequest(preset="vae-mlp", dataset="digits", epochs=2, limit=300, device="cpu")
    tm, result, bundle = train(req)
    m = tm.metrics
    assert result.status == "done"
    assert {"test_loss", "test_terms", "test_mse", "pca_test_mse"} <= set(m)
    assert set(m["test_terms"]) == {"recon", "kl"}
    assert m["test_loss"] == pytest.approx(sum(m["test_terms"].values()))
    # the test loss is the model's own loss on the test split (eval mode: the mean, no sampling)
    x, t = split_tensors(bundle, "test", tm.normaliser, torch.device("cpu"))
    loss, _ = evaluate_loss(tm.model, x, t, 1024)
    assert m["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert tm.normaliser.kind == "symmetric"


@pytest.mark.parametrize(
    "preset, dataset",
    [("conv", "helix3d"), ("seq2seq-lstm", "digits"), ("vanilla", "reverse-seq"), ("manifold-1d", "digits")],
)
def test_incompatible_preset_and_dataset_are_refused_before_training(preset, dataset):
    req = TrainRequest(preset=preset, dataset=dataset, epochs=1, device="cpu")
    with pytest.raises(ConfigError):
        prepare(req)
    with pytest.raises(ConfigError):
        train(req, callbacks=[NeverTrains()])


def test_unknown_names_are_user_errors():
    with pytest.raises(ConfigError, match="preset"):
        train(TrainRequest(preset="nope", dataset="digits"), callbacks=[NeverTrains()])
    with pytest.raises(DataError, match="dataset"):
        train(TrainRequest(preset="vanilla", dataset="nope"), callbacks=[NeverTrains()])
    with pytest.raises(ConfigError):
        train(TrainRequest(preset="vanilla", dataset="digits", epochs=0), callbacks=[NeverTrains()])


def test_limit_shrinks_the_training_split_only():
    full = load_dataset("digits")
    bundle, tm, cfg = prepare(TrainRequest(preset="vanilla", dataset="digits", limit=100, device="cpu"))
    assert len(bundle.train) == 100
    np.testing.assert_array_equal(bundle.train.x, full.train.x[:100])
    assert len(bundle.val) == len(full.val) and len(bundle.test) == len(full.test)
    np.testing.assert_array_equal(bundle.test.x, full.test.x)
    assert tm.meta.limit == 100
    with pytest.raises(DataError):
        prepare(TrainRequest(preset="vanilla", dataset="digits", limit=0))


def test_seq2seq_reports_sequence_accuracy():
    req = TrainRequest(preset="seq2seq-lstm", dataset="reverse-seq", epochs=1, limit=2000, device="cpu")
    tm, result, bundle = train(req)
    m = tm.metrics
    assert result.status == "done"
    assert 0.0 <= m["sequence_accuracy"] <= m["token_accuracy"] <= 1.0
    assert "test_mse" not in m
    assert m["n_items"] == len(bundle.test)
    pred = inference.reconstruct(tm, bundle.test.x)  # greedy decoding, token ids
    assert pred.shape == bundle.test.target.shape == (len(bundle.test), 3)
    hit = pred == bundle.test.target
    assert m["token_accuracy"] == pytest.approx(hit.mean())
    assert m["sequence_accuracy"] == pytest.approx(hit.all(1).mean())


def test_resume_honours_each_changed_option_and_says_so(tmp_path):
    from aecore.runs.pipeline import train_and_save
    from aecore.runs.request import TrainRequest, resume_config, resume_request
    from aecore.store import ModelStore

    store = ModelStore(tmp_path)
    train_and_save(TrainRequest(preset="vanilla", dataset="digits", epochs=1, device="cpu"), store, "base")
    tm = store.load("base")
    req = resume_request(tm, 2)
    changed = TrainRequest(
        **{**req.__dict__, "optimizer": "sgd", "precision": "fp32", "early_stopping_patience": 3, "batch_size": 32}
    )
    cfg, notes = resume_config(changed, tm)
    assert (cfg.optimizer, cfg.batch_size, cfg.early_stopping_patience, cfg.epochs) == ("sgd", 32, 3, 2)
    assert any("optimizer: adam -> sgd" in n for n in notes) and any("fresh state" in n for n in notes)
    assert any("batch size" in n for n in notes) and any("early stopping patience" in n for n in notes)
    out = train_and_save(changed, store, resume_from="base")
    assert out.saved_as == "base" and len(out.tm.history) == 3
    assert store.load("base").meta.train["optimizer"] == "sgd"  # what ran is what is recorded


@pytest.mark.parametrize(
    "change, words",
    [({"latent_dim": 3}, "code size 3"), ({"seed": 7}, "seed 7"), ({"normalisation": "symmetric"}, "normalisation")],
)
def test_resume_refuses_what_a_trained_model_cannot_take(tmp_path, change, words):
    from aecore.errors import ConfigError
    from aecore.runs.pipeline import train_and_save
    from aecore.runs.request import TrainRequest, resume_request
    from aecore.store import ModelStore

    store = ModelStore(tmp_path)
    train_and_save(TrainRequest(preset="vanilla", dataset="digits", epochs=1, device="cpu"), store, "base")
    req = TrainRequest(**{**resume_request(store.load("base"), 1).__dict__, **change})
    with pytest.raises(ConfigError, match=words):
        train_and_save(req, store, resume_from="base")
    assert len(store.load("base").history) == 1  # nothing trained, nothing saved


def test_an_explicit_name_that_exists_is_refused_and_a_default_name_is_unique(tmp_path):
    from aecore.errors import StoreError
    from aecore.runs.pipeline import check_name, train_and_save
    from aecore.runs.request import TrainRequest
    from aecore.store import ModelStore

    store = ModelStore(tmp_path)
    req = TrainRequest(preset="vanilla", dataset="digits", epochs=1, device="cpu")
    first = train_and_save(req, store).saved_as
    assert first.startswith("vanilla-digits-")
    assert check_name(store, None, req) != first  # the same second: a suffix, never the same name
    with pytest.raises(StoreError, match="already exists"):
        train_and_save(req, store, first)
    assert train_and_save(req, store, first, overwrite=True).saved_as == first


def test_model_data_gives_the_split_the_model_was_trained_with(tmp_path):
    from aecore.explore.metrics import evaluate
    from aecore.runs.pipeline import train_and_save
    from aecore.runs.request import TrainRequest, model_data
    from aecore.store import ModelStore

    store = ModelStore(tmp_path)
    out = train_and_save(TrainRequest(preset="vanilla", dataset="digits", epochs=1, seed=3, device="cpu"), store, "s3")
    tm = store.load("s3")
    bundle = model_data(tm)
    assert np.array_equal(bundle.test.x, out.bundle.test.x)  # the training run's own test items
    assert evaluate(tm, bundle)["test_mse"] == pytest.approx(out.tm.metrics["test_mse"], rel=1e-6)
    seed0 = load_dataset("digits", seed=0)
    assert not np.array_equal(seed0.test.x, bundle.test.x)  # seed 0 would show other items as "test"
