"""Every hostile file of ``tests/hostile.py`` through every entry point that takes its type.

Each must be refused with its one specific, one-line message (naming the file),
and the process must go on: the dashboard's upload path, ``load_user_dataset``
with ``images:`` (the image alone in a folder and in a ZIP), ``csv:``, ``idx:``
and ``npz:``, and the CLI, in-process for every case and as a real process
once per file type. Images in unusual modes must be accepted and read right.
"""

from __future__ import annotations

import re
import signal
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tomllib
from conftest import REPO, run_python
from hostile import CASES, GOOD_IMAGES, PATTERN, PREFIX, Case, encode, wrap_image, write_corpus
from PIL import Image

from aecore import cli
from aecore.data import load_dataset
from aecore.data.raw import MAX_UPLOAD_BYTES, MAX_UPLOAD_MB, open_image
from aecore.errors import DataError
from aecore.explore.uploads import prepare_image
from aecore.models import DenseConfig, build_model
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.store import ModelStore

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory) -> Path:
    """A store with one untrained 8x8 model: the CLI needs a model before it reads a file."""
    root = tmp_path_factory.mktemp("cli_store")
    model = build_model(DenseConfig(input_shape=SHAPE, hidden=[16], latent_dim=2))
    ModelStore(root).save("tiny", TrainedModel(model, Normaliser("unit"), {"data_kind": "image"}))
    return root


def refusal(fn) -> str:
    with pytest.raises(DataError) as err:
        fn()
    return str(err.value)


@pytest.fixture(autouse=True)
def give_up_after_a_while():
    """Without its protection a pipe blocks forever and a huge file takes minutes: fail instead."""

    def stop(signum, frame):
        raise TimeoutError("no answer within 30 s: a file was read that should have been refused")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def check(msg: str, case: Case, name: str | None = None) -> None:
    assert re.search(case.fragment, msg), f"{case.id}: {msg!r} lacks /{case.fragment}/"
    if case.named and name is not None:
        assert name in msg, f"{case.id}: {msg!r} does not name {name}"
    assert "\n" not in msg and "Traceback" not in msg


ROUTES = [(c, e) for c in CASES for e in (c.entries if c.kind == "image" else ("dataset", "cli"))]


@pytest.mark.parametrize("case, entry", ROUTES, ids=[f"{c.id}-{e}" for c, e in ROUTES])
def test_every_hostile_file_is_refused_at_every_door(case, entry, corpus, cli_store, tmp_path, capsys):
    path = corpus[case.id]
    if entry == "upload":
        data = path.read_bytes()
        # as the Reconstruct page does: open with the upload's name, then prepare
        check(refusal(lambda: prepare_image(open_image(data, name=case.filename), SHAPE)), case, case.filename)
        check(refusal(lambda: prepare_image(data, SHAPE)), case, "the uploaded image")
    elif entry in ("folder", "zip"):
        wrapped = wrap_image(case, path, entry)
        msg = refusal(lambda: load_dataset(f"images:{wrapped}"))
        assert msg.startswith(f"none of the 1 images in {wrapped.name} could be read; the first problem: ")
        check(msg, case, case.filename)
    elif entry == "dataset":
        check(refusal(lambda: load_dataset(f"{PREFIX[case.kind]}:{path}")), case, path.name)
    else:  # the CLI, in this process: exit status and the one line it prints
        if case.kind == "image":
            argv = ["reconstruct", "tiny", str(path), "--out", str(tmp_path / "out")]
            expected_rc = 1  # one bad file among the files given
        else:
            argv = ["score", "tiny", "--dataset", f"{PREFIX[case.kind]}:{path}"]
            expected_rc = 2
        rc = cli.main([*argv, "--store", str(cli_store)])
        out, err = capsys.readouterr()
        assert rc == expected_rc and out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        check(lines[0], case, path.name)


def test_the_cli_processes_refuse_each_file_type_in_one_line(corpus, cli_store, tmp_path):
    """Real processes, one per file type (they take seconds each, so they run side by side)."""
    store = ["--store", str(cli_store)]
    images = [c for c in CASES if c.kind == "image"]
    data_cases = {
        kind: next(c for c in CASES if c.kind == kind and c.named and "fifo" not in c.id)
        for kind in ("csv", "idx", "npz", "zip")
    }  # folders: the same images: door as a ZIP
    runs = {
        "images": [
            "-m",
            "aecore",
            "reconstruct",
            "tiny",
            *[str(corpus[c.id]) for c in images],
            *[str(corpus[g.id]) for g in GOOD_IMAGES],
            "--out",
            str(tmp_path / "out"),
            *store,
        ]
    }
    for kind, case in data_cases.items():
        runs[kind] = ["-m", "aecore", "score", "tiny", "--dataset", f"{PREFIX[kind]}:{corpus[case.id]}", *store]
    with ThreadPoolExecutor(len(runs)) as pool:
        done = dict(zip(runs, pool.map(lambda args: run_python(args, timeout=180), runs.values())))

    proc = done.pop("images")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == len(images), proc.stderr  # one line per bad file, nothing else
    for case, line in zip(images, errors):  # in the order given
        assert line.startswith("error: ")
        check(line, case, case.filename)
    written = proc.stdout.splitlines()
    assert len(written) == len(GOOD_IMAGES), proc.stdout  # the good ones still went through
    for good, line in zip(GOOD_IMAGES, written):
        assert line.startswith(str(corpus[good.id])) and "PSNR" in line
        assert (tmp_path / "out" / f"{Path(good.filename).stem}_recon.png").is_file()
    for kind, proc in done.items():
        case = data_cases[kind]
        assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        check(lines[0], case, corpus[case.id].name)


# ---------------------------------------------------------------- images that must be accepted


