"""Property-based tests: whatever a user feeds the loaders and the config parsers,
the answer is a valid result or the error meant for users, never another exception.

- the file loaders (csv:, idx:, npz:, images:, one image) on random bytes,
  on damaged copies of valid files, on random CSV text and on random arrays;
- ``config_from_dict`` and ``TrainConfig.from_dict`` on random JSON, and the
  store on a saved model whose config.json had one field replaced.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import encode, idx_bytes, npy, npz
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from aecore.data.base import DataBundle
from aecore.data.files import load_csv, load_user_dataset
from aecore.errors import ConfigError, DataError, StoreError
from aecore.explore.uploads import prepare_image
from aecore.models import MODELS, config_from_dict, parameter_count
from aecore.models.trained import TrainedModel
from aecore.normalise import Normaliser
from aecore.store import ModelStore
from aecore.train import TrainConfig

# A fixed, modest run by default; AECORE_FUZZ_EXAMPLES=2000 searches longer and at random
EXAMPLES = int(os.environ.get("AECORE_FUZZ_EXAMPLES", 40))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="AECORE_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def assert_valid_bundle(b: DataBundle) -> None:
    assert b.kind in ("image", "vector")
    splits = (b.train, b.val, b.test)
    for s in splits:
        assert len(s.x) >= 1 and s.x.dtype == np.float32 and np.isfinite(s.x).all()
        assert s.x.shape[1:] == b.sample_shape
        if s.labels is not None:
            assert s.labels.dtype == np.int64 and s.labels.shape == (len(s.x),)
    if b.kind == "image":
        assert len(b.sample_shape) == 3 and b.sample_shape[0] in (1, 3)
        assert all(0 <= s.x.min() and s.x.max() <= 1 for s in splits)
    else:
        assert len(b.sample_shape) == 1


def load_or_refuse(spec: str) -> DataBundle | None:
    """A valid bundle, or None when refused with a DataError; anything else fails the test."""
    try:
        bundle = load_user_dataset(spec)
    except DataError as e:
        assert str(e) and "\n" not in str(e)
        return None
    assert_valid_bundle(bundle)
    return bundle


def with_file(name: str, data: bytes, prefix: str) -> DataBundle | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        return load_or_refuse(f"{prefix}:{path}")


# ---------------------------------------------------------------- random and damaged bytes

LOADERS = {
    "csv": ("data.csv", "csv"),
    "idx": ("data.idx", "idx"),
    "npy": ("data.npy", "npz"),
    "npz": ("data.npz", "npz"),
    "zip": ("data.zip", "images"),
}
# Random bytes rarely get past a format's first check: start many with the right magic
HEADS = [
    b"",
    b"label,p1,p2\n",
    b"\x00\x00\x08\x02",
    b"\x00\x00\x0d\x01",
    b"\x93NUMPY\x01\x00",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x89PNG\r\n\x1a\n",
]


@SETTINGS
@given(loader=st.sampled_from(sorted(LOADERS)), head=st.sampled_from(HEADS), tail=st.binary(max_size=400))
def test_random_bytes_load_or_are_refused(loader, head, tail):
    name, prefix = LOADERS[loader]
    with_file(name, head + tail, prefix)


def _valid_files() -> dict[str, tuple[str, str, bytes]]:
    rng = np.random.default_rng(0)
    pix = rng.integers(0, 256, (6, 8, 8), np.uint8)
    pngs = {f"{i}.png": encode(Image.fromarray(p)) for i, p in enumerate(pix)}
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        for n, data in pngs.items():
            zf.writestr(f"cls{int(n[0]) % 2}/{n}", data)
    csv = (
        "label,"
        + ",".join(f"p{i}" for i in range(64))
        + "\n"
        + "".join(f"{i % 3}," + ",".join(map(str, p.ravel())) + "\n" for i, p in enumerate(pix))
    )
    return {
        "csv": ("d.csv", "csv", csv.encode()),
        "idx": ("d.idx", "idx", idx_bytes(pix)),
        "npy": ("d.npy", "npz", npy(pix)),
        "npz": ("d.npz", "npz", npz(x=pix, y=np.arange(6) % 2)),
        "npz-deflated": ("d.npz", "npz", npz(compressed=True, x=pix.astype(np.float32) / 255)),
        "zip": ("d.zip", "images", zbuf.getvalue()),
    }


VALID = _valid_files()


def damage(data: bytes, draw) -> bytes:
    """Overwrite a few random spans with random bytes and maybe cut the end."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out) - 1))
        junk = draw(st.binary(min_size=1, max_size=8))
        out[at : at + len(junk)] = junk
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


