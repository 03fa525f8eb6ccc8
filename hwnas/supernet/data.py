"""Image data for training and evaluating super-networks.

Fashion-MNIST is read from its IDX gzip files (Debian's ``dataset-fashion-mnist``
package installs them under ``/usr/share/datasets/fashion-mnist``; any folder with
the four files works). A fixed validation split of the training set is used for
search and model selection; the test set is only for final reporting.

Images stay uint8 in memory; :func:`preprocess` resizes to the subnet's resolution,
augments (training) and normalises. The same function feeds training, BN
recalibration, evaluation and quantization calibration, so they cannot drift apart.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwnas.errors import DataError

DEFAULT_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
VAL_SIZE = 5000
VAL_SEED = 20240611  # fixes which training images form the validation split
INSTALL_HINT = (
    "Install them with 'apt-get install -y dataset-fashion-mnist' (Debian/Ubuntu) or pass --data DIR "
    "with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz."
)


@dataclass(frozen=True)
class ImageSet:
    """uint8 images ``(N, C, H, W)`` with int64 labels; ``mean``/``std`` per channel for normalisation."""

    images: np.ndarray
    labels: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray, name: str | None = None) -> ImageSet:
        return ImageSet(self.images[idx], self.labels[idx], self.mean, self.std, name or self.name)


def fmnist_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path) if path is not None else Path(os.environ.get("HWNAS_FMNIST_DIR", DEFAULT_FMNIST_DIR))


def fmnist_available(path: str | os.PathLike | None = None) -> bool:
    d = fmnist_dir(path)
    return all((d / f).is_file() for pair in FMNIST_FILES.values() for f in pair)


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"'{path}' is not a readable gzip file ({exc}); re-download or reinstall it.") from None
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


def _check_space(space) -> None:
    """Fashion-MNIST is 1x28x28 with 10 classes: refuse a space built for other data (the ImageNet
    spaces) before a tensor-size error or a meaningless figure."""
    from hwnas.supernet.spaces import get_space

    sp = get_space(space) if isinstance(space, str) else space
    if sp.in_channels != 1 or sp.n_classes != 10:
        raise DataError(f"Space '{sp.name}' takes {sp.in_channels}-channel images and {sp.n_classes} classes; "
                        "hwnas trains and evaluates accuracy on Fashion-MNIST (1 channel, 10 classes) only. Use "
                        "fmnist-mbv3 or tiny-mbv3 for accuracy work; the ImageNet spaces serve latency work "
                        "(profile, fit, predict, export-subnet, measure).")


def load_fmnist(space, *splits: str, path: str | os.PathLike | None = None) -> tuple[ImageSet, ...]:
    """The Fashion-MNIST ``splits`` (see :func:`load_fmnist_split`) for work on ``space`` (a name or a
    space), each IDX file read once; a space that does not take Fashion-MNIST is refused first."""
    _check_space(space)
    d = fmnist_dir(path)
    sources: dict[str, ImageSet] = {}
    return tuple(_split(d, s, sources) for s in splits)


def load_fmnist_split(split: str, path: str | os.PathLike | None = None) -> ImageSet:
    """``split``: ``train`` (55,000), ``val`` (5,000 carved from train, fixed), ``train-full`` or ``test``."""
    return _split(fmnist_dir(path), split, {})


def _split(d: Path, split: str, sources: dict[str, ImageSet]) -> ImageSet:
    if split not in ("train", "val", "train-full", "test"):
        raise DataError(f"Unknown split '{split}'; use train, val, train-full or test.")
    src = "test" if split == "test" else "train"
    if src not in sources:
        sources[src] = _read_source(d, src)
    full = sources[src]
    if split in ("test", "train-full"):
        return replace(full, name=f"fashion-mnist-{split}")
    perm = np.random.default_rng(VAL_SEED).permutation(len(full))
    idx = np.sort(perm[:VAL_SIZE] if split == "val" else perm[VAL_SIZE:])
    return full.subset(idx, f"fashion-mnist-{split}")


def _read_source(d: Path, src: str) -> ImageSet:
    img_f, lab_f = (d / f for f in FMNIST_FILES[src])
    for f in (img_f, lab_f):
        if not f.is_file():
            raise DataError(f"Fashion-MNIST file '{f}' is missing. {INSTALL_HINT}")
    images = _read_idx(img_f, 0x803, 3)[:, None]
    labels = _read_idx(lab_f, 0x801, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"'{img_f}' has {len(images)} images but '{lab_f}' {len(labels)} labels.")
    return ImageSet(images, labels, (FMNIST_MEAN,), (FMNIST_STD,), f"fashion-mnist-{src}")


def load_image_folder(root: str | os.PathLike, size: int, grayscale: bool = False) -> ImageSet:
    """A folder per class (``root/<class>/*.png|jpg``), resized to ``size``; for users' own data."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError("Image folders need Pillow: pip install pillow.") from exc
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DataError(f"'{root}' holds no class sub-folders (expected root/<class>/<image>).")
    imgs, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
                continue
            im = Image.open(f).convert("L" if grayscale else "RGB").resize((size, size))
            a = np.asarray(im, dtype=np.uint8)
            imgs.append(a[None] if grayscale else a.transpose(2, 0, 1))
            labels.append(ci)
    if not imgs:
        raise DataError(f"'{root}' has class folders but no images.")
    x = np.stack(imgs)
    m = tuple(float(v) for v in (x.reshape(len(x), x.shape[1], -1).mean(axis=(0, 2)) / 255))
    s = tuple(float(v) for v in (x.reshape(len(x), x.shape[1], -1).std(axis=(0, 2)) / 255))
    return ImageSet(x, np.asarray(labels, dtype=np.int64), m, s, root.name)


def preprocess(images, resolution: int, mean, std, train: bool = False, generator=None):
    """uint8 ``(N,C,H,W)`` (numpy or torch) → normalised float tensor at ``resolution``.

    Training adds a random 2-pixel-padded crop and a horizontal flip (per image).
    Resizing is bilinear with antialiasing, applied after augmentation.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
    if train:
        n, _, h, w = x.shape
        pad = 2
        xp = F.pad(x, (pad, pad, pad, pad))
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h)[None]).clamp_max(h + 2 * pad - 1)
        cols = (ox[:, None] + torch.arange(w)[None]).clamp_max(w + 2 * pad - 1)
        x = xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
               rows[:, None, :, None], cols[:, None, None, :]]
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < x.shape[-1])
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None, drop_last: bool = False):
    """Index batches over ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]
