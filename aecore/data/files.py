"""The user's own files as datasets: Kaggle-style CSV, IDX, NPZ/NPY, image folders and ZIPs.

Every loader returns a :class:`DataBundle` whose train/validation/test splits
depend only on ``seed``, and whose ``info`` says where the data came from and
how it was converted. Anything wrong with a file is a one-sentence
:class:`DataError` that names the file.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import re
import stat
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from aecore.data.base import DataBundle, Split, split_train_val
from aecore.data.raw import format_bytes, image_to_array, open_image, read_idx
from aecore.errors import DataError

TEST_FRACTION = 0.1
VAL_FRACTION = 0.1
# Smaller squares (9, 16, 25 columns) are far more likely tabular features than images
MIN_IMAGE_SIDE = 8
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# Uncompressed total of a ZIP or .npz, and total size of an image folder
MAX_ZIP_BYTES = 1 << 30
MAX_ZIP_RATIO = 200
# Ten times MNIST's 110 MB train CSV; the parsed table takes about twice the text's size
MAX_CSV_BYTES = 1 << 30
# An .npz is one array or a few (x/y, Keras' four); thousands would only be an attack
MAX_NPZ_MEMBERS = 1000
# Tiny members legitimately compress far beyond any ratio; only big ones can bomb
MIN_RATIO_CHECK_BYTES = 1 << 20
MAX_FILES = 100_000
# Images are held at 8 bits per channel while reading, then as float32 for training
MAX_DECODED_BYTES = 2 << 30
MAX_OUTPUT_VALUES = 500_000_000
CSV_CHUNK_LINES = 4096

X_KEYS = ("x", "X", "images", "data")
Y_KEYS = ("y", "labels", "targets")
_NPY_MAGIC = b"\x93NUMPY"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Class ids: far beyond any class count, and exact in every numeric type
MAX_LABEL = 2**31
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# What zipfile raises on a damaged archive: RuntimeError for encryption, NotImplementedError
# for an unknown version or compression, ValueError (UnicodeDecodeError) for a bad UTF-8 name
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, NotImplementedError)
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


# ---------------------------------------------------------------- shared helpers


def _existing(path: str | Path, what: str) -> Path:
    """``path`` as a Path, refusing a missing path or a folder where a file is needed."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"file not found: {path}.")
    if not path.name:  # "." or "/" have no name to show in messages
        path = path.resolve()
    if what != "folder" and path.is_dir():
        raise DataError(f"{path.name} is a folder, but a {what} file was expected.")
    if not (path.is_file() or (what == "folder" and path.is_dir())):
        # A FIFO or a device such as /dev/zero would block or never end
        raise DataError(f"{path.name} is not a regular file (a pipe, device or socket), so it was not read.")
    return path


