"""Image-folder datasets: the user's own labelled images, read the way Once-for-All reads ImageNet.

Layouts (class = sub-folder name; classes sorted by name, as torchvision's ``ImageFolder``):

* ImageNet style: ``root/train/<class>/*`` and ``root/val/<class>/*``, optionally
  ``root/test/<class>/*``. Without ``test/`` the ``test`` split is ``val`` (as ImageNet results
  are reported on its validation set); :meth:`FolderDataset.describe` says so.
* One folder: ``root/<class>/*`` (or ``root/train/<class>/*`` with no ``val/``), split per class
  into ``train`` and ``val`` by ``val_fraction`` with a seeded permutation — the same folder and
  seed give the same split on every machine. ``test`` is ``val``.

Files are found recursively below each class folder (links followed) and kept when their
extension is an image one (``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp``, any case);
order within a class is torchvision's (sorted folders, then sorted names), so an index here is
an index there. The listing is checked when the dataset is opened: a missing folder, an empty
class folder, classes that differ between splits or a folder with no images each raise one
:class:`~hwnas.errors.DataError` line that names what to fix.

Images are decoded when a batch is asked for, never held in memory, by worker processes (see
:mod:`hwnas.datasets.workers`); preprocessing is OFA's (:mod:`hwnas.datasets.transforms`).
A file that cannot be decoded stops the run by default (``on_bad_image="stop"``: a figure over
silently fewer images than the split lists is not the figure it claims to be); with ``"skip"``
it is left out of its batch (inputs and labels together), counted and listed in
:meth:`FolderDataset.describe`. A grayscale, RGBA, palette or CMYK image is converted to RGB as
torchvision's loader does (``on_non_rgb="convert"``, counted) or refused (``"refuse"``).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.datasets import transforms as T
from hwnas.datasets.base import Dataset, Split
from hwnas.datasets.workers import OrderedPool
from hwnas.errors import ConfigError, DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
CHUNK = 16  # images per worker task
FINGERPRINT_SAMPLE = 64  # files per split whose bytes enter the fingerprint
LAYOUT_HINT = "root/<class>/*.jpg, or root/train/<class>/* with root/val/<class>/*"


def _subdirs(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def list_class(folder: Path) -> list[str]:
    """Image files below ``folder`` (recursive), relative to it, in torchvision's order."""
    out = []
    for dirpath, _, names in sorted(os.walk(folder, followlinks=True)):
        rel = os.path.relpath(dirpath, folder)
        for n in sorted(names):
            if n.lower().endswith(IMG_EXTENSIONS) and not n.startswith("."):
                out.append(n if rel == "." else os.path.join(rel, n))
    return out


def scan_split(folder: Path) -> dict[str, list[str]]:
    """``{class: [files relative to folder]}``; refuses a folder with no classes or an empty class."""
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder: expected {LAYOUT_HINT}.")
    classes = _subdirs(folder)
    if not classes:
        raise DataError(f"'{folder}' has no class sub-folders: expected {LAYOUT_HINT}.")
    listing = {c: [os.path.join(c, f) for f in list_class(folder / c)] for c in classes}
    empty = [c for c, files in listing.items() if not files]
    if len(empty) == len(classes):
        raise DataError(f"'{folder}' holds no images ({' '.join(IMG_EXTENSIONS)}) in any of its {len(classes)} "
                        "class folders: put the images in the class folders.")
    if empty:
        raise DataError(f"Class folder '{folder / empty[0]}' holds no images"
                        + (f" (nor do {len(empty) - 1} more: {', '.join(empty[1:4])}{' ...' if len(empty) > 4 else ''})"
                           if len(empty) > 1 else "")
                        + ": add images or remove the folder.")
    return listing


def looks_like_image_folder(root: str | os.PathLike) -> bool:
    """Whether ``root`` has class (or train/val) sub-folders — cheap, no files listed."""
    p = Path(root)
    return p.is_dir() and bool(_subdirs(p))


