"""Low-level readers: IDX files, torchvision's raw folders and single images.

numpy and Pillow only, so the CLI and the dashboard can read a file without
importing torch. Every failure a user can cause is a :class:`DataError`.
"""

from __future__ import annotations

import gzip
import io
import math
import stat
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aecore.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
# IDX type byte -> (big-endian dtype, name for messages), per yann.lecun.com/exdb/mnist/
IDX_TYPES = {
    0x08: (">u1", "unsigned byte"),
    0x09: (">i1", "signed byte"),
    0x0B: (">i2", "16-bit integer"),
    0x0C: (">i4", "32-bit integer"),
    0x0D: (">f4", "32-bit float"),
    0x0E: (">f8", "64-bit float"),
}
# Far above any real dataset (MNIST train is 47 million) yet small enough that a
# forged header cannot make us allocate tens of gigabytes.
MAX_IDX_ELEMENTS = 500_000_000
# Checked from the header before decoding; PIL's own global limit is left alone.
MAX_IMAGE_PIXELS = 40_000_000
# The largest single image accepted, in the dashboard's unit: .streamlit/config.toml sets
# server.maxUploadSize to this, and open_image enforces it on bytes and on files, so an
# upload, an image inside a dataset folder and a file given to the CLI meet the same limit.
MAX_UPLOAD_MB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024  # Streamlit counts a megabyte as 1024*1024 bytes

RAW_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}

