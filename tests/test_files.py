"""Loaders for the user's own files, and the low-level readers under them.

Every file is written by the test itself into ``tmp_path``.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecore.data.files import load_csv, load_idx, load_images, load_npz, load_user_dataset
from aecore.data.raw import image_to_array, open_image, read_idx, read_raw_dataset
from aecore.errors import DataError

# ---------------------------------------------------------------- helpers


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def pixel_header(n: int, label: bool = True) -> list[str]:
    return (["label"] if label else []) + [f"pixel{i + 1}" for i in range(n)]


def idx_bytes(arr: np.ndarray, type_byte: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_byte]
    header = bytes([0, 0, type_byte, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dtype).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False, type_byte: int = 0x08) -> Path:
    data = idx_bytes(arr, type_byte)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def gray(value: int, size: tuple[int, int] = (6, 6)) -> Image.Image:
    return Image.new("L", size, value)


def all_items(bundle) -> int:
    return len(bundle.train) + len(bundle.val) + len(bundle.test)


def split_rows(bundle) -> np.ndarray:
    return np.concatenate([bundle.train.x, bundle.val.x, bundle.test.x])


def split_labels(bundle) -> np.ndarray:
    return np.concatenate([bundle.train.labels, bundle.val.labels, bundle.test.labels])


# ---------------------------------------------------------------- CSV


def make_pixel_rows(n: int, d: int) -> tuple[list[list[int]], np.ndarray]:
    """Rows whose first pixel encodes the label, so labels can be checked after shuffling."""
    labels = np.arange(n) % 10
    pixels = (np.arange(n * d).reshape(n, d) * 7) % 256
    pixels[:, 0] = labels * 20
    return [[int(lbl), *map(int, px)] for lbl, px in zip(labels, pixels, strict=True)], pixels


def test_csv_with_labels_is_square_image_split_deterministically(tmp_path):
    rows, pixels = make_pixel_rows(40, 64)
    path = write_csv(tmp_path / "train.csv", pixel_header(64), rows)
    b = load_csv(path, seed=3)
    assert (b.kind, b.name, b.sample_shape) == ("image", "train", (1, 8, 8))
    assert (len(b.train), len(b.val), len(b.test)) == (32, 4, 4)
    assert b.train.x.dtype == np.float32 and b.train.labels.dtype == np.int64
    x = split_rows(b)
    np.testing.assert_array_equal(split_labels(b) * 20, np.round(x[:, 0, 0, 0] * 255))
    assert sorted(np.round(x.reshape(40, -1)[:, 1] * 255)) == sorted(pixels[:, 1])
    assert b.info["source"] == str(path) and b.info["scaling"] == "divided by 255"
    np.testing.assert_array_equal(load_csv(path, seed=3).test.x, b.test.x)
    assert not np.array_equal(load_csv(path, seed=4).test.x, b.test.x)


def test_csv_label_column_anywhere(tmp_path):
    path = tmp_path / "last.csv"
    path.write_text("a,b,LABEL\n0,255,1\n255,0,2\n0,0,3\n")
    b = load_csv(path)
    x, y = split_rows(b), split_labels(b)
    assert b.kind == "vector" and sorted(y) == [1, 2, 3]
    np.testing.assert_array_equal(x[np.argsort(y)], [[0, 1], [1, 0], [0, 0]])


def test_csv_without_labels_non_square_is_vector_already_scaled(tmp_path):
    rows = [[round(0.1 * (i % 10), 1) for i in range(r, r + 10)] for r in range(12)]
    path = write_csv(tmp_path / "points.csv", pixel_header(10, label=False), rows)
    b = load_csv(path, name="pts")
    assert (b.kind, b.name, b.sample_shape, b.train.labels) == ("vector", "pts", (10,), None)
    assert b.info["scaling"] == "already in [0, 1]"
    assert sorted(split_rows(b)[:, 0].round(3)) == sorted(round(r[0], 3) for r in rows)


def test_csv_with_quotes_blank_lines_and_float_pixels(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('label,a,b\n"1","0.5","255"\n\n2,3,4\n3,5,6\n\n')
    b = load_csv(path)
    assert all_items(b) == 3 and b.kind == "vector"
    assert sorted(split_labels(b)) == [1, 2, 3]


def test_csv_read_in_chunks_mixing_ints_floats_and_quotes(tmp_path, monkeypatch):
    monkeypatch.setattr("aecore.data.files.CSV_CHUNK_LINES", 2)
    path = tmp_path / "chunks.csv"
    path.write_text('label,a,b\n1,2,3\n2,4,5\n3,0.5,6\n4,7,8\n5,"9",10\n6,11,12\n')
    b = load_csv(path)
    assert all_items(b) == 6 and b.train.x.dtype == np.float32
    x, y = split_rows(b), split_labels(b)
    np.testing.assert_allclose(x[np.argsort(y)][:, 0] * 255, [2, 4, 0.5, 7, 9, 11], rtol=1e-6)
    path.write_text(path.read_text() + "7,1,2\n8,x,2\n")
    with pytest.raises(DataError, match="line 9, column 2 holds 'x'"):
        load_csv(path)


def test_three_rows_give_one_item_per_split_and_two_are_refused(tmp_path):
    rows, _ = make_pixel_rows(3, 64)
    b = load_csv(write_csv(tmp_path / "three.csv", pixel_header(64), rows))
    assert (len(b.train), len(b.val), len(b.test)) == (1, 1, 1)
    with pytest.raises(DataError, match="at least 3"):
        load_csv(write_csv(tmp_path / "two.csv", pixel_header(64), rows[:2]))


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "bad.csv is empty"),
        ("label,pixel1,pixel2\n", "no data rows"),
        ("1,2,3\n4,5,6\n", "no header row"),
        ("label,pixel1,pixel2\n1,2,3\n1,2\n1,2,3\n", "line 3 has 2 values but the header has 3"),
        ("label,pixel1,pixel2\n1,2,3\n1,abc,3\n1,2,3\n", "line 3, column 2 holds 'abc'"),
        ("label,pixel1,pixel2\n1,2,3\n1,2,3\n1,,3\n", "line 4, column 2 is empty"),
        ("label,pixel1,pixel2\n1,2,3\n1,2,nan\n1,2,3\n", r"line 3, column 3 \('pixel2'\) is NaN"),
        ("label,pixel1,pixel2\n1,2,3\n1,-1,3\n1,2,3\n", "line 3, column 'pixel1' holds -1, outside"),
        ("label,pixel1,pixel2\n1,2,3\n\n1,2,3\n1,2,300\n", "line 5, column 'pixel2' holds 300"),
        ("label,pixel1,pixel2\n1,2,3\n1.5,2,3\n1,2,3\n", "line 3 has label 1.5, but labels must be"),
    ],
)
def test_csv_errors_name_the_line_and_column(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=fragment):
        load_csv(path)


def test_csv_that_is_binary_is_refused(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(png_bytes(gray(3)))
    with pytest.raises(DataError, match="not a UTF-8 text CSV"):
        load_csv(path)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_with_sibling_labels(tmp_path, gz):
    suffix = ".gz" if gz else ""
    images = np.arange(12 * 5 * 4, dtype=np.uint8).reshape(12, 5, 4)
    labels = images[:, 0, 0] % 7
    path = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    b = load_idx(path)
    assert (b.kind, b.sample_shape, b.name) == ("image", (1, 5, 4), "train-images-idx3-ubyte")
    x = split_rows(b)
    np.testing.assert_array_equal(split_labels(b), np.round(x[:, 0, 0, 0] * 255) % 7)
    assert b.info["labels_source"].endswith(f"train-labels-idx1-ubyte{suffix}")


def test_idx_2d_is_vectors_without_labels(tmp_path):
    path = write_idx(tmp_path / "features.idx", np.full((5, 3), 255, np.uint8))
    b = load_idx(path)
    assert (b.kind, b.sample_shape, b.train.labels) == ("vector", (3,), None)
    assert np.all(b.train.x == 1.0)


def test_read_idx_big_endian_int_and_float(tmp_path):
    ints = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    floats = np.array([0.5, -1.25, 3e9], dtype=np.float32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i", ints, type_byte=0x0C)), ints)
    got = read_idx(write_idx(tmp_path / "f", floats, gz=True, type_byte=0x0D))
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, floats)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda b: b"\x01\x02" + b[2:], "is not an IDX file: it starts with bytes 01 02 08"),
        (lambda b: b[:2] + b"\x07" + b[3:], "is not an IDX file"),
        (lambda b: b[:3] + b"\x05" + b[4:], "declares 5 dimensions"),
        (lambda b: b[:10], "truncated inside its header"),
        (lambda b: b[:-5], r"truncated: its header declares shape \(4, 3, 2\)"),
        (lambda b: b + b"\x00", "more data than the 24 bytes"),
        (lambda b: b[:4] + struct.pack(">3I", 4, 3, 3) + b[16:], "truncated"),
        (lambda b: b[:4] + struct.pack(">3I", 4, 0, 2) + b[16:], "dimension of size 0"),
        (lambda b: b[:4] + struct.pack(">3I", 70000, 70000, 70000) + b[16:], "more than the limit"),
        (lambda b: b[:2], "too short to be an IDX file"),
    ],
)
def test_idx_errors(tmp_path, mutate, fragment):
    good = idx_bytes(np.zeros((4, 3, 2), np.uint8))
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(mutate(good))
    with pytest.raises(DataError, match=fragment):
        read_idx(path)


def test_idx_damaged_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 5), np.uint8)))[:-12])
    with pytest.raises(DataError, match="gzip-compressed but cannot be decompressed") as err:
        read_idx(path)
    assert err.value.__cause__ is not None


def test_idx_labels_count_must_match(tmp_path):
    path = write_idx(tmp_path / "a-images-idx3-ubyte", np.zeros((6, 2, 2), np.uint8))
    write_idx(tmp_path / "a-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"labels in a-labels-idx1-ubyte have shape \(5,\)"):
        load_idx(path)


def test_raw_dataset_layout_and_missing_files(tmp_path):
    raw = tmp_path / "Toy" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", np.ones((4, 28, 28), np.uint8), gz=True)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", np.ones((2, 28, 28), np.uint8))
    with pytest.raises(
        DataError, match="t10k-labels-idx1-ubyte .* is missing from .*--data-dir.*AECORE_DATA_DIR.*--download"
    ):
        read_raw_dataset(tmp_path, "Toy")
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(3, dtype=np.uint8), gz=True)
    with pytest.raises(DataError, match="2 test images but 3 labels"):
        read_raw_dataset(tmp_path, "Toy")
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(2, dtype=np.uint8), gz=True)
    d = read_raw_dataset(tmp_path, "Toy")
    assert d["train_x"].shape == (4, 28, 28) and d["test_y"].dtype == np.int64


SHARED_DATA = Path(os.environ.get("AECORE_TEST_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.mark.parametrize("folder", ["MNIST", "FashionMNIST"])
def test_shared_raw_datasets(folder):
    if not (SHARED_DATA / folder / "raw").is_dir():
        pytest.skip(
            f"{SHARED_DATA / folder / 'raw'} is absent (set AECORE_TEST_DATA_DIR to a "
            f"folder holding MNIST/raw and FashionMNIST/raw)"
        )
    d = read_raw_dataset(SHARED_DATA, folder)
    assert d["train_x"].shape == (60000, 28, 28) and d["train_x"].dtype == np.uint8
    assert d["test_x"].shape == (10000, 28, 28)
    assert d["train_y"].shape == (60000,) and d["test_y"].shape == (10000,)
    for y in (d["train_y"], d["test_y"]):
        assert y.min() == 0 and y.max() == 9 and len(np.unique(y)) == 10


# ---------------------------------------------------------------- NPZ / NPY


def test_npz_uint8_images_with_labels(tmp_path):
    x = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    y = np.arange(10)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    b = load_npz(tmp_path / "d.npz")
    assert (b.kind, b.sample_shape) == ("image", (1, 4, 4))
    got = split_rows(b)
    np.testing.assert_allclose(got[:, 0, 0, 0] * 255, split_labels(b) * 16, atol=1e-4)
    assert b.info["x_key"] == "images" and b.info["scaling"] == "divided by 255"


def test_npy_float_channels_last(tmp_path):
    x = np.random.default_rng(0).random((6, 5, 4, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", x)
    b = load_npz(tmp_path / "c.npy")
    assert b.sample_shape == (3, 5, 4) and b.info["layout"] == "channels-last"
    assert b.train.labels is None and b.info["scaling"] == "already in [0, 1]"
    assert sorted(split_rows(b)[:, 2, 4, 3]) == pytest.approx(sorted(x[:, 4, 3, 2]))


def test_npz_channels_first_rgba_and_minmax(tmp_path):
    np.savez(tmp_path / "cf.npz", x=np.full((4, 3, 2, 2), 1000.0) * np.arange(4)[:, None, None, None])
    b = load_npz(tmp_path / "cf.npz")
    assert b.sample_shape == (3, 2, 2) and "min-max scaled from [0, 3000]" in b.info["scaling"]
    assert sorted(split_rows(b)[:, 0, 0, 0]) == pytest.approx([0, 1 / 3, 2 / 3, 1])

    rgba = np.zeros((3, 2, 2, 4), np.uint8)
    rgba[..., 3] = [[0, 255], [0, 255]]  # left column transparent black, right opaque black
    np.savez(tmp_path / "rgba.npz", x=rgba)
    b = load_npz(tmp_path / "rgba.npz")
    assert b.sample_shape == (3, 2, 2) and "composited onto white" in b.info["converted"]
    np.testing.assert_array_equal(b.train.x[0, :, 0, 0], [1, 1, 1])
    np.testing.assert_array_equal(b.train.x[0, :, 0, 1], [0, 0, 0])


def test_npz_vectors_keras_split_and_text_labels(tmp_path):
    np.savez(tmp_path / "v.npz", data=np.linspace(-5, 5, 30).reshape(10, 3), y=np.array(list("abcab") * 2))
    b = load_npz(tmp_path / "v.npz")
    assert b.kind == "vector" and b.class_names == ["a", "b", "c"]
    assert split_rows(b).min() == pytest.approx(-5)  # vectors keep their range

    np.savez(
        tmp_path / "mnist.npz",
        x_train=np.zeros((8, 3, 3), np.uint8),
        y_train=np.arange(8),
        x_test=np.ones((2, 3, 3), np.uint8),
        y_test=[8, 9],
    )
    b = load_npz(tmp_path / "mnist.npz")
    assert len(b.test) == 2 and list(b.test.labels) == [8, 9]
    assert (len(b.train), len(b.val)) == (7, 1)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        (
            {"x": np.array([{"a": 1}, None, 3], dtype=object)},
            r"v.npz\[x\] holds an object array, "
            "which is refused because loading",
        ),
        ({"x": np.array([[0.1, np.nan]] * 3)}, "contains NaN or infinite values"),
        ({"x": np.zeros((3, 2, 2, 7))}, r"shape \(3, 2, 2, 7\), but \(N, H, W\)"),
        ({"x": np.zeros(5)}, r"shape \(5,\)"),
        ({"a": np.zeros((3, 2)), "b": np.zeros((3, 2))}, r"holds arrays \['a', 'b'\] and none is"),
        ({"x": np.zeros((3, 2)), "y": np.array([0.5, 1, 2])}, "not all whole numbers"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, 1])}, r"have shape \(2,\), but one label per item"),
    ],
)
def test_npz_errors(tmp_path, arrays, fragment):
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(DataError, match=fragment):
        load_npz(tmp_path / "v.npz")


def test_npy_object_array_and_non_numpy_file(tmp_path):
    np.save(tmp_path / "o.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="o.npy holds an object array") as err:
        load_npz(tmp_path / "o.npy")
    assert isinstance(err.value.__cause__, ValueError)
    (tmp_path / "t.npz").write_text("not numpy")
    with pytest.raises(DataError, match="t.npz is not a NumPy .npy or .npz file"):
        load_npz(tmp_path / "t.npz")


# ---------------------------------------------------------------- image modes


def one_pixel(mode: str, value) -> Image.Image:
    return Image.new(mode, (1, 1), value)


def test_one_bit_and_la():
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    np.testing.assert_array_equal(image_to_array(img), [[0.0, 1.0]])
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))  # fully transparent -> white background
    la.putpixel((1, 0), (100, 255))
    np.testing.assert_allclose(image_to_array(la), [[1.0, 100 / 255]], rtol=1e-6)


def test_palette_with_transparency():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    back = Image.open(io.BytesIO(png_bytes(img)))
    assert back.mode == "P" and "transparency" in back.info
    np.testing.assert_allclose(image_to_array(back, "RGB"), [[[1, 1, 1], [1, 0, 0]]])
    np.testing.assert_allclose(image_to_array(back, "L"), [[1.0, 0.299]], rtol=1e-6)


def test_rgba_half_alpha_and_cmyk_and_ycbcr():
    rgba = one_pixel("RGBA", (0, 0, 0, 128))
    np.testing.assert_allclose(image_to_array(rgba), [[1 - 128 / 255]], rtol=1e-6)
    np.testing.assert_allclose(image_to_array(one_pixel("RGBA", (255, 0, 0, 255)), "RGB"), [[[1, 0, 0]]])
    np.testing.assert_allclose(image_to_array(one_pixel("CMYK", (255, 0, 0, 0)), "RGB"), [[[0, 1, 1]]])
    np.testing.assert_allclose(image_to_array(one_pixel("CMYK", (0, 0, 0, 0))), [[1.0]])
    ycc = one_pixel("RGB", (200, 200, 200)).convert("YCbCr")
    np.testing.assert_allclose(image_to_array(ycc), [[200 / 255]], atol=2 / 255)


def test_sixteen_bit_and_int_and_float_modes():
    img = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert img.mode == "I;16"
    back = Image.open(io.BytesIO(png_bytes(img)))
    np.testing.assert_allclose(image_to_array(back), [[0, 32768 / 65535, 1.0]], rtol=1e-6)
    big_endian = Image.frombytes("I;16B", (2, 1), np.array([1000, 65535], ">u2").tobytes())
    np.testing.assert_allclose(image_to_array(big_endian), [[1000 / 65535, 1.0]], rtol=1e-6)
    ints = Image.fromarray(np.array([[0, 1000]], dtype=np.int32))
    assert ints.mode == "I"
    np.testing.assert_allclose(image_to_array(ints), [[0, 1000 / 65535]], rtol=1e-6)
    floats = Image.fromarray(np.array([[0.25, 0.75]], dtype=np.float32))
    np.testing.assert_allclose(image_to_array(floats), [[0.25, 0.75]])
    wide = Image.fromarray(np.array([[-2.0, 0.0, 2.0]], dtype=np.float32))
    np.testing.assert_allclose(image_to_array(wide, "RGB")[0, :, 0], [0, 0.5, 1])


# ---------------------------------------------------------------- open_image


def test_open_image_from_path_and_bytes(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(gray(7)))
    assert open_image(tmp_path / "a.png").size == (6, 6)
    assert open_image(png_bytes(gray(7), "BMP")).format == "BMP"
    with pytest.raises(DataError, match="image file not found"):
        open_image(tmp_path / "missing.png")


def test_open_image_rejects_empty_text_and_truncated(tmp_path):
    with pytest.raises(DataError, match="upload.png is empty"):
        open_image(b"", name="upload.png")
    (tmp_path / "notes.png").write_text("these are my notes, not an image")
    with pytest.raises(DataError, match="notes.png is not an image that can be read"):
        open_image(tmp_path / "notes.png")
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), np.uint8))
    data = png_bytes(noisy)
    with pytest.raises(DataError, match="cut.png is truncated or damaged") as err:
        open_image(data[: len(data) // 2], name="cut.png")
    assert isinstance(err.value.__cause__, OSError)


def patched_png(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR (with a valid CRC) claims another size."""
    data = bytearray(png_bytes(gray(0, (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bombs_refused_before_decoding():
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DataError, match=r"bomb.png \(10000x10000\) has more than 40,000,000"):
        open_image(patched_png(10000, 10000), name="bomb.png")
    with pytest.raises(DataError, match="decompression bomb"):
        open_image(patched_png(100000, 100000), name="huge.png")  # PIL's own hard limit
    with pytest.raises(DataError, match="more than 10 pixels"):
        open_image(png_bytes(gray(0, (4, 4))), max_pixels=10)
    assert Image.MAX_IMAGE_PIXELS == before


# ---------------------------------------------------------------- folders and ZIPs


def test_folder_with_classes_colour_and_sizes(tmp_path):
    root = tmp_path / "shapes"
    for cls, value in (("circle", 50), ("square", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            gray(value).save(root / cls / f"{i}.png")
    Image.new("RGB", (10, 4), (255, 0, 0)).save(root / "square" / "red.bmp")
    (root / "square" / "notes.txt").write_text("ignored, not an image name")
    (root / ".hidden").mkdir()
    gray(0).save(root / ".hidden" / "x.png")
    b = load_images(root, seed=1)
    assert b.class_names == ["circle", "square"] and all_items(b) == 7
    assert (b.kind, b.sample_shape) == ("image", (3, 6, 6))
    assert b.info["converted"] == "L,RGB->RGB" and b.info["resized_to"] == [6, 6]
    assert b.info["n_resized"] == 1 and b.info["skipped"] == {}
    x, y = split_rows(b), split_labels(b)
    np.testing.assert_allclose(x[y == 0][:, :, 0, 0], 50 / 255, rtol=1e-6)
    reds = x[(x[:, 0, 0, 0] == 1) & (x[:, 1, 0, 0] == 0)]
    assert len(reds) == 1

    b = load_images(root, size=(3, 5))
    assert b.sample_shape == (3, 3, 5) and b.info["n_resized"] == 7


def test_folder_without_classes_gray_and_skips_broken(tmp_path):
    for i in range(4):
        gray(10 * i).save(tmp_path / f"{i}.png")
    Image.new("RGB", (6, 6), (90, 90, 90)).save(tmp_path / "grey-rgb.png")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(png_bytes(gray(1, (30, 30)))[:40])
    b = load_images(tmp_path)
    assert b.class_names is None and b.train.labels is None and all_items(b) == 5
    assert b.sample_shape == (1, 6, 6) and b.info["converted"] == "L,RGB->L"
    assert sorted(b.info["skipped"]) == ["cut.png", "text.png"]
    assert "not an image" in b.info["skipped"]["text.png"]


def test_folder_with_nothing_readable(tmp_path):
    (tmp_path / "a.png").write_text("x")
    with pytest.raises(
        DataError, match="none of the 1 images in .* could be read; the first problem: a.png is not an image"
    ):
        load_images(tmp_path)
    (tmp_path / "a.png").unlink()
    with pytest.raises(DataError, match="contains no PNG, JPEG"):
        load_images(tmp_path)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def test_zip_of_folder_with_classes(tmp_path):
    members = {f"digits/{c}/{i}.png": png_bytes(gray(40 * c + i)) for c in range(3) for i in range(2)}
    members["__MACOSX/digits/0/._0.png"] = b"resource fork"
    members["digits/readme.txt"] = b"hello"
    b = load_images(make_zip(tmp_path / "digits.zip", members))
    assert b.class_names == ["0", "1", "2"] and all_items(b) == 6
    assert b.info["format"] == "zip" and b.info["skipped"] == {}
    x, y = split_rows(b), split_labels(b)
    np.testing.assert_array_equal(np.round(x[:, 0, 0, 0] * 255) // 40, y)
    assert not (tmp_path / "digits").exists()


def test_zip_with_broken_member_skips_it(tmp_path):
    members = {f"{i}.png": png_bytes(gray(i)) for i in range(3)}
    members["bad.jpg"] = b"\xff\xd8\xff garbage"
    b = load_images(make_zip(tmp_path / "a.zip", members))
    assert list(b.info["skipped"]) == ["bad.jpg"] and all_items(b) == 3


def symlink_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.png", png_bytes(gray(1)))
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    "build, fragment",
    [
        (
            lambda p: make_zip(p, {"ok.png": png_bytes(gray(1)), "../evil.png": png_bytes(gray(1))}),
            "member '../evil.png' points outside the archive",
        ),
        (lambda p: make_zip(p, {"/abs/evil.png": png_bytes(gray(1))}), "member '/abs/evil.png' has an absolute path"),
        (symlink_zip, "member 'link.png' is a symbolic link"),
        (
            lambda p: make_zip(p, {"big.png": bytes(4 << 20)}),
            r"member 'big.png' expands [\d,]+ times \(limit 200\), like a zip bomb",
        ),
    ],
)
def test_unsafe_zips_are_refused(tmp_path, build, fragment):
    path = build(tmp_path / "evil.zip")
    with pytest.raises(DataError, match=fragment):
        load_images(path)


def test_zip_size_and_count_caps(tmp_path):
    path = make_zip(tmp_path / "z.zip", {f"{i}.png": png_bytes(gray(i)) for i in range(4)})
    with pytest.raises(DataError, match="expands to more than 100 bytes"):
        load_images(path, max_total_bytes=100)
    with pytest.raises(DataError, match="has 4 members, more than the limit of 3"):
        load_images(path, max_files=3)
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(DataError, match="neither a folder nor a readable .zip"):
        load_images(tmp_path / "fake.zip")


# ---------------------------------------------------------------- dispatch


def test_load_user_dataset_dispatch_and_errors(tmp_path):
    rows, _ = make_pixel_rows(5, 64)
    write_csv(tmp_path / "k.csv", pixel_header(64), rows)
    assert load_user_dataset(f"csv:{tmp_path / 'k.csv'}").kind == "image"
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    assert load_user_dataset(f"npz:{tmp_path / 'a.npy'}", seed=2).kind == "vector"
    write_idx(tmp_path / "v.idx", np.zeros((3, 2), np.uint8), gz=True)
    assert load_user_dataset(f"idx:{tmp_path / 'v.idx'}").sample_shape == (2,)
    make_zip(tmp_path / "i.zip", {f"{i}.png": png_bytes(gray(i)) for i in range(3)})
    assert load_user_dataset(f"images:{tmp_path / 'i.zip'}").sample_shape == (1, 6, 6)
    with pytest.raises(DataError, match="file not found: .*nope.csv"):
        load_user_dataset(f"csv:{tmp_path / 'nope.csv'}")
    with pytest.raises(DataError, match="start it with csv:, idx:, npz: .* or images:"):
        load_user_dataset(f"parquet:{tmp_path / 'k.csv'}")
    with pytest.raises(DataError, match="start it with csv:"):
        load_user_dataset(str(tmp_path / "k.csv"))