def _check_same_classes(listings: dict[str, dict[str, list[str]]]) -> None:
    names = list(listings)
    ref = set(listings[names[0]])
    for other in names[1:]:
        got = set(listings[other])
        if got != ref:
            only_a, only_b = sorted(ref - got), sorted(got - ref)

            def few(v):
                return ", ".join(v[:5]) + (f" (+{len(v) - 5} more)" if len(v) > 5 else "") if v else "none"

            raise DataError(f"Classes differ between '{names[0]}' and '{other}': only in {names[0]}: {few(only_a)}; "
                            f"only in {other}: {few(only_b)}. Every split needs the same class folders.")


class _Reader:
    """Decoding state shared by a dataset's splits: the worker pool, the policies, what was seen."""

    def __init__(self, workers: int | None, on_bad_image: str, on_non_rgb: str, color_jitter: bool) -> None:
        if on_bad_image not in ("stop", "skip"):
            raise ConfigError(f"on_bad_image must be 'stop' or 'skip', got {on_bad_image!r}.")
        if on_non_rgb not in ("convert", "refuse"):
            raise ConfigError(f"on_non_rgb must be 'convert' or 'refuse', got {on_non_rgb!r}.")
        self.pool = OrderedPool(workers)
        self.on_bad_image, self.on_non_rgb, self.color_jitter = on_bad_image, on_non_rgb, color_jitter
        self.skipped: dict[str, str] = {}  # path -> reason
        self.converted: dict[str, str] = {}  # path -> original mode


class FolderSplit(Split):
    """One split of an image folder: file paths and labels; batches decoded on demand."""

    def __init__(self, name: str, root: Path, files: np.ndarray, labels: np.ndarray, reader: _Reader) -> None:
        self.name, self.root, self.files, self.labels, self._reader = name, root, files, labels, reader

    def subset(self, idx: np.ndarray, name: str | None = None) -> FolderSplit:
        idx = np.asarray(idx)
        return FolderSplit(name or self.name, self.root, self.files[idx], self.labels[idx], self._reader)

    def path(self, i: int) -> Path:
        return self.root / str(self.files[i])

    def batches(self, resolution: int, batch_size: int = 500, train: bool = False, seed: int | None = None,
                indices: np.ndarray | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Preprocessed ``(inputs, labels)`` batches in order: float32 ``(n, 3, r, r)``, int64 ``(n,)``.

        ``train``: OFA's training augmentation, drawn from ``seed`` (default 0) and each image's
        position in the request. ``progress(done, total)`` is called after every batch.
        A batch is shorter than ``batch_size`` only at the end, or where images were skipped.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        seed = 0 if seed is None else int(seed)
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}.")
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        recipe = T.Recipe(int(resolution), bool(train), seed, self._reader.color_jitter)
        tasks = (([str(self.root / str(f)) for f in self.files[idx[s:s + CHUNK]]],
                  list(range(s, min(s + CHUNK, len(idx)))), recipe) for s in range(0, len(idx), CHUNK))
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        n_pending = done = 0
        results = self._reader.pool.imap(T.decode_chunk, tasks)
        for start, (crops, ok, bad, modes) in zip(range(0, len(idx), CHUNK), results):
            pos = np.arange(start, start + len(ok))
            self._note(pos, idx, bad, modes)
            pending_x.append(crops)
            pending_y.append(self.labels[idx[pos[ok]]])
            n_pending += len(crops)
            done += len(ok)
            while n_pending >= batch_size or (done == len(idx) and n_pending):
                x, y = np.concatenate(pending_x), np.concatenate(pending_y)
                pending_x, pending_y = [x[batch_size:]], [y[batch_size:]]
                n_pending = len(pending_y[0])
                yield T.normalize(x[:batch_size]), y[:batch_size]
                if progress is not None:
                    progress(done - n_pending, len(idx))

    def _note(self, pos: np.ndarray, idx: np.ndarray, bad, modes) -> None:
        rd = self._reader
        for i, mode in modes:
            p = self.path(int(idx[pos[i]]))
            if rd.on_non_rgb == "refuse":
                raise DataError(f"'{p}' is a {T.mode_kind(mode)} image ({mode}) and the space takes RGB: convert it, "
                                "or pass on_non_rgb='convert' to convert such images as they are read.")
            rd.converted[str(p)] = mode
        for i, reason in bad:
            p = self.path(int(idx[pos[i]]))
            if rd.on_bad_image == "stop":
                raise DataError(f"Cannot decode image '{p}' ({reason}): replace or remove the file, or pass "
                                "on_bad_image='skip' to leave out and count such files.")
            rd.skipped[str(p)] = reason

    def preprocessing(self, resolution: int) -> dict[str, Any]:
        s = T.eval_resize(resolution)
        return {"resolution": resolution, "mean": list(T.IMAGENET_MEAN), "std": list(T.IMAGENET_STD),
                "resize": f"shorter side to {s} px (ceil(r / {T.CROP_FRACTION})), bilinear (PIL)",
                "resize_shorter_px": s, "crop": f"centre {resolution}x{resolution}", "scale": "1/255",
                "color": "RGB", "layout": "NCHW", "channels": 3}

    def __repr__(self) -> str:
        return f"FolderSplit({self.name!r}, {len(self)} images, root={str(self.root)!r})"