# Leading bytes of the formats PIL reads: an unreadable file that starts with one of
# these is a damaged image, not a file of some other kind.
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA_MODES = {"LA": "LA", "La": "LA", "RGBA": "RGBA", "RGBa": "RGBA", "PA": "RGBA"}
# ITU-R 601-2 luma, the weights PIL itself uses for RGB -> L
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def read_idx(path: str | Path, max_elements: int = MAX_IDX_ELEMENTS) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, as a native-endian array."""
    path = Path(path)
    compressed = False
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            return _parse_idx(f, path.name, max_elements)
    except FileNotFoundError as e:
        raise DataError(f"IDX file not found: {path}.") from e
    except (OSError, EOFError, zlib.error) as e:
        if compressed:
            raise DataError(
                f"{path.name} is gzip-compressed but cannot be decompressed "
                f"({e}); the file is damaged or incomplete, so fetch it again."
            ) from e
        raise DataError(f"{path.name} could not be read ({e}).") from e


def _parse_idx(f: BinaryIO, name: str, max_elements: int) -> np.ndarray:
    header = f.read(4)
    if len(header) < 4:
        raise DataError(f"{name} is too short to be an IDX file ({len(header)} bytes).")
    if header[0] or header[1] or header[2] not in IDX_TYPES:
        raise DataError(
            f"{name} is not an IDX file: it starts with bytes {header[:3].hex(' ')}, "
            f"but IDX files start with 00 00 and a type byte such as 08."
        )
    ndim = header[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{name} declares {ndim} dimensions, but only IDX files with 1 to 4 dimensions are supported.")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{name} is truncated inside its header (the dimension sizes are missing); download it again.")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    if 0 in dims:
        raise DataError(f"{name} declares a dimension of size 0 (shape {dims}), so it holds no data.")
    dtype = np.dtype(IDX_TYPES[header[2]][0])
    count = math.prod(dims)
    if count > max_elements:
        raise DataError(
            f"{name} declares shape {dims}, {count:,} values, more than the limit "
            f"of {max_elements:,}; the header is probably corrupt."
        )
    nbytes = count * dtype.itemsize
    data = f.read(nbytes)
    if len(data) < nbytes:
        raise DataError(
            f"{name} is truncated: its header declares shape {dims} "
            f"({nbytes:,} bytes of {IDX_TYPES[header[2]][1]} data) but only "
            f"{len(data):,} bytes follow; download it again."
        )
    if f.read(1):
        raise DataError(
            f"{name} has more data than the {nbytes:,} bytes its header declares "
            f"(shape {dims}), so the header and the data disagree."
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_raw_dataset(data_dir: str | Path, folder_name: str) -> dict[str, np.ndarray]:
    """Read torchvision's ``<data_dir>/<folder_name>/raw/`` MNIST-style files.

    Returns ``train_x``/``test_x`` as uint8 (N, H, W) and ``train_y``/``test_y``
    as int64 (N,)."""
    raw_dir = Path(data_dir) / folder_name / "raw"
    arrays = {key: read_idx(_find_raw_file(raw_dir, stem, folder_name)) for key, stem in RAW_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        images, labels = RAW_FILES[f"{split}_x"], RAW_FILES[f"{split}_y"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(
                f"{images} in {raw_dir} holds {x.dtype} data of shape {x.shape}, "
                f"but (N, height, width) unsigned bytes were expected."
            )
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(
                f"{labels} in {raw_dir} holds {y.dtype} data of shape {y.shape}, "
                f"but one integer label per image was expected."
            )
        if len(x) != len(y):
            raise DataError(
                f"{folder_name} in {raw_dir} has {len(x):,} {split} images but "
                f"{len(y):,} labels; the two files do not belong together."
            )
        arrays[f"{split}_y"] = y.astype(np.int64)
    return arrays


def _find_raw_file(raw_dir: Path, stem: str, folder_name: str) -> Path:
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{stem} (or {stem}.gz) for {folder_name} is missing from {raw_dir}; pass "
        f"--data-dir with the folder that holds {folder_name}/raw/, set "
        f"AECORE_DATA_DIR, or use --download."
    )


def image_to_array(img: Image.Image, mode: Literal["L", "RGB"] = "L") -> np.ndarray:
    """Pixels of any PIL mode as float32 in [0, 1]: (H, W) for "L", (H, W, 3) for "RGB".

    Transparent pixels are composited onto white, as a viewer shows them on a
    page. 16-bit modes are divided by 65535. Mode "I" is divided by 255 when its
    values fit in [0, 255], by 65535 when they fit in [0, 65535], and min-max
    scaled otherwise; mode "F" is kept when already in [0, 1], else min-max scaled.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if img.mode == "P":
        # A palette may mark one index transparent; only RGBA keeps that
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    src = img.mode
    if src in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img).astype(np.float32) / 65535
    elif src == "I":
        arr = _scale_int_image(np.asarray(img))
    elif src == "F":
        arr = _scale_float_image(np.asarray(img, dtype=np.float32))
    elif src in ("1", "L"):
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255
    elif src in _ALPHA_MODES:
        rgba = np.asarray(img.convert(_ALPHA_MODES[src]), dtype=np.float32) / 255
        alpha = rgba[..., -1:]
        arr = rgba[..., :-1] * alpha + (1 - alpha)
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    else:  # RGB, CMYK, YCbCr, LAB, HSV, RGBX: PIL knows how to reach RGB
        try:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
        except (ValueError, OSError) as e:
            raise DataError(f"images of mode {src} cannot be converted to RGB ({e}).") from e
    if mode == "L" and arr.ndim == 3:
        arr = arr @ _LUMA
    elif mode == "RGB" and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    # Float rounding in compositing and luma can step a hair outside [0, 1]
    return np.clip(arr, 0, 1)


def _scale_int_image(a: np.ndarray) -> np.ndarray:
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 255:
        return a.astype(np.float32) / 255
    if lo >= 0 and hi <= 65535:
        return a.astype(np.float32) / 65535
    if hi == lo:
        return np.clip(a, 0, 1).astype(np.float32)
    return (a.astype(np.float64) - lo).astype(np.float32) / (hi - lo)


