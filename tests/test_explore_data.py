"""aecore.explore.data (the Data page's engine side) and the sequence page's helpers in aecore.explore.sequences."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.data import DATASETS, load_dataset
from aecore.errors import ConfigError
from aecore.explore import data as explore
from aecore.explore import inference
from aecore.explore.sequences import examples_table, expected_output, score_random, task_description
from aecore.runs.pipeline import train
from aecore.runs.request import TrainRequest


@pytest.fixture(scope="module")
def digits_bundle():
    return load_dataset("digits")


def test_summary_reports_split_sizes_shape_and_range(digits_bundle):
    info = explore.summary(digits_bundle)
    assert info.sizes == {s: len(getattr(digits_bundle, s)) for s in explore.SPLITS}
    assert info.shape == "1 × 8 × 8" and info.value_range == "0 … 1"
    assert "kind **image**" in info.notes


def test_label_counts_sum_to_the_split_sizes(digits_bundle):
    counts = explore.label_counts(digits_bundle)
    assert counts.names == [str(i) for i in range(10)] and counts.what == "class"
    for s in explore.SPLITS:
        assert len(counts.counts[s]) == 10
        assert sum(counts.counts[s]) == len(getattr(digits_bundle, s))


def test_vector_labels_are_positions_along_the_curve():
    counts = explore.label_counts(load_dataset("line2d"))
    assert counts.what.startswith("position") and all(n.startswith("position ") for n in counts.names)


def test_sample_indices_of_a_class_all_have_that_class(digits_bundle):
    part = digits_bundle.train
    idx, pool = explore.sample_indices(part, 20, seed=3, label=7)
    assert len(idx) == 20 and (part.labels[idx] == 7).all()
    assert pool == int((part.labels == 7).sum())
    assert len(set(idx.tolist())) == 20 and (np.diff(idx) > 0).all()  # distinct, sorted
    again, _ = explore.sample_indices(part, 20, seed=3, label=7)
    other, _ = explore.sample_indices(part, 20, seed=4, label=7)
    assert (again == idx).all() and (other != idx).any()  # the seed decides the draw


def test_sample_indices_never_draw_more_than_there_are(digits_bundle):
    idx, pool = explore.sample_indices(digits_bundle.test, 10**6, seed=0)
    assert len(idx) == pool == len(digits_bundle.test)
    idx, pool = explore.sample_indices(digits_bundle.test, 5, seed=0, label=99)
    assert len(idx) == 0 and pool == 0
    with pytest.raises(ConfigError):
        explore.sample_indices(load_dataset("reverse-seq").train, 5, seed=0, label=1)


def test_image_samples_captions_match_the_chosen_class(digits_bundle):
    shown = explore.image_samples(digits_bundle, "train", "3", 16, seed=0)
    assert shown.images.shape == (16, 1, 8, 8) and shown.captions == ["3"] * 16
    assert 0.0 <= shown.images.min() and shown.images.max() <= 1.0
    assert "labelled '3'" in shown.note
    everything = explore.image_samples(digits_bundle, "train", explore.ALL_CLASSES, 16, seed=0)
    assert everything.pool == len(digits_bundle.train) and "labelled" not in everything.note


def test_sequence_examples_targets_are_the_reversed_heads():
    part = load_dataset("reverse-seq").val
    table = explore.sequence_examples(part, seed=1)
    assert len(table["index"]) == len(table["input"]) == len(table["target"]) == 10
    for i, inp, tgt in zip(table["index"], table["input"], table["target"]):
        assert inp.split() == [str(v) for v in part.x[i]]
        assert tgt.split() == inp.split()[:3][::-1]


def test_dataset_labels_flag_missing_data(tmp_path):
    labels = explore.dataset_labels(tmp_path)
    assert list(labels) == list(DATASETS)
    assert "not available" in labels["mnist"] and "not available" not in labels["digits"]
    warning, how = explore.missing_help("mnist", tmp_path)
    raw = tmp_path.resolve() / DATASETS["mnist"].folder / "raw"
    assert str(raw) in warning and "train-images-idx3-ubyte.gz" in how


def test_manifold_traces_match_the_model():
    tm, result, bundle = train(TrainRequest(preset="manifold-1d", dataset="line2d", epochs=10, device="cpu"))
    assert result.ok
    pts, pos = explore.random_points(bundle.test, 100, seed=0)
    view = explore.manifold_traces(tm, pts, pos)
    np.testing.assert_allclose(view.code, inference.encode(tm, pts)[:, 0], rtol=1e-5, atol=1e-6)
    order = np.argsort(view.code, kind="stable")
    np.testing.assert_allclose(view.learned, inference.reconstruct(tm, pts)[order], rtol=1e-5, atol=1e-5)
    assert view.segments.shape == (300, 2) and 0.0 <= view.agreement <= 1.0 and view.latent_dim == 1
    names = [t.name for t in view.traces(show_errors=True, show_curve=False)]
    assert names == ["data, coloured by code", "point → reconstruction", "reconstructions (the learned manifold)"]
    assert [t.name for t in view.traces()][-1] == "decoder curve decode(z)"


def test_task_description_uses_the_sizes():
    text = task_description(8, 21, 4)
    assert "8 random integers from 1 to 20" in text and "The last 4 inputs" in text


def test_score_random_examples_agree_with_the_accuracy():
    tm, result, _ = train(TrainRequest(preset="seq2seq-lstm", dataset="reverse-seq", epochs=1, limit=500, device="cpu"))
    assert result.ok
    acc, inputs, targets, predictions = score_random(tm, 50, shown=8, seed=0)
    assert inputs.shape == (8, 6) and targets.shape == predictions.shape == (8, 3)
    assert (targets == expected_output(inputs, 3)).all()
    assert 0.0 <= acc["sequence_accuracy"] <= acc["token_accuracy"] <= 1.0
    again = inference.sequence_accuracy(tm, inputs, targets)
    rows = examples_table(inputs, targets, predictions)
    assert rows["right"].count("✓") == round(again["sequence_accuracy"] * 8)