class FolderDataset(Dataset):
    """An image folder (see the module docstring for layouts and policies).

    ``workers``: decoding processes (0 = in this process; default: one per core beyond the first,
    1–4). ``val_fraction``/``split_seed``: the per-class split of a one-folder layout.
    ``color_jitter``: OFA's "tf" colour distortion in the training transform.
    """

    name = "image-folder"
    channels = 3

    def __init__(self, root: str | os.PathLike, workers: int | None = None, on_bad_image: str = "stop",
                 on_non_rgb: str = "convert", val_fraction: float = 0.1, split_seed: int = 0,
                 color_jitter: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"Dataset folder '{self.root}' does not exist: expected {LAYOUT_HINT}.")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
        self._reader = _Reader(workers, on_bad_image, on_non_rgb, color_jitter)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self._fingerprint: str | None = None
        top = _subdirs(self.root)
        if "train" in top and "val" in top:
            self.layout = "train/val" + ("/test" if "test" in top else "")
            listings = {s: scan_split(self.root / s) for s in ("train", "val", "test") if s in top}
            _check_same_classes(listings)
            self.classes = tuple(listings["train"])
            self._splits = {s: self._make(s, self.root / s, listing) for s, listing in listings.items()}
        else:
            base = self.root / "train" if "train" in top else self.root
            self.layout = "one folder" + (" (train/)" if base != self.root else "")
            listing = scan_split(base)
            self.classes = tuple(listing)
            full = self._make("all", base, listing)
            tr, va = self._split_indices(full.labels, listing)
            self._splits = {"train": full.subset(tr, "train"), "val": full.subset(va, "val")}
        if "test" not in self._splits:
            self._splits["test"] = self._splits["val"]

    def _make(self, name: str, folder: Path, listing: dict[str, list[str]]) -> FolderSplit:
        files = np.array([f for c in self.classes for f in listing[c]], dtype=object)
        labels = np.concatenate([np.full(len(listing[c]), k, dtype=np.int64) for k, c in enumerate(self.classes)])
        return FolderSplit(name, folder, files, labels, self._reader)

    def _split_indices(self, labels: np.ndarray, listing) -> tuple[np.ndarray, np.ndarray]:
        """Per class: a permutation seeded by (split_seed, crc32(class name)) puts
        ``round(n * val_fraction)`` images (at least 1 when the class has 2 or more) in ``val``."""
        tr, va = [], []
        for k, c in enumerate(self.classes):
            members = np.flatnonzero(labels == k)
            n_val = int(round(len(members) * self.val_fraction))
            n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
            perm = np.random.default_rng([self.split_seed, zlib.crc32(c.encode())]).permutation(len(members))
            va.append(np.sort(members[perm[:n_val]]))
            tr.append(np.sort(members[perm[n_val:]]))
        return np.concatenate(tr), np.concatenate(va)

    def split(self, split: str) -> FolderSplit:
        if split not in self._splits:
            raise DataError(f"Unknown split '{split}' of image folder '{self.root}'; use {', '.join(self._splits)}.")
        return self._splits[split]

    @property
    def skipped(self) -> dict[str, str]:
        """Files left out so far because they could not be decoded (path → reason)."""
        return dict(self._reader.skipped)

    @property
    def converted(self) -> dict[str, str]:
        """Non-RGB files converted so far (path → original PIL mode)."""
        return dict(self._reader.converted)

    def fingerprint(self) -> str:
        """sha256 (16 hex) of the layout, the classes, every split's file list and labels, and the
        bytes of a seeded sample of files (up to :data:`FINGERPRINT_SAMPLE` a split): two folders
        with the same fingerprint hold the same images under the same names — copies anywhere
        agree, folders that share file names but not images differ — without reading every file."""
        if self._fingerprint is None:
            self._fingerprint = self._hash()
        return self._fingerprint

    def _hash(self) -> str:
        h = hashlib.sha256(f"{self.layout}|{self.val_fraction}|{self.split_seed}|{'/'.join(self.classes)}".encode())
        for name in ("train", "val", "test"):
            s = self._splits[name]
            h.update(f"|{name}:{len(s)}|".encode())
            h.update("\n".join(map(str, s.files)).encode())
            h.update(s.labels.tobytes())
            for i in np.sort(np.random.default_rng(len(s)).permutation(len(s))[:FINGERPRINT_SAMPLE]):
                try:
                    h.update(hashlib.sha256(s.path(int(i)).read_bytes()).digest())
                except OSError as exc:
                    raise DataError(f"Cannot read '{s.path(int(i))}' ({exc.strerror}): fix its permissions or "
                                    "remove it.") from None
        return h.hexdigest()[:16]

    def image_size(self, n: int = 200, seed: int = 0) -> tuple[int, int]:
        """Median ``(width, height)`` in px over ``n`` seeded training images (headers only)."""
        from PIL import Image

        tr = self._splits["train"]
        pick = np.random.default_rng(seed).permutation(len(tr))[:n]
        sizes = []
        for i in pick:
            try:
                with Image.open(tr.path(int(i))) as im:
                    sizes.append(im.size)
            except Exception:  # an unreadable file is reported when it is decoded, not here
                continue
        if not sizes:
            raise DataError(f"None of {len(pick)} sampled training images of '{self.root}' can be opened.")
        w, h = np.median(np.array(sizes), axis=0)
        return int(w), int(h)

    def describe(self) -> dict:
        d = {"name": self.name, "root": str(self.root.resolve()), "layout": self.layout, "classes": len(self.classes),
             "class_names": list(self.classes), "images": {s: len(self._splits[s]) for s in ("train", "val", "test")},
             "test_is_val": self._splits["test"] is self._splits["val"], "fingerprint": self.fingerprint(),
             "on_bad_image": self._reader.on_bad_image, "on_non_rgb": self._reader.on_non_rgb,
             "skipped": len(self._reader.skipped), "converted": len(self._reader.converted)}
        if self.layout.startswith("one folder"):
            d.update(val_fraction=self.val_fraction, split_seed=self.split_seed)
        if self._reader.skipped:
            d["skipped_files"] = dict(list(self._reader.skipped.items())[:20])
        return d

    def close(self) -> None:
        """Stop the decoding processes (they are also stopped at exit)."""
        self._reader.pool.close()

    def __enter__(self) -> FolderDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