@SETTINGS
@given(kind=st.sampled_from(sorted(VALID)), data=st.data())
def test_damaged_files_load_or_are_refused(kind, data):
    name, prefix, good = VALID[kind]
    assert with_file(name, good, prefix) is not None  # the undamaged file loads
    with_file(name, damage(good, data.draw), prefix)


IMAGES = {
    fmt: encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (12, 10, 3), np.uint8)), fmt)
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
}


@SETTINGS
@given(fmt=st.sampled_from(sorted(IMAGES)), channels=st.sampled_from([1, 3]), data=st.data())
def test_damaged_images_prepare_or_are_refused(fmt, channels, data):
    try:
        prep = prepare_image(damage(IMAGES[fmt], data.draw), (channels, 8, 8))
    except DataError:
        return
    assert prep.array.shape == (channels, 8, 8) and prep.array.dtype == np.float32
    assert np.isfinite(prep.array).all() and 0 <= prep.array.min() and prep.array.max() <= 1


# Pillow modes and the arrays that make them
MODE_ARRAYS = {
    "L": np.uint8,
    "I;16": np.uint16,
    "I": np.int32,
    "F": np.float32,
    "1": bool,
    "LA": (np.uint8, 2),
    "RGB": (np.uint8, 3),
    "RGBA": (np.uint8, 4),
}


@SETTINGS
@given(
    mode=st.sampled_from(sorted(MODE_ARRAYS)),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    fmt=st.sampled_from(["PNG", "TIFF"]),
    data=st.data(),
)
def test_images_of_any_mode_come_out_in_unit_range(mode, h, w, fmt, data):
    spec = MODE_ARRAYS[mode]
    dtype, depth = spec if isinstance(spec, tuple) else (spec, None)
    shape = (h, w) if depth is None else (h, w, depth)
    elements = st.floats(-1e6, 1e6, width=32) if dtype == np.float32 else None
    a = data.draw(hnp.arrays(dtype, shape, elements=elements))
    img = (
        Image.fromarray(a) if mode not in ("LA",) else Image.merge("LA", [Image.fromarray(a[..., i]) for i in range(2)])
    )
    try:
        raw = encode(img, fmt)
    except OSError:
        assume(False)  # a format that cannot hold this mode: nothing to test
    for c in (1, 3):
        prep = prepare_image(raw, (c, 8, 8))
        assert prep.array.shape == (c, 8, 8) and np.isfinite(prep.array).all()
        assert 0 <= prep.array.min() and prep.array.max() <= 1


# ---------------------------------------------------------------- random CSV text

CELLS = st.one_of(
    st.integers(-3, 300).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(lambda f: f"{f:g}"),
    st.sampled_from(["", " ", "abc", '"7"', "1e3", "0x10", "-0", "nan", "+5", "1,5"]),
)
HEADER_NAMES = st.sampled_from(["label", "Label", "p1", "p2", "pixel3", "x", " ", "", '"q"'])


@SETTINGS
@example(header=["label", "p1"], rows=[["inf", "0"]] * 3, blank=False, crlf=False)  # an inf label cast to int
@given(
    header=st.lists(HEADER_NAMES, min_size=1, max_size=6),
    rows=st.lists(st.lists(CELLS, max_size=7), max_size=7),
    blank=st.booleans(),
    crlf=st.booleans(),
)
def test_random_csv_text_loads_or_is_refused(header, rows, blank, crlf):
    lines = [",".join(header)] + [",".join(r) for r in rows] + ([""] if blank else [])
    text = ("\r\n" if crlf else "\n").join(lines)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.csv"
        path.write_text(text, newline="")
        try:
            bundle = load_csv(path)
        except DataError:
            return
    assert_valid_bundle(bundle)


