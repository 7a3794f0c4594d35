"""aecore.runs.live: what the job panel shows, computed without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from aecore.records import epoch_record
from aecore.runs.jobs import JobView
from aecore.runs.live import format_duration, live_view, loss_series, runs_rows
from aecore.train import Snapshot


def view(**kw) -> JobView:
    base = dict(
        id="r1",
        name="m",
        status="running",
        message="training.",
        preset="vanilla",
        dataset="digits",
        device="cpu",
        epochs=4,
        epoch=1,
        step=3,
        steps_per_epoch=4,
        images_per_s=1234.4,
        elapsed_s=65.0,
        eta_s=3700.0,
        steps=[],
        history=[],
        snapshot=None,
        saved_as=None,
        error=None,
        created=0.0,
    )
    base.update(kw)
    return JobView(**base)


def test_step_curves_share_the_epoch_axis_with_the_epoch_curves():
    steps = [
        {"step": s, "epoch": 1 + (s - 1) // 4, "loss": 1.0 / s, "recon": 0.8 / s, "l1": 0.2 / s} for s in (1, 2, 4, 6)
    ]
    history = [epoch_record(1, {"recon": 0.3, "l1": 0.1}, 0.35, {"recon": 0.35}, 100.0, 1.0)]
    series = {s.name: s for s in loss_series(view(steps=steps, history=history))}
    assert set(series) == {
        "train loss (step)",
        "train recon (step)",
        "train l1 (step)",
        "train loss (epoch)",
        "validation loss",
    }
    assert series["train recon (step)"].x.tolist() == [0.25, 0.5, 1.0, 1.5]  # step / steps_per_epoch
    assert series["train loss (epoch)"].y.tolist() == pytest.approx([0.4]) and not series["validation loss"].per_step


def test_no_validation_curve_without_validation_losses():
    history = [epoch_record(1, {"recon": 0.3}, None, {}, 100.0, 1.0)]
    assert [s.name for s in loss_series(view(history=history))] == ["train loss (epoch)"]


def test_the_view_says_what_each_kind_of_run_shows():
    rng = np.random.default_rng(0)
    images = Snapshot(rng.random((8, 1, 8, 8)), rng.random((8, 1, 8, 8)), rng.random((20, 5)), np.arange(20) % 3)
    lv = live_view(view(snapshot=images), "image")
    assert lv.progress_text == "running: epoch 1/4, step 3/4" and lv.level == "caption"
    assert dict(lv.metrics) == {
        "Images/s": "1,234",
        "Elapsed": "1:05",
        "Time left": "1:01:40",
        "Train loss": "-",
        "Validation loss": "-",
    }
    assert lv.recon_image.dtype == np.uint8 and lv.recon_image.ndim == 2 and lv.codes_xy.shape == (20, 2)
    assert "PCA of 5-D codes" in lv.codes_title
    points = Snapshot(rng.random((8, 3)), rng.random((8, 3)), rng.random((20, 1)), None)
    lv = live_view(view(snapshot=points, status="failed", message="boom"), "vector")
    assert [p.shape for p in lv.recon_points] == [(8, 2), (8, 2)] and lv.level == "error" and lv.message == "boom"
    assert "as is" in lv.codes_title and dict(lv.metrics)["Time left"] == "-"  # a failed run has no time left
    seqs = Snapshot(np.array([[1, 2, 3, 4, 5, 6]]), np.array([[3, 2, 1]]), rng.random((2, 4)), None)
    assert live_view(view(snapshot=seqs), "sequence").recon_text == "1 2 3 4 5 6 -> 3 2 1"
    assert live_view(view(), "image").codes_xy is None  # nothing to draw before the first snapshot


def test_durations_and_the_runs_table():
    assert [format_duration(s) for s in (None, 0, 59.6, 61, 3600, 3725)] == [
        "-",
        "0:00",
        "1:00",
        "1:01",
        "1:00:00",
        "1:02:05",
    ]
    assert runs_rows([view()]) == [
        {
            "run": "r1",
            "model": "m",
            "preset": "vanilla",
            "dataset": "digits",
            "status": "running",
            "epoch": "1/4",
            "device": "cpu",
        }
    ]
