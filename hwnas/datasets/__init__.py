"""Datasets: evaluation, calibration and training data, chosen through one small registry.

``get_dataset(spec, space)`` returns the :class:`~hwnas.datasets.base.Dataset` a stage uses:
``spec`` is a registered name (``fashion-mnist``, the embedded default of the Fashion-MNIST
spaces) or a folder — one holding the Fashion-MNIST IDX files is read as Fashion-MNIST, one with
class sub-folders (or ``train/`` and ``val/`` of class sub-folders) as an image folder
(:class:`~hwnas.datasets.folder.FolderDataset`). ``None`` means the space's own default dataset.
The dataset is checked against the space (channels, classes) before anything is computed.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from hwnas.datasets.base import Dataset, Split
from hwnas.datasets.folder import FolderDataset, FolderSplit
from hwnas.datasets.images import ImageSet, batches, preprocess
from hwnas.errors import DataError
from hwnas.registry import Registry

__all__ = ["DATASETS", "Dataset", "FolderDataset", "FolderSplit", "ImageSet", "Split", "batches", "get_dataset",
           "preprocess"]

DATASETS: Registry[Any] = Registry("dataset")


def _lazy(module: str, cls: str):
    def factory(**kwargs):
        return getattr(importlib.import_module(module), cls)(**kwargs)

    return factory


DATASETS.register("fashion-mnist", _lazy("hwnas.datasets.fashion_mnist", "FashionMNIST"),
                  "Fashion-MNIST (Debian's dataset-fashion-mnist package, or a folder of its IDX files)")
DATASETS.register("image-folder", _lazy("hwnas.datasets.folder", "FolderDataset"),
                  "labelled images in class folders (root/<class>/* or root/train|val/<class>/*), "
                  "preprocessed as Once-for-All does")

FOLDER_OPTIONS = ("workers", "on_bad_image", "on_non_rgb", "val_fraction", "split_seed", "color_jitter")


def get_dataset(spec: str | os.PathLike | None = None, space=None, **options: Any) -> Dataset:
    """The dataset named or found at ``spec`` (default: ``space``'s own), checked against ``space``.

    ``options`` configure an image folder (``workers``, ``on_bad_image``, ``on_non_rgb``,
    ``val_fraction``, ``split_seed``, ``color_jitter``; see
    :class:`~hwnas.datasets.folder.FolderDataset`); a dataset held in memory ignores them, so a
    command line can pass its flags whatever the data.
    """
    from hwnas.supernet.spaces import get_space

    unknown = sorted(set(options) - set(FOLDER_OPTIONS))
    if unknown:
        raise DataError(f"Unknown dataset option(s) {', '.join(unknown)}; known: {', '.join(FOLDER_OPTIONS)}.")
    sp = get_space(space) if space is not None else None
    ds = _resolve(spec, sp, options)
    if sp is not None:
        ds.check_space(sp)
    return ds


def _resolve(spec, sp, options) -> Dataset:
    if spec is None:
        if sp is None:
            raise DataError("No dataset given: pass --data NAME or --data FOLDER.")
        if sp.dataset not in DATASETS:
            raise DataError(f"Space '{sp.name}' is trained on {sp.dataset}, which hwnas does not ship: pass --data "
                            f"FOLDER (registered datasets: {', '.join(DATASETS.list())}).")
        return DATASETS.create(sp.dataset)
    text = str(spec)
    if text == "image-folder":
        raise DataError("Dataset 'image-folder' is read from a folder: pass --data FOLDER (the folder itself).")
    if text in DATASETS:
        return DATASETS.create(text)
    path = Path(text)
    if path.is_dir():
        from hwnas.datasets import fashion_mnist
        from hwnas.datasets.folder import LAYOUT_HINT, looks_like_image_folder

        if fashion_mnist.available(path):
            return DATASETS.create("fashion-mnist", root=path)
        if looks_like_image_folder(path):
            return DATASETS.create("image-folder", root=path, **options)
        raise DataError(f"'{path}' holds no dataset hwnas can read: neither the Fashion-MNIST IDX files nor class "
                        f"folders of images ({LAYOUT_HINT}).")
    raise DataError(f"Unknown dataset '{text}': not a registered name ({', '.join(DATASETS.list())}) and not a "
                    "folder.")