@SETTINGS
@given(
    table=hnp.arrays(np.int64, st.tuples(st.integers(3, 12), st.integers(1, 70)), elements=st.integers(0, 255)),
    labelled=st.booleans(),
)
def test_well_formed_csv_comes_back_exactly(table, labelled):
    n, d = table.shape
    header = (["label"] if labelled else []) + [f"p{i}" for i in range(d)]
    labels = np.arange(n) % 4
    rows = [([str(labels[i])] if labelled else []) + [str(v) for v in table[i]] for i in range(n)]
    with tempfile.TemporaryDirectory() as d_:
        path = Path(d_) / "t.csv"
        path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
        bundle = load_csv(path)
    assert_valid_bundle(bundle)
    splits = (bundle.train, bundle.val, bundle.test)
    x = np.concatenate([s.x.reshape(len(s.x), -1) for s in splits])
    scale = 1 if table.max() <= 1 else 255
    got = np.round(x * scale).astype(np.int64)
    assert sorted(map(tuple, got)) == sorted(map(tuple, table))  # every row, each once, unchanged
    if labelled:
        y = np.concatenate([s.labels for s in splits])
        assert sorted(y.tolist()) == sorted(labels.tolist())


# ---------------------------------------------------------------- random arrays

DTYPES = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
        np.dtype("<U2"),
        np.uint64,
    ]
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)


@SETTINGS
@given(
    x=hnp.arrays(DTYPES, SHAPES),
    y=st.none() | hnp.arrays(DTYPES, hnp.array_shapes(max_dims=2, max_side=6)),
    as_npz=st.booleans(),
)
def test_random_arrays_load_or_are_refused(x, y, as_npz):
    if as_npz:
        arrays = {"x": x} if y is None else {"x": x, "y": y}
        bundle = with_file("a.npz", npz(**arrays), "npz")
    else:
        bundle = with_file("a.npy", npy(x), "npz")
    if bundle is not None and x.dtype.kind in "iu" and x.ndim == 2 and x.dtype != np.uint8:
        # vectors keep their values (as float32)
        got = np.concatenate([bundle.train.x, bundle.val.x, bundle.test.x])
        assert sorted(map(tuple, got)) == sorted(map(tuple, x.astype(np.float32)))


FINITE_FLOATS = st.sampled_from([np.float16, np.float32, np.float64]).flatmap(
    lambda dt: hnp.arrays(
        dt,
        st.tuples(st.integers(3, 5), st.integers(1, 4))
        | st.tuples(st.integers(3, 5), st.integers(1, 4), st.integers(1, 4)),
        elements=hnp.from_dtype(np.dtype(dt), allow_nan=False, allow_infinity=False),
    )
)


@SETTINGS
@given(x=FINITE_FLOATS)
@example(x=np.array([[[-3.4e38, 3.4e38]]] * 3, np.float32))  # x - min overflowed float32 to inf, then NaN
@example(x=np.array([[1e300, 1.0]] * 3))  # float64 beyond float32 became inf
def test_finite_floats_of_any_size_stay_finite(x):
    """Values near the float32 limit must not turn into inf or NaN on the way to training."""
    bundle = with_file("f.npy", npy(x), "npz")
    if x.dtype == np.float64 and np.abs(x).max() > np.finfo(np.float32).max:
        assert bundle is None  # refused: float32 cannot hold them
    else:
        assert bundle is not None  # with_file has checked it is finite (and in [0, 1] for images)


IDX_DTYPES = st.sampled_from([np.uint8, np.int8, np.dtype(">i2"), np.dtype(">i4"), np.dtype(">f4"), np.dtype(">f8")])
IDX_TYPE = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


@SETTINGS
@given(x=hnp.arrays(IDX_DTYPES, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)))
def test_random_idx_arrays_load_or_are_refused(x):
    type_byte = IDX_TYPE[x.dtype.str[1:]]
    with_file("r.idx", idx_bytes(x, type_byte=type_byte), "idx")


# ---------------------------------------------------------------- configs

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
# Values a config field plausibly holds, wrong ones included: used to replace one field
FIELD_VALUES = (
    JSON
    | st.integers(-3, 70)
    | st.lists(st.integers(-2, 70), max_size=4)
    | st.sampled_from(
        [
            "relu",
            "sigmoid",
            "mse",
            "bce",
            "mean",
            "sum",
            "gaussian",
            "masking",
            "maxpool",
            "stride",
            "keras",
            "default",
            "none",
            "tanh",
            "linear",
            [1, 8, 8],
            [3, 8, 8],
            [6],
            {"recon": "bce"},
            {"kind": "gaussian"},
        ]
    )
)


