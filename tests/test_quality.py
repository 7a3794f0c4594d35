"""bench/quality.py: the reproduction command runs end to end on a sliver of the real data,
writes its table, JSON and figures, and the figures it reports match a direct computation.

The full reproduction is a benchmark (hours), not a test: here every model trains one epoch
on 300 images and is evaluated on the first 1,000 test images."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, run_python

EXPS = ["basic-softplus", "code-size-mnist", "anomaly-mnist-vs-fashion"]
N_EVAL = 1000


def run_quality(data_dir, out, store, only: str, *extra: str, timeout: float = 150):
    """bench/quality.py at smoke-test size: 300 training items, one epoch, one thread."""
    args = [
        "bench/quality.py",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--store",
        str(store),
        "--limit",
        "300",
        "--epochs",
        "1",
        "--eval-limit",
        str(N_EVAL),
        "--threads",
        "1",
        "--only",
        only,
        *extra,
    ]
    return run_python(args, timeout=timeout)


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory, data_dir):
    for folder in ("MNIST", "FashionMNIST"):
        if not (data_dir / folder / "raw").is_dir():
            pytest.skip(
                f"{data_dir / folder / 'raw'} is absent: set AECORE_TEST_DATA_DIR to a folder holding "
                "MNIST/raw and FashionMNIST/raw to run the reproduction smoke test."
            )
    tmp = tmp_path_factory.mktemp("quality")
    out, store = tmp / "docs", tmp / "store"
    proc = run_quality(data_dir, out, store, ",".join(EXPS))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    return {
        "out": out,
        "store": store,
        "doc": doc,
        "rows": doc["experiments"],
        "data_dir": data_dir,
        "stdout": proc.stdout,
    }


def test_writes_the_table_and_json_with_every_row_and_column(quality_run):
    rows, doc = quality_run["rows"], quality_run["doc"]
    assert sorted(rows) == sorted(EXPS)
    for name, row in rows.items():
        assert row["status"] == "done", row.get("error")
        for key in ("experiment", "preset", "dataset", "metrics", "goals", "wall_s", "epochs", "command", "hardware"):
            assert key in row, (name, key)
        assert row["wall_s"] > 0 and f"--only {name}" in row["command"]
        assert row["settings"] == {
            "limit": 300,
            "eval_limit": N_EVAL,
            "epochs_override": 1,
            "budget_min": 30.0,
            "quick": True,
        }
    run = doc["runs"][-1]
    assert "bench/quality.py" in run["command"] and run["hardware"]["torch"] and run["hardware"]["cpu_model"]
    # every goal of these experiments is recorded with its measured value and a met/missed verdict
    goals = [g for r in rows.values() for g in r["goals"]]
    assert len(goals) == 3  # code sizes 2 and 10, and the anomaly AUROC
    assert all(isinstance(g["met"], bool) and g["value"] is not None for g in goals)

    md = (quality_run["out"] / "results.md").read_text()
    for heading in (
        "## Goals",
        "## Presets and goal models",
        "## Test error against code size",
        "## Figures",
        "## Rows: command, hardware, wall time",
    ):
        assert heading in md
    header = next(line for line in md.splitlines() if line.startswith("| experiment | preset |"))
    for col in ("test MSE", "PSNR dB", "PCA MSE", "epochs", "wall"):
        assert col in header
    for name in EXPS:
        assert f"| {name} |" in md
    assert "Smoke-run rows" in md  # a --limit/--epochs run never passes for the recipe's figure
    assert md.count("**missed**") + md.count("**met**") == 3


def test_figures_are_pngs_of_a_sensible_size(quality_run):
    out = quality_run["out"]
    figs = [f for r in quality_run["rows"].values() for f in r["figures"]]
    figs += ["figures/cost-seed002.png", "figures/code-size.png"]
    assert "figures/recon-basic-softplus.png" in figs and "figures/weights-basic-softplus.png" in figs
    for f in figs:
        path = out / f
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert 100 <= im.width <= 4000 and 50 <= im.height <= 4000, (f, im.size)
            assert np.asarray(im.convert("L")).std() > 5, f"{f} is blank"
        assert f"({f})" in (out / "results.md").read_text()
    # the weight tiles: 200 hidden units of 28x28
    with Image.open(out / "figures/weights-basic-softplus.png") as im:
        assert im.width >= 14 * 28 and im.height >= 14 * 28


def test_reported_metrics_match_a_direct_computation(quality_run):
    from sklearn.metrics import roc_auc_score

    from aecore.data import load_dataset
    from aecore.explore import baselines, inference
    from aecore.store import ModelStore

    rows, store = quality_run["rows"], ModelStore(quality_run["store"])
    mnist = load_dataset("mnist", quality_run["data_dir"])
    test_x = mnist.test.x[:N_EVAL]

    # the seed-002 row: test MSE and the seed's cost, recomputed from the saved model
    m = rows["basic-softplus"]["metrics"]
    tm = store.load(rows["basic-softplus"]["model"])
    errors = inference.per_item_errors(tm, test_x)
    assert m["n_test"] == N_EVAL
    assert m["test_mse"] == pytest.approx(float(errors.mean()), rel=1e-5)
    assert m["psnr_db"] == pytest.approx(baselines.psnr(float(errors.mean())), rel=1e-6)
    assert m["test_sse_per_item"] == pytest.approx(784 * float(errors.mean()), rel=1e-5)

    # PCA at the same code size on the same 300 training images
    curve = rows["code-size-mnist"]["metrics"]["by_code_size"]
    assert sorted(int(k) for k in curve) == [2, 10, 32]
    train_x = mnist.limit(300).train.x
    for k, v in curve.items():
        pca = baselines.pca_fit(train_x, int(k))
        assert v["pca_test_mse"] == pytest.approx(float(baselines.pca_errors(pca, test_x).mean()), rel=1e-4)
        ae = store.load(v["model"])
        assert ae.model.latent_dim == int(k)
        assert v["ae_test_mse"] == pytest.approx(float(inference.per_item_errors(ae, test_x).mean()), rel=1e-5)

    # the anomaly AUROC, from the MNIST model's errors on both test sets
    fashion = load_dataset("fashion-mnist", quality_run["data_dir"]).test.x[:N_EVAL]
    van = store.load(rows["anomaly-mnist-vs-fashion"]["model"])
    e0, e1 = inference.per_item_errors(van, test_x), inference.per_item_errors(van, fashion)
    auroc = roc_auc_score(np.r_[np.zeros(len(e0)), np.ones(len(e1))], np.r_[e0, e1])
    assert rows["anomaly-mnist-vs-fashion"]["metrics"]["auroc"] == pytest.approx(auroc, abs=1e-9)


def test_resume_skips_finished_rows_and_keeps_them(quality_run):
    out, data_dir = quality_run["out"], quality_run["data_dir"]
    before = (out / "results.json").read_text()
    proc = run_quality(data_dir, out, quality_run["store"], "basic-softplus", "--resume", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped (--resume)" in proc.stdout
    after = json.loads((out / "results.json").read_text())
    assert after["experiments"] == json.loads(before)["experiments"]
    assert len(after["runs"]) == len(json.loads(before)["runs"]) + 1


def test_unknown_experiment_is_refused(tmp_path):
    proc = run_python(["bench/quality.py", "--only", "no-such-thing", "--out", str(tmp_path)], timeout=60)
    assert proc.returncode != 0 and "unknown experiment" in proc.stderr
    assert not (tmp_path / "results.json").exists()


def _quality_module(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_quality", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_line_chart_without_matplotlib(tmp_path, monkeypatch):
    """The charts fall back to PIL, so the tests and a bare install need no matplotlib."""
    q = _quality_module(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    series = [
        {"label": "AE", "x": [2, 10, 32], "y": [0.04, 0.015, 0.006]},
        {"label": "PCA", "x": [2, 10, 32], "y": [0.055, 0.034, 0.018], "dashed": True},
        {"label": "empty", "x": [], "y": []},
    ]
    assert q.line_chart(tmp_path / "c.png", series, "t", "code size", "MSE", logy=True, xticks=[2, 10, 32]) == "pil"
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG" and im.size == (820, 500)
        px = np.asarray(im.convert("RGB")).reshape(-1, 3)
    for colour in q.COLORS[:2]:  # both series are drawn in their colours
        assert (px == colour).all(1).any()
    # degenerate input (one point, non-finite values) still draws
    assert q.line_chart(tmp_path / "d.png", [{"label": "x", "x": [1], "y": [float("nan")]}], "t", "x", "y") == "pil"
    assert (tmp_path / "d.png").stat().st_size > 0


def test_merge_folds_a_parallel_runs_rows_and_figures_into_the_table(quality_run, tmp_path):
    """Rows run in another process (--out elsewhere) join the table with their figures."""
    other = tmp_path / "other"
    proc = run_quality(quality_run["data_dir"], other, quality_run["store"], "conv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    main = tmp_path / "main"
    main.mkdir()
    for f in ("results.json",):
        (main / f).write_text((quality_run["out"] / f).read_text())
    proc = run_python(["bench/quality.py", "--out", str(main), "--merge", str(other)], timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((main / "results.json").read_text())
    assert sorted(doc["experiments"]) == sorted([*EXPS, "conv"])  # nothing lost, the new row added
    assert doc["experiments"]["conv"] == json.loads((other / "results.json").read_text())["experiments"]["conv"]
    assert any("--only conv" in r["command"] for r in doc["runs"])
    for fig in doc["experiments"]["conv"]["figures"]:
        assert (main / fig).read_bytes() == (other / fig).read_bytes()
    md = (main / "results.md").read_text()
    assert "| conv |" in md and "| basic-softplus |" in md
    assert (main / "figures" / "code-size.png").is_file()  # charts redrawn from the merged rows
