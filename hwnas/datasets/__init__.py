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
           "open_dataset", "parse_data_options", "preprocess"]

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
_OPTION_TYPES = {"workers": int, "on_bad_image": str, "on_non_rgb": str, "val_fraction": float, "split_seed": int,
                 "color_jitter": bool}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_data_options(options: dict[str, str] | None) -> dict[str, Any]:
    """A command line's ``--data-option KEY=VALUE`` pairs as :func:`get_dataset` options, typed;
    an unknown key or a value of the wrong kind is one error line naming the known ones."""
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        k = key.replace("-", "_")
        kind = _OPTION_TYPES.get(k)
        if kind is None:
            raise DataError(f"Unknown --data-option '{key}'; known: {', '.join(FOLDER_OPTIONS)}.")
        text = str(value).strip()
        try:
            if kind is bool:
                if text.lower() not in _TRUE + _FALSE:
                    raise ValueError(text)
                out[k] = text.lower() in _TRUE
            else:
                out[k] = kind(text)
        except ValueError:
            want = "true or false" if kind is bool else kind.__name__
            raise DataError(f"--data-option {key}={value}: expected {want}.") from None
    return out


def open_dataset(spec: str | os.PathLike | Dataset | None, space=None, options: dict[str, str] | None = None
                 ) -> Dataset:
    """:func:`get_dataset` for a command: ``spec`` as given on its command line (a dataset already
    open is checked against ``space`` and returned), ``options`` its ``--data-option`` pairs."""
    if isinstance(spec, Dataset):
        if space is not None:
            from hwnas.supernet.spaces import get_space

            spec.check_space(get_space(space))
        return spec
    return get_dataset(spec, space, **parse_data_options(options))


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