def default_dict(kind: str) -> dict:
    cfg = MODELS[kind].config_class() if kind == "seq2seq" else MODELS[kind].config_class(input_shape=(1, 8, 8))
    return cfg.to_dict()


def check_config(d) -> None:
    try:
        cfg = config_from_dict(d)
    except ConfigError as e:
        assert str(e)
        return
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # it survives a save
    try:
        assert parameter_count(cfg) >= 0
    except ConfigError:  # some impossibilities only show when the layers are laid out
        pass


@SETTINGS
@example(d={"kind": []})  # an unhashable kind was a TypeError
@given(d=JSON | st.dictionaries(st.sampled_from(["kind", "input_shape", "hidden", "latent_dim", "x"]), JSON))
def test_random_json_as_model_config(d):
    check_config(d)


@SETTINGS
@given(kind=st.sampled_from(sorted(MODELS)), data=st.data())
def test_model_config_with_one_field_replaced(kind, data):
    d = default_dict(kind)
    key = data.draw(st.sampled_from(sorted(d)))
    if isinstance(d[key], dict) and data.draw(st.booleans()):  # or one field inside loss, corruption...
        inner = data.draw(st.sampled_from(sorted(d[key])))
        d[key][inner] = data.draw(FIELD_VALUES)
    else:
        d[key] = data.draw(FIELD_VALUES)
    check_config(d)


TRAIN_VALUES = FIELD_VALUES | st.sampled_from(
    ["adam", "adamw", "sgd", "cosine", "constant", "fp32", "bf16", "cpu", math.inf, math.nan, -1e-3, 1e-3, 10**6]
)


@SETTINGS
@given(d=JSON, data=st.data())
@example(d=None, data=None).via("a TypeError once")
@example(d={"weight_decay": [1]}, data=None).via("a TypeError once")
@example(d={"restore_best": "no"}, data=None).via("was accepted")
def test_random_train_configs(d, data):
    base = TrainConfig().to_dict()
    if data is not None and data.draw(st.booleans()):
        d = {**base, data.draw(st.sampled_from(sorted(base))): data.draw(TRAIN_VALUES)}
    try:
        cfg = TrainConfig.from_dict(d)
    except ConfigError as e:
        assert str(e)
        return
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "d",
    [
        {"restore_best": "no"},
        {"drop_last": 1},
        {"device": 5},
        {"weight_decay": "1"},
        {"momentum": None},
        {"early_stopping_patience": True},
        [],
        None,
        {3: 1},
    ],
)
def test_train_options_of_the_wrong_type_are_refused(d):
    """Cases the search above found (or that it would accept as a valid round trip)."""
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(d)


# ---------------------------------------------------------------- the store reading a tampered config


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    from aecore.models import DenseConfig, build_model

    root = tmp_path_factory.mktemp("prop_store")
    model = build_model(DenseConfig(input_shape=(1, 8, 8), hidden=[16], latent_dim=4))
    ModelStore(root).save("m", TrainedModel(model, Normaliser("unit"), {"data_kind": "image"}))
    return root / "m"


SMALL_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-3, 100)
    | st.floats()
    | st.text(max_size=5)
    | st.lists(st.integers(-2, 64), max_size=4)
    | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
)


@settings(SETTINGS, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_store_loads_a_tampered_config_or_refuses_it(saved_model, data, tmp_path):
    cfg = json.loads((saved_model / "config.json").read_text())
    if data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(cfg["model"])))
        if data.draw(st.booleans()):
            cfg["model"].pop(key)
        else:
            cfg["model"][key] = data.draw(SMALL_VALUES)
    else:
        key = data.draw(st.sampled_from(sorted(cfg)))
        cfg[key] = data.draw(SMALL_VALUES)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "m").mkdir()
        for f in saved_model.iterdir():
            (root / "m" / f.name).write_bytes(f.read_bytes())
        (root / "m" / "config.json").write_text(json.dumps(cfg))
        store = ModelStore(root)
        infos = store.list()  # never raises
        assert [i.name for i in infos] == ["m"]
        try:
            tm = store.load("m")
        except StoreError as e:
            assert str(e)
            return
        assert tuple(tm.model.config.input_shape) == (1, 8, 8)