def as_gray(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) -> gray (..., H, W): colour images of gray content average back."""
    return x.mean(axis=-3)


@pytest.mark.parametrize("good", GOOD_IMAGES, ids=lambda g: g.id)
def test_unusual_modes_are_accepted_and_converted(good, corpus):
    path = corpus[good.id]
    data = path.read_bytes()
    h, w = good.expected.shape
    for prep in (
        prepare_image(data, (1, h, w), invert="no"),
        prepare_image(open_image(data, name=good.filename), (1, h, w), invert="no"),
    ):
        assert prep.array.shape == (1, h, w) and prep.array.dtype == np.float32
        np.testing.assert_allclose(prep.array[0], good.expected, atol=good.tol, err_msg=good.id)
        rgb = prepare_image(data, (3, h, w), invert="no").array
        np.testing.assert_allclose(as_gray(rgb), good.expected, atol=good.tol + 1e-3, err_msg=good.id)
    # three copies in a folder and in a ZIP: a dataset of this kind of file
    folder = path.parent / "three"
    folder.mkdir(exist_ok=True)
    for i in range(3):
        (folder / f"{i}-{good.filename}").write_bytes(data)
    archive = path.parent / "three.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}-{good.filename}", data)
    for source in (folder, archive):
        bundle = load_dataset(f"images:{source}")
        assert bundle.info["skipped"] == {} and bundle.sample_shape[1:] == (h, w)
        x = np.concatenate([bundle.train.x, bundle.val.x, bundle.test.x])
        assert len(x) == 3
        for item in x:
            np.testing.assert_allclose(as_gray(item), good.expected, atol=good.tol + 1e-3, err_msg=good.id)


def test_exif_orientation_is_applied_and_reported(corpus):
    data = corpus["good-exif-rotated"].read_bytes()
    assert Image.open(corpus["good-exif-rotated"]).size == (PATTERN.shape[0], PATTERN.shape[1])  # stored turned
    img = open_image(data)
    assert img.size == (PATTERN.shape[1], PATTERN.shape[0])
    prep = prepare_image(data, (1, 8, 8))
    assert any("EXIF orientation (6)" in step for step in prep.steps), prep.steps
    # a photo without the tag is left as it is
    assert "exif_transposed" not in open_image(corpus["good-cmyk"].read_bytes()).info


# ---------------------------------------------------------------- the upload limit


def test_upload_limit_is_the_dashboards_and_is_enforced_at_the_boundary(tmp_path):
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB  # Streamlit's unit: MB of 1024*1024 bytes
    assert MAX_UPLOAD_BYTES == MAX_UPLOAD_MB * 1024 * 1024
    png = encode(Image.fromarray(PATTERN))
    at_limit = png + bytes(MAX_UPLOAD_BYTES - len(png))  # PNG readers ignore bytes after IEND
    assert open_image(at_limit).size == (PATTERN.shape[1], PATTERN.shape[0])
    with pytest.raises(
        DataError, match=f"is {MAX_UPLOAD_BYTES + 1:,} bytes, above the limit of {MAX_UPLOAD_MB} MB for one image"
    ):
        open_image(at_limit + b"\0")
    # the same limit for a file on disk (the CLI), checked before reading it
    path = tmp_path / "edge.png"
    path.write_bytes(at_limit)
    assert open_image(path).size == (PATTERN.shape[1], PATTERN.shape[0])
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match=f"edge.png is {MAX_UPLOAD_BYTES + 1:,} bytes"):
        open_image(path)


def test_a_refused_file_does_not_stop_the_next_one(corpus):
    """The process keeps running: after every refusal, a good file still loads."""
    good = corpus["good-palette"].read_bytes()
    for case in CASES:
        if case.kind == "image" and "upload" in case.entries:
            with pytest.raises(DataError):
                prepare_image(corpus[case.id].read_bytes(), SHAPE)
            assert prepare_image(good, SHAPE).array.shape == SHAPE


if sys.platform == "win32":  # FIFOs and /dev/zero
    pytestmark = pytest.mark.skip("the hostile corpus uses POSIX special files")


def test_the_readme_states_the_limits_the_code_enforces():
    from aecore.data import files, raw
    from aecore.models import MAX_PARAMETERS
    from aecore.store import MAX_JSON_BYTES, NAME_RE

    readme = (REPO / "README.md").read_text()
    security = readme[readme.index("## Security") :]
    security = security[: security.index("\n## ", 1)]
    gb, mb = 2**30, 2**20
    assert files.MAX_ZIP_BYTES == gb and files.MAX_CSV_BYTES == gb and files.MIN_RATIO_CHECK_BYTES == mb
    assert MAX_JSON_BYTES == 4 * mb and "{0,79}" in NAME_RE.pattern
    for stated in [
        f"{raw.MAX_UPLOAD_MB} MB",
        f"maxUploadSize = {raw.MAX_UPLOAD_MB}",
        f"{raw.MAX_IMAGE_PIXELS:,} pixels",
        "1 GB uncompressed",
        "a member over 1 MB",
        f"at most {files.MAX_ZIP_RATIO} times",
        f"{files.MAX_FILES:,} images",
        f"{files.MAX_FILES:,} members",
        f"{files.MAX_DECODED_BYTES // gb} GB of decoded pixels",
        f"{files.MAX_OUTPUT_VALUES:,} values in the resulting array",
        "| CSV | 1 GB",
        f"at most {raw.MAX_IDX_ELEMENTS:,} values",
        f"at most {files.MAX_OUTPUT_VALUES:,} values per array",
        f"at most {files.MAX_NPZ_MEMBERS:,} members",
        f"below {files.MAX_LABEL:,}",
        "at most 4 MB",
        f"more than {MAX_PARAMETERS:,}",
        "1 to 80 letters",
    ]:
        assert stated in security, stated
