"""``python -m aecore`` end to end, with a private store.

The main flow (train, eval, reconstruct, datasets, the MNIST run and two user
mistakes) runs the real entry point in subprocesses. Each costs a Python start
and a torch import (2-5 s of CPU here), so the commands that do not depend on
each other run concurrently (module fixture ``runs``) and the tests then check
one result each. The rest (the VAE, score, generate, listings, the full matrix of
user mistakes) calls ``aecore.cli.main`` in-process, which is all that
``python -m aecore`` runs, with its output captured the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, REQUIRED_PRESETS
from PIL import Image

from aecore.cli import main
from aecore.data import load_dataset
from aecore.presets import PRESETS

# User mistakes: each must give exit code != 0, one `error:` line, no traceback.
ERRORS = {
    "unknown-preset": ["train", "--preset", "no-such-preset", "--dataset", "digits"],
    "unknown-dataset": ["train", "--preset", "vanilla", "--dataset", "no-such-data"],
    "epochs-0": ["train", "--preset", "vanilla", "--dataset", "digits", "--epochs", "0"],
    "lr-abc": ["train", "--preset", "vanilla", "--dataset", "digits", "--lr", "abc"],
    "mnist-missing": ["train", "--preset", "vanilla", "--dataset", "mnist", "--data-dir", "{empty}"],
    "eval-missing-model": ["eval", "no-such-model"],
    "bad-name": ["train", "--preset", "vanilla", "--dataset", "digits", "--epochs", "1", "--name", "../x"],
    "score-missing-model": ["score", "no-such-model", "--dataset", "digits"],
    "no-command": [],
}


def aecore_process(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aecore", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    p = {
        "store": root / "store",
        "empty": root / "empty",
        "out": root / "out",
        "png": root / "digit.png",
        "txt": root / "notes.txt",
    }
    p["empty"].mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 30)) * 255).astype(np.uint8), "L").save(p["png"])  # any size, any mode
    p["txt"].write_text("this is not an image\n")
    return p


@pytest.fixture(scope="module")
def runs(paths, data_dir):
    env = {**os.environ, "AECORE_STORE": str(paths["store"]), "OMP_NUM_THREADS": "1"}
    env.pop("AECORE_DATA_DIR", None)
    fill = {"empty": str(paths["empty"])}
    first = {
        "train": ["train", "--preset", "vanilla", "--dataset", "digits", "--epochs", "5", "--json", "--name", "v1"],
        "datasets_empty": ["datasets", "--json", "--data-dir", str(paths["empty"])],
        # the real entry point on two mistakes: one argparse catches, one the engine catches
        **{f"error:{k}": [a.format(**fill) for a in ERRORS[k]] for k in ("lr-abc", "mnist-missing")},
    }
    if (data_dir / "MNIST" / "raw").is_dir():
        first["train_mnist"] = [
            "train",
            "--preset",
            "vanilla",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--json",
            "--name",
            "mnist1",
        ]
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(aecore_process, args, env) for name, args in first.items()}
        # meanwhile, the VAE trains in this process (same code path, without another torch import)
        out = {
            "train_vae": main_in_process(
                ["train", "--preset", "vae-mlp", "--dataset", "digits", "--epochs", "2", "--json", "--name", "vae1"],
                None,
                paths["store"],
            )
        }
        train = futures["train"].result()
        try:
            k = json.loads(train.stdout)["latent_dim"]
        except (ValueError, KeyError):
            k = 1  # the train test reports the real problem
        z = ",".join(f"{v:.2f}" for v in np.linspace(-1, 1, k))
        then = {  # these need the trained model
            "eval": ["eval", "v1", "--json"],
            "reconstruct": ["reconstruct", "v1", str(paths["png"]), "--out", str(paths["out"])],
        }
        futures.update({name: pool.submit(aecore_process, args, env) for name, args in then.items()})
        out.update({name: f.result() for name, f in futures.items()})
    out["_k"] = k
    out["_z"] = z
    return out


def main_in_process(argv: list[str], capsys, store: Path) -> subprocess.CompletedProcess:
    """``aecore.cli.main`` as ``python -m aecore`` runs it; a traceback would fail the test.
    Output is captured by ``capsys``, or without it (in a fixture) by redirecting sys.stdout/stderr."""
    argv_store = [*argv, "--store", str(store)] if argv and argv[0] in STORE_COMMANDS else argv
    out, err = io.StringIO(), io.StringIO()
    if capsys is not None:
        capsys.readouterr()
    with contextlib.ExitStack() as stack:
        if capsys is None:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        try:
            rc = main(argv_store)
        except SystemExit as e:  # argparse mistakes exit through the parser
            rc = e.code
    if capsys is not None:
        cap = capsys.readouterr()
        return subprocess.CompletedProcess(argv, rc, cap.out, cap.err)
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


STORE_COMMANDS = {"train", "eval", "score", "reconstruct", "generate", "models"}


def ok_json(r: subprocess.CompletedProcess):
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def assert_one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# --- listing -------------------------------------------------------------------------------------
def test_presets_lists_all_presets(runs, capsys, tmp_path):
    r = main_in_process(["presets"], capsys, tmp_path)
    assert r.returncode == 0, r.stderr
    for name in PRESETS:
        assert name in r.stdout
    listed = ok_json(main_in_process(["presets", "--json"], capsys, tmp_path))
    assert [p["name"] for p in listed] == list(PRESETS)
    assert set(REQUIRED_PRESETS) <= {p["name"] for p in listed}


def test_datasets_availability_follows_the_data_dir(runs, data_dir, capsys, tmp_path):
    d = ok_json(runs["datasets_empty"])
    rows = {r["name"]: r for r in d["datasets"]}
    for name in ("digits", "line2d", "sine", "helix3d", "reverse-seq"):
        assert rows[name]["available"] is True and rows[name]["offline"] is True
    for name in ("mnist", "fashion-mnist", "kmnist"):
        assert rows[name]["available"] is False
    shared_run = main_in_process(["datasets", "--json", "--data-dir", str(data_dir)], capsys, tmp_path)
    shared = {r["name"]: r for r in ok_json(shared_run)["datasets"]}
    assert shared["mnist"]["available"] is (data_dir / "MNIST" / "raw").is_dir()


# --- train and use a model -----------------------------------------------------------------------
def test_train_json_summary_and_saved_model(runs, paths):
    s = ok_json(runs["train"])
    assert s["status"] == "done" and s["epochs"] == 5
    for key in ("images_per_s", "wall_s", "final_train_loss", "final_val_loss", "test_mse"):
        assert isinstance(s[key], float) and s[key] > 0, key
    assert s["name"] == "v1"
    folder = paths["store"] / "v1"
    assert Path(s["path"]) == folder
    assert (folder / "config.json").is_file() and (folder / "weights.safetensors").is_file()
    history = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[-1]["train_loss"] == pytest.approx(s["final_train_loss"])


def test_training_an_existing_name_needs_overwrite(runs, paths, capsys):
    r = main_in_process(
        ["train", "--preset", "vanilla", "--dataset", "digits", "--epochs", "1", "--name", "v1"], capsys, paths["store"]
    )
    assert "exists" in assert_one_error_line(r)
    r = main_in_process(["models"], capsys, paths["store"])
    assert r.returncode == 0 and "v1" in r.stdout and "vae1" in r.stdout


def test_models_lists_it(runs, paths, capsys):
    listed = {m["name"]: m for m in ok_json(main_in_process(["models", "--json"], capsys, paths["store"]))}
    assert {"v1", "vae1"} <= set(listed)
    assert listed["v1"]["ok"] and listed["v1"]["preset"] == "vanilla" and listed["v1"]["dataset"] == "digits"


def test_eval_json(runs):
    m = ok_json(runs["eval"])
    for key in ("test_mse", "pca_test_mse", "psnr_db"):
        assert isinstance(m[key], float), key
    assert m["test_mse"] == pytest.approx(ok_json(runs["train"])["test_mse"], rel=1e-5)  # same model, same split
    assert m["latent_dim"] == runs["_k"]


def test_vae_eval_has_test_loss(runs, paths, capsys):
    assert ok_json(runs["train_vae"])["status"] == "done"
    m = ok_json(main_in_process(["eval", "vae1", "--json"], capsys, paths["store"]))
    assert isinstance(m["test_loss"], float)
    assert set(m["test_terms"]) == {"recon", "kl"}


def test_score_gives_one_error_per_test_item(runs, paths, capsys):
    s = ok_json(main_in_process(["score", "v1", "--dataset", "digits", "--json"], capsys, paths["store"]))
    errors = s["errors"]
    assert len(errors) == len(load_dataset("digits").test)
    assert all(e >= 0 for e in errors)
    assert np.mean(errors) == pytest.approx(ok_json(runs["eval"])["test_mse"], rel=1e-4)


def test_reconstruct_writes_a_png(runs, paths):
    r = runs["reconstruct"]
    assert r.returncode == 0, r.stderr
    out = paths["out"] / "digit_recon.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.height % 8 == 0 and img.width >= 2 * img.height  # original beside reconstruction


def test_reconstruct_a_non_image_fails_cleanly(runs, paths, capsys):
    out = paths["out"] / "txt"
    r = main_in_process(["reconstruct", "v1", str(paths["txt"]), "--out", str(out)], capsys, paths["store"])
    assert "notes.txt" in assert_one_error_line(r)
    assert not any(out.glob("*.png"))


def test_generate_writes_a_png(runs, paths, capsys):
    r = main_in_process(
        ["generate", "v1", f"--z={runs['_z']}", "--out", str(paths["out"] / "gen" / "g.png")], capsys, paths["store"]
    )
    assert r.returncode == 0, r.stderr
    with Image.open(paths["out"] / "gen" / "g.png") as img:
        assert img.format == "PNG" and img.size[0] == img.size[1]


def test_generate_with_the_wrong_number_of_values(runs, paths, capsys):
    k = runs["_k"]
    bad = paths["out"] / "bad.png"
    r = main_in_process(["generate", "v1", f"--z={runs['_z']},0.5", "--out", str(bad)], capsys, paths["store"])
    line = assert_one_error_line(r)
    assert str(k) in line and str(k + 1) in line
    for z in (",".join(["nan"] * k), "a,b"):
        assert_one_error_line(
            main_in_process(["generate", "v1", f"--z={z}", "--out", str(bad)], capsys, paths["store"])
        )
    assert not bad.exists()


def test_generate_accepts_a_code_that_starts_negative(runs, paths, capsys):
    """`--z -0.5,0.5` is how a user types a code; argparse must not take it for an option."""
    z = ",".join(["-0.5"] * runs["_k"])
    out = paths["out"] / "negative.png"
    r = main_in_process(["generate", "v1", "--z", z, "--out", str(out)], capsys, paths["store"])
    assert r.returncode == 0, r.stderr
    assert out.is_file()


# --- user mistakes -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["lr-abc", "mnist-missing"])
def test_user_mistakes_through_the_real_entry_point(runs, case, paths):
    line = assert_one_error_line(runs[f"error:{case}"])
    assert runs[f"error:{case}"].returncode == 2
    if case == "mnist-missing":
        assert str(paths["empty"]) in line and "--data-dir" in line


@pytest.mark.parametrize("case", ERRORS)
def test_user_mistakes_give_one_error_line(case, paths, capsys, tmp_path):
    argv = [a.format(empty=str(paths["empty"])) for a in ERRORS[case]]
    r = main_in_process(argv, capsys, tmp_path / "store")
    line = assert_one_error_line(r)
    assert r.stdout.strip() == ""
    if case == "mnist-missing":
        assert str(paths["empty"]) in line and "--data-dir" in line
    if case == "unknown-preset":
        assert "no-such-preset" in line
    if case == "bad-name":
        assert "../x" in line
        assert not (tmp_path / "x").exists()
    if case in ("eval-missing-model", "score-missing-model"):
        assert "no-such-model" in line


def test_mnist_training(runs, mnist_dir):
    s = ok_json(runs["train_mnist"])
    assert s["status"] == "done" and s["epochs"] == 1
    assert s["n_items"] == 10_000  # the whole MNIST test split, not limited
    assert s["test_mse"] > 0 and s["pca_test_mse"] > 0 and s["pca_components"] == 64
    assert s["images_per_s"] > 0
    cfg = json.loads((Path(s["path"]) / "config.json").read_text())
    assert cfg["model"]["input_shape"] == [1, 28, 28] and cfg["limit"] == 2000


def test_download_without_torchvision_says_what_to_do(paths, capsys, tmp_path):
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision imports here, so --download would try the network")
    except Exception:
        pass
    empty = tmp_path / "nodata"
    r = main_in_process(
        ["train", "--preset", "vanilla", "--dataset", "mnist", "--data-dir", str(empty), "--download"],
        capsys,
        tmp_path / "store",
    )
    line = assert_one_error_line(r)
    assert "torchvision" in line and str(empty / "MNIST" / "raw") in line
