"""The dataset contract: named splits of an image classification dataset.

A dataset gives :class:`Split` values by name — ``train`` for BN recalibration, training and
INT8 calibration, ``val`` for model selection, ``test`` for final reporting; in-memory
:class:`~hwnas.datasets.images.ImageSet` arrays or :class:`~hwnas.datasets.folder.FolderSplit`
files decoded on demand — and says what it is (``describe``: name, source, classes), so a
predictor or a bundle can record the data it was judged on. Stages never name a dataset; they ask
:func:`hwnas.datasets.get_dataset` for one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import DataError


class Split(ABC):
    """One split of a dataset: labels, and preprocessed input batches at any resolution.

    Stages consume a split only through :meth:`batches` (and :meth:`inputs` for small sets such
    as INT8 calibration data), so in-memory arrays and folders decoded by worker processes serve
    them alike. Inputs are float32 ``(N, C, r, r)`` numpy arrays, normalised as the dataset
    prescribes (:meth:`preprocessing` says how, for a deployment to reproduce).
    """

    name: str
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def subset(self, idx: np.ndarray, name: str | None = None) -> Split:
        """The images at positions ``idx``."""

    @abstractmethod
    def batches(self, resolution: int, batch_size: int = 500, train: bool = False, seed: int | None = None,
                indices: np.ndarray | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(inputs, labels)`` batches in order (of ``indices`` when given); ``train`` adds the
        dataset's training augmentation, drawn from ``seed``. ``progress(done, total)`` (images) is
        called after each batch, for a caller's progress bar and ETA.

        Use the labels yielded with each batch: a split that skips undecodable files (an image
        folder with ``on_bad_image="skip"``) leaves them out of inputs and labels together."""

    @abstractmethod
    def preprocessing(self, resolution: int) -> dict[str, Any]:
        """How inputs are made from an image (resize, crop, mean/std, layout), for manifests."""

    def inputs(self, resolution: int, n: int | None = None) -> np.ndarray:
        """The first ``n`` (default: all) preprocessed inputs as one array — for small sets only."""
        idx = np.arange(len(self) if n is None else min(n, len(self)))
        return np.concatenate([x for x, _ in self.batches(resolution, indices=idx)])

    def arrays(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """Every preprocessed input and its label, as two arrays that always match (a skipped file
        is missing from both) — for small sets only."""
        xs, ys = zip(*self.batches(resolution)) if len(self) else ((), ())
        if not xs:
            raise DataError(f"Split '{self.name}' yielded no images ({len(self)} listed).")
        return np.concatenate(xs), np.concatenate(ys)

    def sample(self, n: int, seed: int = 0, name: str | None = None) -> Split:
        """``n`` images drawn without replacement by ``seed`` (kept in split order) — a fair small
        set even where the split is ordered by class, as a folder's is."""
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[: min(n, len(self))])
        return self.subset(idx, name)

    def calibration_inputs(self, resolution: int, n: int = 256, seed: int = 0) -> np.ndarray:
        """INT8 calibration data: :meth:`sample` ``(n, seed)`` through the evaluation transform."""
        return self.sample(n, seed).arrays(resolution)[0]


class Dataset(ABC):
    name: ClassVar[str] = ""
    channels: int = 3
    classes: tuple[str, ...] = ()

    @abstractmethod
    def split(self, split: str) -> Split:
        """The named split (``train``, ``val``, ``test`` ...)."""

    @abstractmethod
    def describe(self) -> dict:
        """What the dataset is (name, where it was read from, number of classes, fingerprint):
        stored with results."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A content id (16 hex digits) of the dataset's images, labels and splits: the same data
        gives the same id wherever it lies. Accuracy datasets and predictors record it, and a
        predictor fitted on one dataset refuses another."""

    def identity(self) -> dict:
        """``{"name", "fingerprint"}``: what a result records of the data it was judged on."""
        return {"name": self.describe()["name"], "fingerprint": self.fingerprint()}

    def splits(self, *names: str) -> tuple[Split, ...]:
        return tuple(self.split(n) for n in names)

    def check_space(self, space) -> None:
        """Refuse a space whose input channels or class count do not fit this dataset, before a
        tensor-size error or a meaningless figure."""
        if space.in_channels != self.channels or space.n_classes != len(self.classes):
            raise DataError(f"Space '{space.name}' takes {space.in_channels}-channel images and {space.n_classes} "
                            f"classes; dataset '{self.describe()['name']}' has {self.channels}-channel images and "
                            f"{len(self.classes)} classes. Pass --data with a dataset that fits the space, or a "
                            "space that fits the data.")