def _scale_float_image(a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        raise DataError("the image has NaN or infinite pixel values (mode F), so it cannot be shown or used.")
    lo, hi = float(a.min()), float(a.max())
    if (lo >= 0 and hi <= 1) or hi == lo:
        return np.clip(a, 0, 1)
    return (a - lo) / (hi - lo)


def open_image(
    source: bytes | str | Path,
    max_pixels: int = MAX_IMAGE_PIXELS,
    name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Image.Image:
    """Open and fully decode an image from bytes or a path, upright.

    ``name`` labels bytes in messages (an uploaded file's name). Files over
    ``max_bytes`` are refused before they are read, images over ``max_pixels``
    from their header size, before decoding. A photo's EXIF orientation is
    applied (``img.info["exif_transposed"]`` then holds the orientation tag)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "the uploaded image"
        if len(data) > max_bytes:
            raise DataError(_too_many_bytes(label, len(data), max_bytes))
    else:
        path = Path(source)
        label = name or path.name or str(path)
        data = _read_bounded(path, label, max_bytes)
    if not data:
        raise DataError(f"{label} is empty (0 bytes), so it is not an image.")
    fmt = next((f for sig, f in _IMAGE_SIGNATURES if data.startswith(sig)), None)
    if fmt is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "WebP"
    try:
        with warnings.catch_warnings():
            # Our max_pixels check below is the limit; PIL's warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise DataError(_too_big(label, "", max_pixels)) from e
    except UnidentifiedImageError as e:
        if fmt is not None:
            raise DataError(
                f"{label} starts like a {fmt} file but its header is damaged or truncated, so it could not be opened."
            ) from e
        raise DataError(
            f"{label} is not an image that can be read (PNG, JPEG, BMP, GIF, "
            f"WebP and TIFF are); check that it really is an image file."
        ) from e
    except Exception as e:  # plugins raise OSError, SyntaxError, struct.error... on bad headers
        raise DataError(f"{label} has a damaged image header and could not be opened ({e}).") from e
    width, height = img.size
    if width * height > max_pixels:
        raise DataError(_too_big(label, f" ({width}x{height})", max_pixels))
    try:
        img.load()
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError... on bad data
        raise DataError(f"{label} is truncated or damaged and could not be decoded ({e}).") from e
    return _upright(img)


def _read_bounded(path: Path, label: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, checked before reading."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise DataError(f"{label} is a folder, but an image file was expected.")
        if not stat.S_ISREG(st.st_mode):
            # A FIFO or a device such as /dev/zero would never end
            raise DataError(f"{label} is not a regular file (a pipe, device or socket), so it was not read.")
        if st.st_size > max_bytes:
            raise DataError(_too_many_bytes(label, st.st_size, max_bytes))
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since stat
    except FileNotFoundError as e:
        raise DataError(f"image file not found: {path}.") from e
    except OSError as e:
        raise DataError(f"{label} could not be read ({e.strerror or e}).") from e
    if len(data) > max_bytes:
        raise DataError(_too_many_bytes(label, len(data), max_bytes))
    return data


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation a camera wrote instead of rotating the pixels."""
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # damaged EXIF: the pixels decoded fine, so keep them as stored
        return img
    if orientation not in range(2, 9):
        return img
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception:  # as above: a broken tag does not make a picture unusable
        return img
    upright.info["exif_transposed"] = int(orientation)
    return upright


def _too_many_bytes(label: str, size: int, max_bytes: int) -> str:
    return (
        f"{label} is {size:,} bytes, above the limit of {format_bytes(max_bytes)} "
        f"for one image, so it was not read; shrink it and try again."
    )


def format_bytes(n: int) -> str:
    """A limit for messages: "20 MB", "1 GB"; sizes that are not whole units get one decimal."""
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if n >= size:
            return f"{n // size} {unit}" if n % size == 0 else f"{n / size:.1f} {unit}"
    return f"{n:,} bytes"


def _too_big(label: str, dims: str, max_pixels: int) -> str:
    return (
        f"{label}{dims} has more than {max_pixels:,} pixels, so it was not decoded "
        f"(it could be a decompression bomb); shrink it and try again."
    )