def _default_name(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return Path(name).stem or name


def _bundle(
    x: np.ndarray,
    labels: np.ndarray | None,
    *,
    source: Path,
    name: str | None,
    kind: str,
    seed: int,
    info: dict,
    class_names: list[str] | None = None,
    test: Split | None = None,
) -> DataBundle:
    """Split into train/val/test (holding out a test set when there is none) and wrap."""
    n = len(x)
    if test is None:
        if n < 3:
            raise DataError(
                f"{source.name} holds {n} item(s), but at least 3 are needed to "
                f"make training, validation and test splits."
            )
        n_test = max(1, int(round(n * TEST_FRACTION)))
        order = np.random.default_rng(seed).permutation(n)
        test_idx, rest_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        test = _take(x, labels, test_idx)
    elif n < 2:
        raise DataError(
            f"{source.name} holds {n} training item(s), but at least 2 are needed "
            f"to make training and validation splits."
        )
    else:
        rest_idx = np.arange(n)
    # Splitting indices rather than x copies each item once, which matters at 60k images
    train_i, val_i = split_train_val(rest_idx, None, VAL_FRACTION, seed)
    train, val = _take(x, labels, train_i.x), _take(x, labels, val_i.x)
    return DataBundle(
        name or _default_name(source), kind, train, val, test, class_names, {"source": str(source), **info}
    )


def _take(x: np.ndarray, labels: np.ndarray | None, idx: np.ndarray) -> Split:
    return Split(x[idx], None if labels is None else labels[idx])


def _scale_to_unit(a: np.ndarray) -> tuple[np.ndarray, str]:
    """float32 copy of image values in [0, 1], and how they got there."""
    x = a.astype(np.float32, order="C")  # C order even from a channels-last view
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return x, "already in [0, 1]"
    if a.dtype.kind in "biu" and lo >= 0 and hi <= 255:
        x /= 255
        return x, "divided by 255"
    if hi == lo:
        return np.clip(x, 0, 1), f"constant {lo:g} clipped to [0, 1]"
    shift, span = lo, hi - lo  # Python floats: the span cannot overflow
    if span > _FLOAT32_MAX:  # x - lo would overflow float32 (values near +-3.4e38): work on halves
        x *= 0.5
        shift, span = shift * 0.5, span * 0.5
    x -= shift
    x /= span
    np.clip(x, 0, 1, out=x)  # rounding may step a hair outside
    return x, f"min-max scaled from [{lo:g}, {hi:g}]"


def _array_to_x(a: np.ndarray, fname: str) -> tuple[np.ndarray, str, dict]:
    """Images (N,H,W), (N,H,W,C) or (N,C,H,W), or vectors (N,D), as float32 x, kind, info."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{fname} holds {a.dtype} values, but numbers (uint8 pixels or floats) were expected.")
    if a.size == 0:
        raise DataError(f"{fname} holds an empty array of shape {a.shape}.")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"{fname} contains NaN or infinite values; replace them before loading.")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4 and np.abs(a).max() > _FLOAT32_MAX:
        raise DataError(
            f"{fname} holds values as large as {float(np.abs(a).max()):.3g}, beyond "
            f"what float32 (used for training) can hold (about 3.4e38); rescale them."
        )
    if a.ndim == 2:
        if a.dtype == np.uint8:
            x, scaling = _scale_to_unit(a)
        else:  # vectors may have any range; only byte data is known to be pixels
            x, scaling = a.astype(np.float32), "unchanged"
        return x, "vector", {"shape": list(a.shape), "scaling": scaling}
    info: dict = {"shape": list(a.shape)}
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)
        info["layout"] = "channels-last"
    elif not (a.ndim == 4 and a.shape[1] in (1, 3)):
        raise DataError(
            f"{fname} holds an array of shape {a.shape}, but (N, H, W), (N, H, W, C) "
            f"or (N, C, H, W) images with C of 1 or 3 (4 channels-last), or (N, D) "
            f"vectors were expected."
        )
    x, info["scaling"] = _scale_to_unit(a)
    if x.shape[1] == 4:
        alpha = x[:, 3:]
        x = np.ascontiguousarray(x[:, :3] * alpha + (1 - alpha))
        info["converted"] = "RGBA->RGB (alpha composited onto white)"
    return x, "image", info


def _bad_labels(y: np.ndarray) -> np.ndarray:
    """Which labels cannot be class ids: not finite, not whole, or too large for int64 math."""
    f = y.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf inside round's comparison
        return ~np.isfinite(f) | (f != np.round(f)) | (np.abs(f) >= MAX_LABEL)


def _labels(y: np.ndarray, n: int, fname: str) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 (N,); text labels become indices into sorted class names."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"the labels in {fname} have shape {y.shape}, but one label per item ({n:,}) was expected.")
    if y.dtype.kind in "US":
        names, index = np.unique(y, return_inverse=True)
        return index.astype(np.int64), [str(s) for s in names]
    if y.dtype.kind in "biuf" and _bad_labels(y).any():
        raise DataError(
            f"the labels in {fname} are not all whole numbers below "
            f"{MAX_LABEL:,} in size; labels must be integer class ids."
        )
    if y.dtype.kind not in "biuf":
        raise DataError(f"the labels in {fname} have type {y.dtype}, but integers were expected.")
    return y.astype(np.int64), None


# ---------------------------------------------------------------- CSV


def load_csv(path: str | Path, seed: int = 0, name: str | None = None, *, max_bytes: int = MAX_CSV_BYTES) -> DataBundle:
    """A Kaggle-style CSV: header ``label,pixel1,...`` (the label column is optional)."""
    path = _existing(path, "CSV")
    fname = path.name
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"{fname} is {size:,} bytes, above the limit of {format_bytes(max_bytes)} "
            f"for a CSV file; use fewer rows, or save the data as .npz or IDX."
        )
    header = _csv_header(path)
    label_cols = [i for i, h in enumerate(header) if h.strip().lower() == "label"]
    if len(label_cols) > 1:
        raise DataError(f"{fname} has {len(label_cols)} columns named 'label'; keep only one.")
    table = _csv_table(path, len(header))
    if len(table) == 0:
        raise DataError(f"{fname} has a header but no data rows.")
    if table.dtype.kind == "f" and np.isnan(table).any():
        r, c = np.argwhere(np.isnan(table))[0]
        raise DataError(
            f"{fname} line {_csv_line(path, r)}, column {c + 1} ('{header[c]}') is NaN; every cell needs a number."
        )

    labels = None
    pixels = table
    if label_cols:
        c = label_cols[0]
        raw = table[:, c]
        bad = np.flatnonzero(_bad_labels(raw))
        if len(bad):
            raise DataError(
                f"{fname} line {_csv_line(path, bad[0])} has label {raw[bad[0]]:g}, "
                f"but labels must be whole numbers below {MAX_LABEL:,} in size."
            )
        labels = raw.astype(np.int64)
        # A view, not a 200 MB copy, in the usual label-first layout
        pixels = table[:, 1:] if c == 0 else np.delete(table, c, axis=1)
        header = header[:c] + header[c + 1 :]
    if pixels.shape[1] == 0:
        raise DataError(f"{fname} has a label column but no pixel columns.")
    lo, hi = pixels.min(), pixels.max()
    if lo < 0 or hi > 255:
        r, c = np.argwhere((pixels < 0) | (pixels > 255))[0]
        raise DataError(
            f"{fname} line {_csv_line(path, r)}, column '{header[c]}' holds "
            f"{pixels[r, c]:g}, outside the pixel range 0 to 255."
        )
    already_scaled = hi <= 1
    pixels = np.divide(pixels, 1 if already_scaled else 255, dtype=np.float32)
    info = {"format": "csv", "scaling": "already in [0, 1]" if already_scaled else "divided by 255"}

    n, d = pixels.shape
    side = int(round(d**0.5))
    if side * side == d and side >= MIN_IMAGE_SIDE:
        x, kind = pixels.reshape(n, 1, side, side), "image"
    else:
        x, kind = pixels, "vector"
    info["shape"] = list(x.shape[1:])
    return _bundle(x, labels, source=path, name=name, kind=kind, seed=seed, info=info)


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path.name} is not a UTF-8 text CSV file ({e}).") from e
    except OSError as e:
        raise DataError(f"{path.name} could not be read ({e.strerror or e}).") from e
    if not any(cell.strip() for cell in header):
        raise DataError(
            f"{path.name} is empty; a CSV needs a header row such as "
            f"label,pixel1,...,pixel784 and then one row per image."
        )
    if all(_is_number(cell) for cell in header):
        raise DataError(
            f"{path.name} has no header row (its first line is numbers); add one "
            f"such as label,pixel1,...,pixel784 so the label column can be found."
        )
    return header


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv_table(path: Path, ncols: int) -> np.ndarray:
    """All data rows as int32 or float32 (N, ncols)."""
    chunks = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            next(f)
            line_no = 2
            # Chunks keep memory flat and let a bad row be found without re-reading the file
            while lines := list(itertools.islice(f, CSV_CHUNK_LINES)):
                chunks.append(_parse_csv_chunk(lines, line_no, ncols, path.name))
                line_no += len(lines)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path.name} is not a UTF-8 text CSV file ({e}).") from e
    if not chunks:
        return np.empty((0, ncols), np.int32)
    dtype = np.float32 if any(c.dtype.kind == "f" for c in chunks) else np.int32
    return np.concatenate(chunks, dtype=dtype)


def _parse_csv_chunk(lines: list[str], first_line: int, ncols: int, fname: str) -> np.ndarray:
    # numpy's C parser reads integers about five times faster than floats (a 60k x 785
    # CSV in 1.5 s); the csv-module scan is the slow, exact fallback that names the bad cell
    for dtype in (np.int32, np.float32):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(lines, delimiter=",", dtype=dtype, comments=None, ndmin=2)
        except (ValueError, OverflowError):
            continue
        if len(table) == 0:
            return np.empty((0, ncols), dtype)
        if table.shape[1] == ncols:
            return table
        break
    return _scan_csv_chunk(lines, first_line, ncols, fname)


def _scan_csv_chunk(lines: list[str], first_line: int, ncols: int, fname: str) -> np.ndarray:
    """Parse with the csv module (which handles quoting), or report the first bad cell."""
    rows = []
    reader = csv.reader(lines)
    for row in reader:
        line_no = first_line + reader.line_num - 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != ncols:
            raise DataError(f"{fname} line {line_no} has {len(row)} values but the header has {ncols} columns.")
        try:
            rows.append([float(cell) for cell in row])
        except ValueError:
            c = next(i for i, cell in enumerate(row) if not _is_number(cell))
            what = "is empty" if not row[c].strip() else f"holds '{row[c][:40]}', which is not a number"
            raise DataError(f"{fname} line {line_no}, column {c + 1} {what}.") from None
    return np.array(rows, dtype=np.float32).reshape(len(rows), ncols)


def _csv_line(path: Path, row: int) -> int:
    """File line number of data row ``row`` (0-based), skipping blank lines as the parser does."""
    with open(path, encoding="utf-8-sig") as f:
        next(f)
        seen = -1
        for line_no, line in enumerate(f, start=2):
            seen += bool(line.strip())
            if seen == row:
                return line_no
    return row + 2


# ---------------------------------------------------------------- IDX


def load_idx(path: str | Path, seed: int = 0, name: str | None = None) -> DataBundle:
    """An IDX file of images (N,H,W[,C]) or vectors (N,D); labels from a sibling file.

    The sibling's name replaces ``images`` by ``labels`` and ``idx3`` by ``idx1``,
    as in ``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte``."""
    path = _existing(path, "IDX")
    x, kind, info = _array_to_x(read_idx(path), path.name)
    labels = None
    labels_path = _sibling_labels(path)
    if labels_path is not None:
        labels, _ = _labels(read_idx(labels_path), len(x), labels_path.name)
        info["labels_source"] = str(labels_path)
    return _bundle(x, labels, source=path, name=name, kind=kind, seed=seed, info={"format": "idx", **info})


def _sibling_labels(path: Path) -> Path | None:
    stem = path.name.replace("images", "labels").replace("idx3", "idx1")
    if stem == path.name:
        return None
    bare = stem[:-3] if stem.endswith(".gz") else stem
    for candidate in (path.with_name(stem), path.with_name(bare), path.with_name(bare + ".gz")):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------- NPZ / NPY


def load_npz(
    path: str | Path, seed: int = 0, name: str | None = None, *, max_total_bytes: int = MAX_ZIP_BYTES
) -> DataBundle:
    """A ``.npy`` array or an ``.npz`` archive, never unpickling anything.

    In an ``.npz`` the data is under x, X, images or data (or is the only
    non-label array) and the labels under y, labels or targets; Keras-style
    x_train/y_train/x_test/y_test keep their own test split. Every header is
    checked before anything is allocated: object arrays, shapes larger than the
    data that follows, and archives that would expand like a zip bomb are refused."""
    path = _existing(path, "NumPy")
    fname = path.name
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{fname} could not be read ({e.strerror or e}).") from e
    if not magic:
        raise DataError(f"{fname} is empty (0 bytes).")
    if magic != _NPY_MAGIC and magic[:4] not in _ZIP_MAGICS:
        raise DataError(f"{fname} is not a NumPy .npy or .npz file (its first bytes are wrong).")
    if magic == _NPY_MAGIC:
        with open(path, "rb") as f:
            _check_npy_header(f, path.stat().st_size, fname)
    else:
        _check_npz(path, max_total_bytes)
    try:
        loaded = np.load(path, allow_pickle=False)
    except _ZIP_ERRORS as e:
        raise _npz_error(fname, "", e) from e
    if isinstance(loaded, np.ndarray):
        arrays = {"x": loaded}
    else:
        with loaded:
            arrays = {key: _npz_member(loaded, key, fname) for key in loaded.files}

    if "x_train" in arrays and "x_test" in arrays:
        return _keras_bundle(arrays, path, name, seed)
    x_key = _pick_x_key(arrays, fname)
    x, kind, info = _array_to_x(arrays[x_key], f"{fname}[{x_key}]")
    y_key = next((k for k in Y_KEYS if k in arrays), None)
    labels = class_names = None
    if y_key is not None:
        labels, class_names = _labels(arrays[y_key], len(x), f"{fname}[{y_key}]")
    info = {"format": "npz", "x_key": x_key, "y_key": y_key, **info}
    return _bundle(x, labels, source=path, name=name, kind=kind, seed=seed, info=info, class_names=class_names)


def _check_npz(path: Path, max_total_bytes: int) -> None:
    """Refuse an .npz from its ZIP directory and member headers, before np.load
    decompresses anything (it would allocate whatever a header declares)."""
    fname = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise DataError(
                    f"{fname} has {len(infos):,} members, more than the limit of {MAX_NPZ_MEMBERS:,} for an .npz file."
                )
            _check_zip_sizes(infos, fname, max_total_bytes)
            for info in infos:
                if not info.filename.endswith(".npy"):
                    # np.load would hand this member back as raw bytes, not as an array
                    raise DataError(
                        f"{fname} holds member '{info.filename}', which is not a "
                        f"NumPy .npy array; an .npz holds only .npy members."
                    )
                key = info.filename[:-4]
                with zf.open(info) as f:
                    _check_npy_header(f, info.file_size, f"{fname}[{key}]")
    except _ZIP_ERRORS as e:
        raise DataError(f"{fname} is damaged and could not be read as NumPy data ({e}).") from e


def _check_npy_header(f, size: int, where: str) -> None:
    """Read an .npy header from ``f`` (``size`` bytes long in all) and refuse what
    cannot be loaded safely: object arrays, too many values, or a truncated body."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except Exception as e:  # numpy tokenizes the header as Python: TokenError, SyntaxError, ...
        raise DataError(f"{where} has a damaged .npy header ({type(e).__name__}: {e}).") from e
    if dtype.hasobject:
        # Its body is a pickle, not count * itemsize bytes: np.load(allow_pickle=False)
        # refuses it unread, and _npz_error words that refusal
        return
    count = 1
    for dim in shape:
        count *= dim
    if count > MAX_OUTPUT_VALUES:
        raise DataError(
            f"{where} declares shape {shape}, {count:,} values, more than the limit of {MAX_OUTPUT_VALUES:,}."
        )
    declared = count * dtype.itemsize
    available = size - f.tell()
    if declared > available:
        raise DataError(
            f"{where} is truncated: its header declares shape {shape} "
            f"({declared:,} bytes of {dtype}) but only {max(available, 0):,} bytes "
            f"follow."
        )


def _npz_member(npz, key: str, fname: str) -> np.ndarray:
    try:
        return npz[key]
    except _ZIP_ERRORS as e:
        raise _npz_error(fname, key, e) from e


def _npz_error(fname: str, key: str, e: Exception) -> DataError:
    where = f"{fname}[{key}]" if key else fname
    if "allow_pickle" in str(e):
        return DataError(
            f"{where} holds an object array, which is refused because loading "
            f"it could run code; save plain numeric arrays instead."
        )
    return DataError(f"{where} is damaged and could not be read as NumPy data ({e}).")


def _pick_x_key(arrays: dict[str, np.ndarray], fname: str) -> str:
    key = next((k for k in X_KEYS if k in arrays), None)
    if key is not None:
        return key
    candidates = [k for k in arrays if k not in Y_KEYS]
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(
        f"{fname} holds arrays {sorted(arrays)} and none is named x, X, images or "
        f"data; save the data under one of those names and labels under y."
    )


def _keras_bundle(arrays: dict[str, np.ndarray], path: Path, name: str | None, seed: int) -> DataBundle:
    fname = path.name
    train_raw, test_raw = arrays["x_train"], arrays["x_test"]
    if train_raw.ndim == 0 or train_raw.shape[1:] != test_raw.shape[1:]:
        raise DataError(
            f"{fname} has x_train of shape {train_raw.shape} but x_test of shape "
            f"{test_raw.shape}; their items must have the same shape."
        )
    x, kind, info = _array_to_x(np.concatenate([train_raw, test_raw]), f"{fname}[x_train]")
    n_train = len(train_raw)
    labels = class_names = None
    if "y_train" in arrays and "y_test" in arrays:
        y = np.concatenate([np.ravel(arrays["y_train"]), np.ravel(arrays["y_test"])])
        labels, class_names = _labels(y, len(x), f"{fname}[y_train]")
    test = Split(x[n_train:], None if labels is None else labels[n_train:])
    return _bundle(
        x[:n_train],
        None if labels is None else labels[:n_train],
        source=path,
        name=name,
        kind=kind,
        seed=seed,
        test=test,
        class_names=class_names,
        info={"format": "npz", "x_key": "x_train", "test_key": "x_test", **info},
    )


# ---------------------------------------------------------------- image folders and ZIPs


def load_images(
    path: str | Path,
    seed: int = 0,
    name: str | None = None,
    size: int | tuple[int, int] | None = None,
    *,
    max_total_bytes: int = MAX_ZIP_BYTES,
    max_files: int = MAX_FILES,
) -> DataBundle:
    """A folder (searched recursively) or a ``.zip`` of PNG/JPEG/BMP/GIF/WebP images.

    Sub-folder names are the classes when every image sits in one. All images
    become grayscale, or RGB if any has colour, at ``size`` ((height, width) or
    a side) or else the most common size. Unreadable images are skipped and
    listed in ``info["skipped"]``. ZIP members are read in memory, never extracted.
    A folder's files, like a ZIP's uncompressed members, may total at most
    ``max_total_bytes``; every image at most the upload limit and
    :data:`~aecore.data.raw.MAX_IMAGE_PIXELS` pixels."""
    path = _existing(path, "folder")
    target = _check_size(size)
    if path.is_dir():
        files = _folder_images(path, max_files, max_total_bytes)
        # open_image reads each path itself, refusing pipes, devices and oversized files
        sources = [(rel, (lambda p=p: p)) for rel, p in files]
        images, skipped = _decode_all(sources)
        fmt = "folder"
    else:
        try:
            zf = zipfile.ZipFile(path)
        except _ZIP_ERRORS as e:
            raise DataError(f"{path.name} is neither a folder nor a readable .zip archive of images.") from e
        with zf:
            members = _zip_images(zf, path.name, max_total_bytes, max_files)
            sources = [(rel, _zip_reader(zf, info, path.name)) for rel, info in members]
            images, skipped = _decode_all(sources)
        fmt = "zip"
    if not images:
        if not skipped:
            raise DataError(f"{path.name} contains no PNG, JPEG, BMP, GIF or WebP images.")
        first = next(iter(skipped.values()))
        raise DataError(f"none of the {len(skipped)} images in {path.name} could be read; the first problem: {first}")

    rels = [rel for rel, _, _ in images]
    arrays = [a for _, a, _ in images]
    modes = sorted({mode for _, _, mode in images})
    labels, class_names = _classes_from_paths(rels)
    colour = any(a.ndim == 3 for a in arrays)
    target = target or Counter(a.shape[:2] for a in arrays).most_common(1)[0][0]
    channels, (h, w) = (3 if colour else 1), target
    if len(arrays) * channels * h * w > MAX_OUTPUT_VALUES:
        raise DataError(
            f"{len(arrays):,} images of {h}x{w} from {path.name} are too many values "
            f"to train on; use fewer images or resize them first."
        )

    x = np.empty((len(arrays), channels, h, w), dtype=np.float32)
    n_resized = 0
    for i, a in enumerate(arrays):
        if a.shape[:2] != (h, w):
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
            n_resized += 1
        # (H, W) gray broadcasts over 3 channels when the set is colour
        x[i] = np.moveaxis(a, -1, 0) if a.ndim == 3 else a
    x /= 255

    target_mode = "RGB" if colour else "L"
    info: dict = {"format": fmt, "n_images": len(arrays), "shape": [channels, h, w], "skipped": skipped}
    if modes != [target_mode]:
        info["converted"] = f"{','.join(modes)}->{target_mode}"
    if n_resized:
        info["resized_to"] = [h, w]
        info["n_resized"] = n_resized
    return _bundle(x, labels, source=path, name=name, kind="image", seed=seed, info=info, class_names=class_names)


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise DataError(f"the image size must be positive, got {size}.")
    return int(h), int(w)


def _hidden(part: str) -> bool:
    # macOS adds __MACOSX/ and ._name resource forks to every zip it makes
    return part.startswith(".") or part == "__MACOSX"


def _is_image_name(parts: tuple[str, ...]) -> bool:
    return not any(_hidden(p) for p in parts) and PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


def _folder_images(root: Path, max_files: int, max_total_bytes: int) -> list[tuple[tuple[str, ...], Path]]:
    found, total = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        rel_dir = Path(dirpath).relative_to(root).parts
        for fn in filenames:
            if _is_image_name(rel_dir + (fn,)):
                p = Path(dirpath, fn)
                found.append((rel_dir + (fn,), p))
                with contextlib.suppress(OSError):  # a dangling link: open_image says so
                    total += p.stat().st_size
        if len(found) > max_files:
            raise DataError(f"{root.name} holds more than {max_files:,} images; use a smaller folder.")
        if total > max_total_bytes:
            raise DataError(
                f"{root.name} was refused because its images total more than "
                f"{format_bytes(max_total_bytes)}; use a smaller folder."
            )
    return sorted(found)


def _zip_images(
    zf: zipfile.ZipFile, fname: str, max_total_bytes: int, max_files: int
) -> list[tuple[tuple[str, ...], zipfile.ZipInfo]]:
    """Image members of a zip, after refusing anything that is unsafe to read."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise DataError(f"{fname} has {len(infos):,} members, more than the limit of {max_files:,}.")
    chosen = []
    for info in infos:
        member = info.filename
        parts = tuple(p for p in member.replace("\\", "/").split("/") if p not in ("", "."))
        if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member):
            raise DataError(f"{fname} was refused because member '{member}' has an absolute path.")
        if ".." in parts:
            raise DataError(f"{fname} was refused because member '{member}' points outside the archive with '..'.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"{fname} was refused because member '{member}' is a symbolic link.")
        if info.is_dir():
            continue
        if _is_image_name(parts):
            chosen.append((parts, info))
    _check_zip_sizes(infos, fname, max_total_bytes)
    return sorted(chosen, key=lambda item: item[0])


def _check_zip_sizes(infos: list[zipfile.ZipInfo], fname: str, max_total_bytes: int) -> None:
    """Refuse a zip bomb from the archive's directory, before decompressing anything."""
    total = 0
    for info in infos:
        if info.file_size > MIN_RATIO_CHECK_BYTES and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise DataError(
                f"{fname} was refused because member '{info.filename}' expands "
                f"{info.file_size // max(info.compress_size, 1):,} times "
                f"(limit {MAX_ZIP_RATIO}), like a zip bomb."
            )
        total += info.file_size
        if total > max_total_bytes:
            raise DataError(f"{fname} was refused because it expands to more than {format_bytes(max_total_bytes)}.")


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fname: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with zf.open(info) as f:
            # Never trust the declared size: read at most one byte past it
            data = f.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise DataError(
                f"{fname} was refused because member '{info.filename}' holds more data than its header declares."
            )
        return data

    return read


def _decode_all(
    sources: Iterable[tuple[tuple[str, ...], Callable[[], bytes]]],
) -> tuple[list[tuple[tuple[str, ...], np.ndarray, str]], dict[str, str]]:
    """Decode every image to uint8 (H, W) or (H, W, 3); unreadable ones go to ``skipped``."""
    images, skipped, decoded_bytes = [], {}, 0
    for rel, read in sources:
        label = "/".join(rel)
        try:
            data = read()
        except DataError:  # a member that lies about its size: the archive is refused
            raise
        except _ZIP_ERRORS as e:
            skipped[label] = f"{label} could not be read ({e})."
            continue
        try:
            img = open_image(data, name=label)
            arr = image_to_array(img, "L" if img.mode in _GRAY_MODES else "RGB")
        except DataError as e:
            skipped[label] = str(e)
            continue
        if arr.ndim == 3 and np.abs(arr - arr[..., :1]).max() < 0.5 / 255:
            arr = arr[..., 0]  # colour mode, gray content: keeps the set grayscale
        pixels = np.round(arr * 255).astype(np.uint8)
        decoded_bytes += pixels.nbytes
        if decoded_bytes > MAX_DECODED_BYTES:
            raise DataError(
                f"the images up to {label} already decode to more than "
                f"{MAX_DECODED_BYTES >> 30} GiB; use fewer or smaller images."
            )
        images.append((rel, pixels, img.mode))
    return images, skipped


def _classes_from_paths(rels: list[tuple[str, ...]]) -> tuple[np.ndarray | None, list[str] | None]:
    # A zip of a folder wraps everything in one top folder: strip folders all images share
    while all(len(r) > 1 for r in rels) and len({r[0] for r in rels}) == 1:
        rels = [r[1:] for r in rels]
    if not all(len(r) > 1 for r in rels):
        return None, None
    names = sorted({r[0] for r in rels})
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[r[0]] for r in rels], dtype=np.int64), names


# ---------------------------------------------------------------- dispatch

LOADERS: dict[str, Callable[..., DataBundle]] = {
    "csv": load_csv,
    "idx": load_idx,
    "npz": load_npz,
    "images": load_images,
}


def load_user_dataset(spec: str, seed: int = 0) -> DataBundle:
    """Load ``csv:PATH``, ``idx:PATH``, ``npz:PATH`` (.npz or .npy) or ``images:PATH``."""
    prefix, sep, rest = spec.partition(":")
    loader = LOADERS.get(prefix.strip().lower()) if sep else None
    if loader is None:
        raise DataError(
            f"cannot tell how to read '{spec}': start it with csv:, idx:, npz: "
            f"(.npz or .npy) or images: (a folder or .zip), e.g. csv:train.csv."
        )
    path = Path(rest.strip()).expanduser()
    if not path.exists():
        raise DataError(f"file not found: {path}.")
    return loader(path, seed=seed)
