"""The hostile corpus: one file per way a user's file can be wrong, built at test time.

Nothing binary is committed: each case is a few lines that write its file (or
folder) into a temporary directory. A :class:`Case` names the entry points
that accept its file type and the message every one of them must give, so
``tests/test_hostile_inputs.py`` can push every file through every door:

- ``upload``: the bytes, as the dashboard's Reconstruct page gets them
  (``open_image(bytes, name=...)`` then ``prepare_image``), and ``prepare_image(bytes)``;
- ``dataset``: ``load_user_dataset("<prefix>:PATH")``;
- ``folder`` and ``zip``: an image case alone in a folder, or alone in a (stored)
  ZIP, read with ``load_user_dataset("images:PATH")``;
- ``cli``: ``python -m aecore reconstruct`` for images, ``score --dataset`` for data files.

Large files are sparse (``truncate``), so a 1 GB CSV costs no disk and no time.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aecore.data.files import MAX_CSV_BYTES, MAX_NPZ_MEMBERS, MAX_ZIP_BYTES, MAX_ZIP_RATIO
from aecore.data.raw import MAX_UPLOAD_BYTES

PREFIX = {"image": "images", "zip": "images", "folder": "images", "csv": "csv", "idx": "idx", "npz": "npz"}
ALL_IMAGE_ENTRIES = ("upload", "folder", "zip", "cli")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # image, zip, folder, csv, idx or npz
    filename: str
    build: Callable[[Path], object]  # writes the file (or, for kind "folder", the folder) at path
    fragment: str  # regular expression the message must contain, after the file's name
    entries: tuple[str, ...] = ("dataset", "cli")
    named: bool = True  # the message names the file (false where the name is a member's)

    def write(self, root: Path) -> Path:
        folder = root / self.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        self.build(path)
        return path


@dataclass(frozen=True)
class GoodImage:
    """An image in an unusual mode that must be accepted and read as ``expected``."""

    id: str
    filename: str
    build: Callable[[Path], object]
    expected: np.ndarray  # (H, W) gray levels in [0, 1] after conversion
    tol: float  # largest allowed absolute error per pixel (lossy formats need some)

    def write(self, root: Path) -> Path:
        folder = root / self.id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        self.build(path)
        return path


# ---------------------------------------------------------------- byte builders


def writer(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data() if callable(data) else data)


def sparse(size: int) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        with open(p, "wb") as f:
            f.truncate(size)

    return build


def fifo(p: Path) -> None:
    os.mkfifo(p)


def link_to_device(p: Path) -> None:
    os.symlink("/dev/zero", p)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` gray pixels, with no pixel data."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise_image(fmt: str) -> bytes:
    # Noise does not compress, so cutting the file cuts pixel data, not just the header
    return encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)), fmt)


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def bad_crc_png() -> bytes:
    data = bytearray(noise_image("PNG"))
    data[data.index(b"IDAT") + 50] ^= 0xFF
    return bytes(data)


def small_png() -> bytes:
    return encode(Image.fromarray(PATTERN))


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.png", small_png())
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def forged_total_zip(suffix: str) -> bytes:
    """Stored members whose directory claims sizes that each stay under the ratio limit
    but together pass the total limit: only the total cap can catch it."""
    real = 1 << 20
    claimed = (MAX_ZIP_RATIO - 10) * real
    n = MAX_ZIP_BYTES // claimed + 1
    data = bytearray(make_zip({f"m{i}{suffix}": bytes(real) for i in range(n)}, zipfile.ZIP_STORED))
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) >= 0:  # central directory records
        struct.pack_into("<I", data, pos + 24, claimed)  # uncompressed size
        pos += 4
    return bytes(data)


def future_version_zip(suffix: str) -> bytes:
    """A ZIP whose directory says it needs a newer unzip than Python has (version 6.4)."""
    data = bytearray(make_zip({f"x{suffix}": bytes(16)}, zipfile.ZIP_STORED))
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 6, 64)  # "version needed to extract"
    return bytes(data)


def idx_bytes(arr: np.ndarray, dims: tuple[int, ...] | None = None, type_byte: int = 0x08) -> bytes:
    dims = arr.shape if dims is None else dims
    header = bytes([0, 0, type_byte, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npz(compressed: bool = False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def csv_text(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text)


def pixel_csv(rows: list[str], header: str = "label,p1,p2,p3") -> Callable[[Path], None]:
    return csv_text("\n".join([header, *rows]) + "\n")


def idx_with_labels(n_labels: int) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        p.write_bytes(idx_bytes(np.zeros((5, 8, 8), np.uint8)))
        p.with_name("train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(n_labels, np.uint8)))

    return build


def folder_of(files: dict[str, Callable[[Path], object]]) -> Callable[[Path], None]:
    def build(p: Path) -> None:
        p.mkdir()
        for name, make in files.items():
            make(p / name)

    return build


# ---------------------------------------------------------------- the hostile cases

_EMPTY = r"is empty \(0 bytes\)"
_NOT_IMAGE = r"is not an image that can be read"
_DAMAGED = r"is truncated or damaged and could not be decoded"
_UPLOAD_LIMIT = rf"is {MAX_UPLOAD_BYTES + 1:,} bytes, above the limit of 20 MB for one image"
_NOT_REGULAR = r"is not a regular file \(a pipe, device or socket\)"
_PIXELS = r"has more than 40,000,000 pixels, so it was not decoded \(it could be a decompression bomb\)"
_ZIP_ONLY = ("dataset", "cli")

CASES: list[Case] = [
    # --- single images: the upload, the CLI, and alone in a folder or a ZIP
    Case("img-empty", "image", "empty.png", writer(b""), _EMPTY, ALL_IMAGE_ENTRIES),
    Case(
        "img-truncated-png",
        "image",
        "cut.png",
        writer(lambda: cut(noise_image("PNG"), 0.6)),
        _DAMAGED + r" \(image file is truncated\)",
        ALL_IMAGE_ENTRIES,
    ),
    Case(
        "img-truncated-jpeg",
        "image",
        "cut.jpg",
        writer(lambda: cut(noise_image("JPEG"), 0.6)),
        _DAMAGED + r" \(image file is truncated",
        ALL_IMAGE_ENTRIES,
    ),
    Case(
        "img-bad-crc", "image", "crc.png", writer(bad_crc_png), _DAMAGED + r" \(broken data stream", ALL_IMAGE_ENTRIES
    ),
    Case(
        "img-header-only-gif",
        "image",
        "head.gif",
        writer(b"GIF89a" + bytes(range(40))),
        r"starts like a GIF file but its header is damaged or truncated",
        ALL_IMAGE_ENTRIES,
    ),
    Case(
        "img-text-named-png",
        "image",
        "notes.png",
        writer(b"just some text, not pixels\n"),
        _NOT_IMAGE,
        ALL_IMAGE_ENTRIES,
    ),
    Case("img-csv-named-jpg", "image", "table.jpg", writer(b"label,p1\n1,2\n"), _NOT_IMAGE, ALL_IMAGE_ENTRIES),
    Case(
        "img-zip-named-png",
        "image",
        "archive.png",
        writer(lambda: make_zip({"a.txt": b"hello"})),
        _NOT_IMAGE,
        ALL_IMAGE_ENTRIES,
    ),
    Case("img-bomb-huge", "image", "bomb.png", writer(png_header_only(50_000, 50_000)), _PIXELS, ALL_IMAGE_ENTRIES),
    Case(
        "img-bomb-over-limit",
        "image",
        "big.png",
        writer(png_header_only(8000, 6000)),
        r"\(8000x6000\) " + _PIXELS,
        ALL_IMAGE_ENTRIES,
    ),
    Case("img-over-upload-limit", "image", "huge.png", sparse(MAX_UPLOAD_BYTES + 1), _UPLOAD_LIMIT, ALL_IMAGE_ENTRIES),
    # a pipe or /dev/zero would never finish reading; only paths can be one
    Case("img-fifo", "image", "pipe.png", fifo, _NOT_REGULAR, ("folder", "cli")),
    Case("img-link-to-dev-zero", "image", "zero.png", link_to_device, _NOT_REGULAR, ("folder", "cli")),
    # --- image ZIPs
    Case(
        "zip-empty",
        "zip",
        "empty.zip",
        writer(b""),
        r"is neither a folder nor a readable \.zip archive of images",
        _ZIP_ONLY,
    ),
    Case(
        "zip-not-a-zip",
        "zip",
        "photos.zip",
        writer(b"this is a text file\n"),
        r"is neither a folder nor a readable \.zip archive of images",
        _ZIP_ONLY,
    ),
    Case(
        "zip-ratio-bomb",
        "zip",
        "ratio.zip",
        writer(lambda: make_zip({"big.png": bytes(4 << 20)})),
        rf"was refused because member 'big.png' expands [\d,]+ times \(limit {MAX_ZIP_RATIO}\), "
        "like a zip bomb",
        _ZIP_ONLY,
    ),
    Case(
        "zip-total-bomb",
        "zip",
        "total.zip",
        writer(lambda: forged_total_zip(".png")),
        r"was refused because it expands to more than 1 GB",
        _ZIP_ONLY,
    ),
    Case(
        "zip-absolute-path",
        "zip",
        "abs.zip",
        writer(lambda: make_zip({"/etc/evil.png": small_png()})),
        r"was refused because member '/etc/evil.png' has an absolute path",
        _ZIP_ONLY,
    ),
    Case(
        "zip-drive-path",
        "zip",
        "drive.zip",
        writer(lambda: make_zip({"C:/evil.png": small_png()})),
        r"was refused because member 'C:/evil.png' has an absolute path",
        _ZIP_ONLY,
    ),
    Case(
        "zip-dotdot",
        "zip",
        "dots.zip",
        writer(lambda: make_zip({"ok.png": small_png(), "a/../../evil.png": small_png()})),
        r"was refused because member 'a/../../evil.png' points outside the archive with '\.\.'",
        _ZIP_ONLY,
    ),
    Case(
        "zip-symlink",
        "zip",
        "link.zip",
        writer(symlink_zip),
        r"was refused because member 'link.png' is a symbolic link",
        _ZIP_ONLY,
    ),
    Case(
        "zip-future-version",
        "zip",
        "new.zip",
        writer(lambda: future_version_zip(".png")),
        r"is neither a folder nor a readable \.zip archive of images",
        _ZIP_ONLY,
    ),
    Case(
        "zip-no-images",
        "zip",
        "docs.zip",
        writer(lambda: make_zip({"readme.txt": b"hi"})),
        r"contains no PNG, JPEG, BMP, GIF or WebP images",
        _ZIP_ONLY,
    ),
    Case("zip-fifo", "zip", "pipe.zip", fifo, _NOT_REGULAR, _ZIP_ONLY),
    # --- image folders
    Case(
        "folder-empty",
        "folder",
        "nothing",
        folder_of({"notes.txt": writer(b"hi")}),
        r"contains no PNG, JPEG, BMP, GIF or WebP images",
        _ZIP_ONLY,
    ),
    Case(
        "folder-total-too-big",
        "folder",
        "heavy",
        # each file at the one-image limit, together past the total limit
        folder_of({f"{i}.png": sparse(MAX_UPLOAD_BYTES) for i in range(MAX_ZIP_BYTES // MAX_UPLOAD_BYTES + 1)}),
        r"was refused because its images total more than 1 GB",
        _ZIP_ONLY,
    ),
    # --- CSV
    Case("csv-empty", "csv", "empty.csv", writer(b""), r"is empty; a CSV needs a header row"),
    Case("csv-header-only", "csv", "head.csv", csv_text("label,p1,p2\n"), r"has a header but no data rows"),
    Case(
        "csv-no-header",
        "csv",
        "nohead.csv",
        csv_text("1,2,3\n4,5,6\n"),
        r"has no header row \(its first line is numbers\)",
    ),
    Case(
        "csv-wrong-columns",
        "csv",
        "cols.csv",
        pixel_csv(["1,2,3,4", "1,2,3", "1,2,3,4"]),
        r" line 3 has 3 values but the header has 4 columns",
    ),
    Case(
        "csv-non-numeric",
        "csv",
        "text.csv",
        pixel_csv(["1,2,abc,4", "1,2,3,4", "1,2,3,4"]),
        r" line 2, column 3 holds 'abc', which is not a number",
    ),
    Case(
        "csv-empty-cell", "csv", "hole.csv", pixel_csv(["1,2,3,4", "1,,3,4", "1,2,3,4"]), r" line 3, column 2 is empty"
    ),
    Case(
        "csv-nan",
        "csv",
        "nan.csv",
        pixel_csv(["1,2,3,4", "1,2,3,4", "1,nan,3,4"]),
        r" line 4, column 2 \('p1'\) is NaN; every cell needs a number",
    ),
    Case(
        "csv-above-255",
        "csv",
        "bright.csv",
        pixel_csv(["1,2,3,4", "1,2,300,4", "1,2,3,4"]),
        r" line 3, column 'p2' holds 300, outside the pixel range 0 to 255",
    ),
    Case(
        "csv-negative",
        "csv",
        "neg.csv",
        pixel_csv(["1,-5,3,4", "1,2,3,4", "1,2,3,4"]),
        r" line 2, column 'p1' holds -5, outside the pixel range 0 to 255",
    ),
    Case(
        "csv-infinite",
        "csv",
        "inf.csv",
        pixel_csv(["1,2,3,4", "1,2,3,inf", "1,2,3,4"]),
        r" line 3, column 'p3' holds inf, outside the pixel range 0 to 255",
    ),
    Case(
        "csv-fractional-label",
        "csv",
        "label.csv",
        pixel_csv(["1,2,3,4", "1.5,2,3,4", "1,2,3,4"]),
        r" line 3 has label 1.5, but labels must be whole numbers",
    ),
    Case(
        "csv-infinite-label",
        "csv",
        "inflabel.csv",
        pixel_csv(["1,2,3,4", "1,2,3,4", "inf,2,3,4"]),
        r" line 4 has label inf, but labels must be whole numbers below 2,147,483,648 in size",
    ),
    Case(
        "csv-two-label-columns",
        "csv",
        "labels.csv",
        pixel_csv(["1,2,3", "1,2,3", "1,2,3"], "label,p1,label"),
        r" has 2 columns named 'label'; keep only one",
    ),
    Case(
        "csv-too-few-rows",
        "csv",
        "two.csv",
        pixel_csv(["1,2,3,4", "1,2,3,4"]),
        r" holds 2 item\(s\), but at least 3 are needed",
    ),
    Case("csv-binary-named-csv", "csv", "photo.csv", writer(small_png), r" is not a UTF-8 text CSV file"),
    Case(
        "csv-over-size-limit",
        "csv",
        "huge.csv",
        sparse(MAX_CSV_BYTES + 1),
        rf" is {MAX_CSV_BYTES + 1:,} bytes, above the limit of 1 GB for a CSV file",
    ),
    Case("csv-fifo", "csv", "pipe.csv", fifo, _NOT_REGULAR),
    # --- IDX
    Case("idx-empty", "idx", "empty.idx", writer(b""), r" is too short to be an IDX file \(0 bytes\)"),
    Case(
        "idx-wrong-magic",
        "idx",
        "photo-idx3-ubyte",
        writer(small_png),
        r" is not an IDX file: it starts with bytes 89 50 4e",
    ),
    Case(
        "idx-bad-type-byte",
        "idx",
        "type.idx",
        writer(b"\x00\x00\x07\x01\x00\x00\x00\x03abc"),
        r" is not an IDX file: it starts with bytes 00 00 07",
    ),
    Case(
        "idx-too-many-dims",
        "idx",
        "dims.idx",
        writer(b"\x00\x00\x08\x09" + bytes(36)),
        r" declares 9 dimensions, but only IDX files with 1 to 4",
    ),
    Case(
        "idx-truncated-header",
        "idx",
        "head.idx",
        writer(b"\x00\x00\x08\x03\x00\x00\x00\x05"),
        r" is truncated inside its header",
    ),
    Case(
        "idx-truncated-data",
        "idx",
        "cut.idx",
        writer(lambda: cut(idx_bytes(np.zeros((10, 8, 8), np.uint8)), 0.5)),
        r" is truncated: its header declares shape \(10, 8, 8\) \(640 bytes of unsigned byte data\)",
    ),
    Case(
        "idx-more-data-than-declared",
        "idx",
        "extra.idx",
        writer(lambda: idx_bytes(np.zeros((10, 8, 8), np.uint8)) + b"\x00" * 64),
        r" has more data than the 640 bytes its header declares",
    ),
    Case(
        "idx-absurd-dims",
        "idx",
        "forged.idx",
        writer(lambda: idx_bytes(np.zeros(0, np.uint8), dims=(60_000, 60_000, 60_000))),
        r" declares shape \(60000, 60000, 60000\), 216,000,000,000,000 values, more than the "
        r"limit of 500,000,000",
    ),
    Case(
        "idx-zero-dim",
        "idx",
        "zero.idx",
        writer(lambda: idx_bytes(np.zeros(0, np.uint8), dims=(0, 8))),
        r" declares a dimension of size 0",
    ),
    Case(
        "idx-damaged-gzip",
        "idx",
        "data.idx.gz",
        writer(b"\x1f\x8b\x08\x00" + bytes(range(60))),
        r" is gzip-compressed but cannot be decompressed",
    ),
    Case(
        "idx-nan",
        "idx",
        "nan.idx",
        writer(lambda: idx_bytes(np.array([[0.5, np.nan]] * 4, np.float32), type_byte=0x0D)),
        r" contains NaN or infinite values",
    ),
    Case(
        "idx-labels-disagree",
        "idx",
        "train-images-idx3-ubyte",
        idx_with_labels(4),
        r"have shape \(4,\), but one label per item \(5\) was expected",
        named=False,
    ),
    Case("idx-fifo", "idx", "pipe.idx", fifo, _NOT_REGULAR),
    # --- NPY / NPZ
    Case("npz-empty", "npz", "empty.npz", writer(b""), r" is empty \(0 bytes\)"),
    Case("npz-not-numpy", "npz", "table.npz", writer(b"label,p1\n1,2\n"), r" is not a NumPy \.npy or \.npz file"),
    Case(
        "npy-object-array",
        "npz",
        "objects.npy",
        writer(lambda: npy(np.array([{"a": 1}, None, 3], dtype=object), allow_pickle=True)),
        r" holds an object array, which is refused because loading it could run code",
    ),
    Case(
        "npz-object-array",
        "npz",
        "objects.npz",
        writer(lambda: npz(x=np.array([[1, "a"], [None, 2]], dtype=object))),
        r"\[x\] holds an object array, which is refused because loading it could run code",
    ),
    Case(
        "npy-forged-shape",
        "npz",
        "forged.npy",
        writer(lambda: npy_header((1_000_000, 1_000_000), "<f8") + bytes(64)),
        r" declares shape \(1000000, 1000000\), 1,000,000,000,000 values, more than the limit "
        r"of 500,000,000",
    ),
    Case(
        "npz-forged-shape",
        "npz",
        "forged.npz",
        writer(lambda: make_zip({"x.npy": npy_header((1_000_000, 1_000_000), "<f8") + bytes(64)})),
        r"\[x\] declares shape \(1000000, 1000000\), 1,000,000,000,000 values",
    ),
    Case(
        "npy-truncated",
        "npz",
        "cut.npy",
        writer(lambda: npy_header((100, 8, 8)) + bytes(10)),
        r" is truncated: its header declares shape \(100, 8, 8\) \(6,400 bytes of uint8\) but only "
        r"10 bytes follow",
    ),
    Case(
        "npz-member-truncated",
        "npz",
        "cut.npz",
        writer(lambda: make_zip({"x.npy": npy_header((100, 8, 8)) + bytes(10)})),
        r"\[x\] is truncated: its header declares shape \(100, 8, 8\)",
    ),
    Case(
        "npy-damaged-header",
        "npz",
        "head.npy",
        writer(b"\x93NUMPY\x01\x00\x20\x00{not a dict}"),
        r" has a damaged \.npy header",
    ),
    Case(
        "npz-ratio-bomb",
        "npz",
        "ratio.npz",
        writer(lambda: npz(compressed=True, x=np.zeros((4, 1024, 1024), np.uint8))),
        rf"was refused because member 'x.npy' expands [\d,]+ times \(limit {MAX_ZIP_RATIO}\)",
    ),
    Case(
        "npz-total-bomb",
        "npz",
        "total.npz",
        writer(lambda: forged_total_zip(".npy")),
        r"was refused because it expands to more than 1 GB",
    ),
    Case(
        "npz-too-many-members",
        "npz",
        "many.npz",
        writer(lambda: make_zip({f"a{i}.npy": b"" for i in range(MAX_NPZ_MEMBERS + 1)}, zipfile.ZIP_STORED)),
        rf" has {MAX_NPZ_MEMBERS + 1:,} members, more than the limit of {MAX_NPZ_MEMBERS:,}",
    ),
    Case(
        "npz-member-not-npy",
        "npz",
        "images.npz",
        writer(lambda: make_zip({"a.png": small_png()})),
        r" holds member 'a.png', which is not a NumPy \.npy array",
    ),
    Case(
        "npz-future-version",
        "npz",
        "new.npz",
        writer(lambda: future_version_zip(".npy")),
        r" is damaged and could not be read as NumPy data \(zip file version 6.4\)",
    ),
    Case(
        "npz-damaged-zip",
        "npz",
        "broken.npz",
        writer(b"PK\x03\x04" + bytes(range(100))),
        r" is damaged and could not be read as NumPy data",
    ),
    Case(
        "npz-nan",
        "npz",
        "nan.npz",
        writer(lambda: npz(x=np.array([[0.5, np.nan]] * 4))),
        r"\[x\] contains NaN or infinite values",
    ),
    Case(
        "npz-beyond-float32",
        "npz",
        "huge-values.npz",
        writer(lambda: npz(x=np.array([[1e300, 1.0]] * 4))),
        r"\[x\] holds values as large as 1e\+300, beyond what float32 \(used for training\) can hold",
    ),
    Case(
        "npz-strings",
        "npz",
        "words.npz",
        writer(lambda: npz(x=np.array([["a", "b"]] * 4))),
        r"\[x\] holds <U1 values, but numbers",
    ),
    Case(
        "npz-five-dims",
        "npz",
        "five.npz",
        writer(lambda: npz(x=np.zeros((3, 2, 2, 2, 2)))),
        r"\[x\] holds an array of shape \(3, 2, 2, 2, 2\)",
    ),
    Case(
        "npz-labels-disagree",
        "npz",
        "labels.npz",
        writer(lambda: npz(x=np.zeros((5, 3)), y=np.arange(4))),
        r"\[y\] have shape \(4,\), but one label per item \(5\)",
    ),
    Case(
        "npz-huge-labels",
        "npz",
        "biglabels.npz",
        writer(lambda: npz(x=np.zeros((4, 3)), y=np.array([0, 1, 1e30, 2]))),
        r"\[y\] are not all whole numbers below 2,147,483,648 in size",
    ),
    Case("npz-fifo", "npz", "pipe.npz", fifo, _NOT_REGULAR),
]


# ---------------------------------------------------------------- images that must be accepted

H, W = 10, 12  # not square, so a rotation shows
_y, _x = np.mgrid[0:H, 0:W]
PATTERN = np.clip(18 * _x + 6 * _y, 0, 255).astype(np.uint8)  # (H, W) smooth ramp, no two corners alike
_P = PATTERN / 255.0


def _gray_palette_image() -> Image.Image:
    img = Image.fromarray(PATTERN).convert("P")  # then replace the palette by a gray ramp:
    img.putdata(PATTERN.ravel().tolist())  # pixel value = palette index
    img.putpalette([v for i in range(256) for v in (i, i, i)])
    return img


def _palette_transparent() -> bytes:
    img = _gray_palette_image()
    return encode(img, transparency=0)  # index 0 (pixel (0, 0) only) is see-through


def _alpha() -> np.ndarray:
    a = np.full((H, W), 255, np.uint8)
    a[:3, :4] = 0  # transparent: white
    a[-3:, -4:] = 128  # half: half-way to white
    return a


def _over_white(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha / 255.0
    return gray * a + (1 - a)


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": stored turned the other way
    return encode(Image.fromarray(PATTERN).transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)


_T = _P.copy()
_T[0, 0] = 1.0
_BITS = PATTERN > 128

GOOD_IMAGES: list[GoodImage] = [
    GoodImage(
        "good-16-bit", "deep.png", writer(lambda: encode(Image.fromarray(PATTERN.astype(np.uint16) * 257))), _P, 1e-6
    ),
    GoodImage("good-palette", "palette.png", writer(lambda: encode(_gray_palette_image())), _P, 1e-6),
    GoodImage("good-palette-transparent", "clear.png", writer(_palette_transparent), _T, 1e-6),
    GoodImage(
        "good-cmyk",
        "print.jpg",
        writer(lambda: encode(Image.fromarray(PATTERN).convert("CMYK"), "JPEG", quality=95)),
        _P,
        0.06,
    ),
    GoodImage(
        "good-gray-alpha",
        "la.png",
        writer(lambda: encode(Image.merge("LA", [Image.fromarray(PATTERN), Image.fromarray(_alpha())]))),
        _over_white(_P, _alpha()),
        1 / 255 + 1e-6,
    ),
    GoodImage(
        "good-rgba",
        "rgba.png",
        writer(lambda: encode(Image.merge("RGBA", [Image.fromarray(PATTERN)] * 3 + [Image.fromarray(_alpha())]))),
        _over_white(_P, _alpha()),
        1 / 255 + 1e-6,
    ),
    GoodImage("good-1-bit", "bits.png", writer(lambda: encode(Image.fromarray(_BITS))), _BITS.astype(float), 1e-6),
    GoodImage("good-exif-rotated", "photo.jpg", writer(_exif_rotated_jpeg), _P, 0.06),
    GoodImage("good-png-named-jpg", "really-a-png.jpg", writer(small_png), _P, 1e-6),
]


def write_corpus(root: Path) -> dict[str, Path]:
    """Write every hostile case and every good image under ``root``; id -> path."""
    return {c.id: c.write(root) for c in [*CASES, *GOOD_IMAGES]}


def wrap_image(case: Case, path: Path, how: str) -> Path:
    """The image case's file alone in a folder ("folder") or a stored ZIP ("zip")."""
    if how == "folder":
        return path.parent  # each case has its own folder, holding only its file
    dest = path.parent.parent / f"{case.id}-wrapped.zip"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:  # stored: the member's own size counts
        zf.write(path, path.name)
    return dest
