"""Fashion-MNIST from its IDX gzip files — the embedded default dataset.

Debian's ``dataset-fashion-mnist`` package installs the four files under
``/usr/share/datasets/fashion-mnist``; any folder holding them works (``--data DIR``, or the
``HWNAS_FMNIST_DIR`` environment variable). A fixed validation split of the training set is used
for search and model selection; the test set only for final reporting.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from hwnas.datasets.base import Dataset
from hwnas.datasets.images import ImageSet
from hwnas.errors import DataError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MEAN, STD = 0.2860, 0.3530
VAL_SIZE = 5000
VAL_SEED = 20240611  # fixes which training images form the validation split
INSTALL_HINT = (
    "Install them with 'apt-get install -y dataset-fashion-mnist' (Debian/Ubuntu) or pass --data DIR "
    "with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz."
)


def default_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path) if path is not None else Path(os.environ.get("HWNAS_FMNIST_DIR", DEFAULT_DIR))


def available(path: str | os.PathLike | None = None) -> bool:
    """Whether the four IDX files are in ``path`` (default: the Debian package's folder)."""
    d = default_dir(path)
    return all((d / f).is_file() for pair in FILES.values() for f in pair)


class FashionMNIST(Dataset):
    """1×28×28 grayscale, 10 classes. Splits: ``train`` (55,000), ``val`` (5,000 carved from the
    training set, fixed), ``train-full`` (60,000) and ``test`` (10,000)."""

    name = "fashion-mnist"
    channels = 1
    SPLITS = ("train", "val", "train-full", "test")

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = default_dir(root)
        self.classes = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                        "ankle-boot")
        self._sources: dict[str, ImageSet] = {}
        self._fingerprint: str | None = None

    def describe(self) -> dict:
        return {"name": self.name, "root": str(self.root), "classes": len(self.classes),
                "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the four IDX files' decompressed contents and the fixed validation
        split: a copy of the files in another folder, or the same files compressed otherwise, has
        the same fingerprint."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"{self.name}|val {VAL_SIZE} seed {VAL_SEED}".encode())
            for pair in FILES.values():
                for name in pair:
                    h.update(hashlib.sha256(_raw(self.root / name)).digest())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def split(self, split: str) -> ImageSet:
        if split not in self.SPLITS:
            raise DataError(f"Unknown split '{split}'; use {', '.join(self.SPLITS)}.")
        src = "test" if split == "test" else "train"
        if src not in self._sources:
            self._sources[src] = self._read(src)
        full = self._sources[src]
        if split in ("test", "train-full"):
            return replace(full, name=f"fashion-mnist-{split}")
        perm = np.random.default_rng(VAL_SEED).permutation(len(full))
        idx = np.sort(perm[:VAL_SIZE] if split == "val" else perm[VAL_SIZE:])
        return full.subset(idx, f"fashion-mnist-{split}")

    def _read(self, src: str) -> ImageSet:
        img_f, lab_f = (self.root / f for f in FILES[src])
        for f in (img_f, lab_f):
            if not f.is_file():
                raise DataError(f"Fashion-MNIST file '{f}' is missing. {INSTALL_HINT}")
        images = read_idx(img_f, 0x803, 3)[:, None]
        labels = read_idx(lab_f, 0x801, 1).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"'{img_f}' has {len(images)} images but '{lab_f}' {len(labels)} labels.")
        return ImageSet(images, labels, (MEAN,), (STD,), f"fashion-mnist-{src}")


def _raw(path: Path) -> bytes:
    """The decompressed bytes of one IDX gzip file."""
    if not path.is_file():
        raise DataError(f"Fashion-MNIST file '{path}' is missing. {INSTALL_HINT}")
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"'{path}' is not a readable gzip file ({exc}); re-download or reinstall it.") from None


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """One IDX array (big-endian header: magic, ``ndim`` sizes, then uint8 values)."""
    raw = _raw(path)
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"'{path}' is truncated (only {len(raw)} bytes).")
    got_magic = struct.unpack(">I", raw[:4])[0]
    if got_magic != magic:
        raise DataError(f"'{path}' is not an IDX file of the expected kind (magic {got_magic:#x}, want {magic:#x}).")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    need = int(np.prod(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != need:
        raise DataError(f"'{path}' is truncated: header says {need} values, file holds {body.size}.")
    return body.reshape(dims)
