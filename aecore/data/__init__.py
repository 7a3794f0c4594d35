"""The dataset registry: one name -> one loader returning a :class:`DataBundle`.

Built-in datasets are always available offline. MNIST, Fashion-MNIST and
KMNIST are read from torchvision's raw layout under the data dir
(``--data-dir``, else ``AECORE_DATA_DIR``, else ``./data``). User files are
named ``csv:PATH``, ``idx:PATH``, ``npz:PATH`` or ``images:PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aecore.data import builtin
from aecore.data.base import DataBundle, Split, split_train_val
from aecore.errors import DataError

USER_PREFIXES = ("csv:", "idx:", "npz:", "images:")
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return Path(data_dir or os.environ.get("AECORE_DATA_DIR") or "data").expanduser()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    kind: str  # image | vector | sequence
    builtin: bool
    folder: str | None = None  # torchvision's folder name for raw-layout datasets
    classes: tuple[str, ...] | None = None
    make: Callable[[int], DataBundle] | None = None

    def available(self, data_dir: str | os.PathLike | None = None) -> bool:
        if self.builtin:
            return True
        raw = resolve_data_dir(data_dir) / self.folder / "raw"
        return all((raw / f).exists() or (raw / f"{f}.gz").exists() for f in RAW_FILES)


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "digits",
        "scikit-learn's 8x8 handwritten digits (1,797 images)",
        "image",
        True,
        classes=tuple(map(str, range(10))),
        make=builtin.digits,
    ),
    "line2d": DatasetSpec(
        "line2d", "2-D points on a line: a 1-D manifold (seed 000)", "vector", True, make=builtin.line2d
    ),
    "sine": DatasetSpec(
        "sine", "2-D points on a sine wave: no linear 1-D projection fits (seed 000)", "vector", True, make=builtin.sine
    ),
    "helix3d": DatasetSpec(
        "helix3d", "3-D points on a helix, theta = f(x, y, z) (seed 001)", "vector", True, make=builtin.helix3d
    ),
    "reverse-seq": DatasetSpec(
        "reverse-seq",
        "6 random ints in 1..50 -> the first 3 reversed (seed 000)",
        "sequence",
        True,
        make=builtin.reverse_seq,
    ),
    "mnist": DatasetSpec(
        "mnist", "MNIST handwritten digits, 28x28", "image", False, "MNIST", tuple(map(str, range(10)))
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Fashion-MNIST clothing, 28x28", "image", False, "FashionMNIST", FASHION_CLASSES
    ),
    "kmnist": DatasetSpec(
        "kmnist", "Kuzushiji-MNIST cursive Japanese, 28x28", "image", False, "KMNIST", KMNIST_CLASSES
    ),
}

# MNIST's own 55,000/5,000 split (TensorFlow's input_data, used by seed 002).
DEFAULT_VAL_FRACTION = 5000 / 60000


def download(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Fetch a raw-layout dataset through torchvision, or say in one sentence what to do instead."""
    spec = DATASETS[name]
    root = resolve_data_dir(data_dir)
    hint = (
        f"put the four files {', '.join(f + '.gz' for f in RAW_FILES)} in {root / spec.folder / 'raw'} "
        "(or pass --data-dir to a folder that has them)"
    )
    try:
        import torchvision.datasets as tvd
    except Exception as e:  # a CPU torch with the PyPI torchvision wheel fails here with OSError/RuntimeError
        raise DataError(
            f"cannot download {name}: torchvision does not import here ({type(e).__name__}); {hint}."
        ) from e
    cls = {"MNIST": tvd.MNIST, "FashionMNIST": tvd.FashionMNIST, "KMNIST": tvd.KMNIST}[spec.folder]
    try:
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
    except Exception as e:
        raise DataError(f"cannot download {name}: {e}; {hint}.") from e
    return root / spec.folder / "raw"


def _load_raw(spec: DatasetSpec, data_dir, seed: int, val_fraction: float) -> DataBundle:
    from aecore.data.raw import read_raw_dataset

    d = read_raw_dataset(resolve_data_dir(data_dir), spec.folder)
    x = d["train_x"][:, None]  # (N, 28, 28) uint8 stays uint8 until the trainer: 4x less memory
    train, val = split_train_val(x, d["train_y"], val_fraction, seed)
    test = Split(d["test_x"][:, None], d["test_y"])
    return DataBundle(
        spec.name,
        "image",
        train,
        val,
        test,
        list(spec.classes),
        info={"source": str(resolve_data_dir(data_dir) / spec.folder / "raw"), "scale": 255},
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    download_missing: bool = False,
    val_fraction: float | None = None,
) -> DataBundle:
    """Load a dataset by registry name or user-file spec (``csv:PATH`` ...).

    Images come back as float32 in [0, 1] with shape (N, C, H, W), except the
    raw-layout datasets, which stay uint8 (N, 1, 28, 28) with ``info['scale']=255``
    so that 60,000 images take 47 MB; :func:`as_float` converts."""
    if name.startswith(USER_PREFIXES):
        from aecore.data.files import load_user_dataset

        return load_user_dataset(name, seed=seed)
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
            "or a file as csv:PATH, idx:PATH, npz:PATH or images:PATH."
        )
    spec = DATASETS[name]
    if spec.builtin:
        return spec.make(seed)
    if not spec.available(data_dir):
        if download_missing:
            download(name, data_dir)
        else:
            raw = resolve_data_dir(data_dir) / spec.folder / "raw"
            raise DataError(
                f"{name} is not in {raw}; pass --data-dir DIR (a folder holding {spec.folder}/raw/), "
                "set AECORE_DATA_DIR, or add --download."
            )
    return _load_raw(spec, data_dir, seed, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction)


def as_float(x: np.ndarray, bundle: DataBundle) -> np.ndarray:
    """Images as float32 in [0, 1] whatever the stored dtype."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / float(bundle.info.get("scale", 255))
    return x


__all__ = ["DATASETS", "DataBundle", "DatasetSpec", "Split", "as_float", "download", "load_dataset", "resolve_data_dir"]
