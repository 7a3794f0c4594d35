"""aecore.explore.compare: loss descriptions, loss curves and comparison rows, without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.data import load_dataset
from aecore.explore import compare
from aecore.records import epoch_record
from aecore.runs.request import TrainRequest, prepare
from aecore.store import ModelInfo


def untrained(preset: str, dataset: str = "digits", **kw):
    return prepare(TrainRequest(preset=preset, dataset=dataset, device="cpu", **kw))[1]


def info(name: str, dataset: str = "digits") -> ModelInfo:
    return ModelInfo(name=name, ok=True, preset="p", dataset=dataset)


@pytest.mark.parametrize(
    ("preset", "dataset", "words"),
    [
        ("vanilla", "digits", "MSE (mean)"),
        ("vae-mlp", "digits", "MSE (sum) + KL"),
        ("sparse-l1", "digits", "MSE (mean) + L1"),
        ("sparse-kl", "digits", "MSE (batch_sum ×0.5) + sparsity KL"),
        ("seq2seq-lstm", "reverse-seq", "cross-entropy"),
    ],
)
def test_loss_kind_names_every_term_of_the_objective(preset, dataset, words):
    assert compare.loss_kind(untrained(preset, dataset)) == words


def test_differences_name_what_keeps_losses_off_one_scale():
    ae, vae, line = untrained("vanilla"), untrained("vae-mlp"), untrained("manifold-1d", "line2d")
    assert compare.differences({"a": ae, "b": untrained("vanilla")}, {"a": info("a"), "b": info("b")}) == []
    assert compare.differences({"a": ae, "v": vae}, {"a": info("a"), "v": info("v")}) == [
        "loss functions (MSE (mean); MSE (sum) + KL)"
    ]
    parts = compare.differences({"a": ae, "l": line}, {"a": info("a"), "l": info("l", "line2d")})
    assert parts[0] == "datasets (digits, line2d)"


def test_a_model_without_validation_losses_has_a_training_curve_only():
    with_val, without = untrained("vanilla"), untrained("vanilla")
    with_val.history = [epoch_record(e, {"recon": 1.0 / e}, 2.0 / e, {"recon": 2.0 / e}, 1.0, 1.0) for e in (1, 2, 3)]
    without.history = [epoch_record(e, {"recon": 1.0 / e}, None, {}, 1.0, 1.0) for e in (1, 2)]
    curves = compare.loss_curves({"v": with_val, "n": without})
    assert [(c.model, c.split) for c in curves] == [("v", "train"), ("v", "validation"), ("n", "train")]
    assert curves[0].epochs == [1, 2, 3] and curves[1].loss == pytest.approx([2.0, 1.0, 2.0 / 3])


def test_rows_share_one_set_of_columns_and_skip_a_meaningless_ratio():
    ae, exact, seq = untrained("vanilla"), untrained("vanilla"), untrained("seq2seq-lstm", "reverse-seq")
    models = {"ae": ae, "exact": exact, "seq": seq}
    metrics = {
        "ae": {"test_mse": 0.02, "pca_test_mse": 0.04, "epochs": 7},
        "exact": {"test_mse": 0.01, "pca_test_mse": 1e-30},  # PCA keeping every value: no ratio
        "seq": {"sequence_accuracy": 0.5, "token_accuracy": 0.9},
    }
    rows = compare.table_rows(models, {n: info(n) for n in models}, metrics)
    assert [r["model"] for r in rows] == ["ae", "exact", "seq"]
    assert len({tuple(r) for r in rows}) == 1  # same keys in the same order, so the table has no holes
    assert rows[0]["AE / PCA"] == pytest.approx(0.5) and rows[0]["epochs"] == 7
    assert rows[1]["AE / PCA"] is None and rows[1]["epochs"] == 0  # no metric, no history
    assert rows[2]["sequence accuracy"] == 0.5 and rows[2]["test MSE"] is None
    assert "seed cost / item" not in rows[0]
    assert set(rows[0]) - {"model", "preset", "dataset", "code size", "epochs"} <= set(compare.COLUMN_FORMATS)


def test_sequence_models_wait_for_accuracy_and_the_rest_for_test_mse():
    ae, seq = untrained("vanilla"), untrained("seq2seq-lstm", "reverse-seq")
    models = {"ae": ae, "seq": seq}
    assert compare.unevaluated(models, {"ae": {"test_mse": 0.1}, "seq": {"test_mse": 0.1}}) == ["seq"]
    assert compare.unevaluated(models, {"ae": {}, "seq": {"sequence_accuracy": 1.0}}) == ["ae"]


def test_evaluation_bundle_is_split_with_the_models_seed():
    tm = untrained("vanilla", seed=5)
    bundle = compare.evaluation_bundle(tm)
    own = load_dataset("digits", seed=5, val_fraction=tm.meta.val_fraction)
    np.testing.assert_array_equal(bundle.test.x, own.test.x)
    assert not np.array_equal(bundle.test.x, load_dataset("digits").test.x)  # seed 0's test split is another one
