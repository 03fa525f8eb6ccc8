"""The dataset contract: named splits of an image classification dataset.

A dataset gives :class:`~hwnas.datasets.images.ImageSet` splits by name (``train`` for BN
recalibration, training and INT8 calibration, ``val`` for model selection, ``test`` for final
reporting) and says what it is (``describe``: name, source, classes), so a predictor or a
bundle can record the data it was judged on. Stages never name a dataset; they ask
:func:`hwnas.datasets.get_dataset` for one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from hwnas.datasets.images import ImageSet
from hwnas.errors import DataError


class Dataset(ABC):
    name: ClassVar[str] = ""
    channels: int = 3
    classes: tuple[str, ...] = ()

    @abstractmethod
    def split(self, split: str) -> ImageSet:
        """The named split (``train``, ``val``, ``test`` ...)."""

    @abstractmethod
    def describe(self) -> dict:
        """What the dataset is (name, where it was read from, number of classes): stored with results."""

    def splits(self, *names: str) -> tuple[ImageSet, ...]:
        return tuple(self.split(n) for n in names)

    def check_space(self, space) -> None:
        """Refuse a space whose input channels or class count do not fit this dataset, before a
        tensor-size error or a meaningless figure."""
        if space.in_channels != self.channels or space.n_classes != len(self.classes):
            raise DataError(f"Space '{space.name}' takes {space.in_channels}-channel images and {space.n_classes} "
                            f"classes; dataset '{self.describe()['name']}' has {self.channels}-channel images and "
                            f"{len(self.classes)} classes. Pass --data with a dataset that fits the space, or a "
                            "space that fits the data.")
