"""Accuracy and latency of an exported model *on the device*, through the device's verbs only.

Latency is measured interleaved with a reference model and put on one scale (the reference
ratio × a fixed latency of that reference: the search profile's canonical figure when the
profile was measured on this device, else the reference's latency the first time this evaluator
met it), so figures taken minutes apart — FP32 vs INT8 vs mixed, or export vs verify — are
comparable on a drifting machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hwnas.datasets.base import Split
from hwnas.devices.base import Device
from hwnas.devices.timing import TimingConfig
from hwnas.types import Measurement

EXPORT_TIMING = TimingConfig(runs=100, budget_s=1.5, bursts=8, burst_s=0.04)


class DeviceEvaluator:
    """Top-1 over ``split`` at ``resolution`` and latency on ``scale`` for models on ``device``."""

    def __init__(self, device: Device, split: Split, resolution: int, scale: dict[str, float] | None = None,
                 timing: TimingConfig = EXPORT_TIMING) -> None:
        self.device, self.split, self.resolution, self.timing = device, split, resolution, timing
        self.scale: dict[str, float] = scale if scale is not None else {}

    def accuracy(self, path: str | os.PathLike) -> float:
        """Top-1 (%) over the split's images, inferred at the deployed model's batch size."""
        labels: list[np.ndarray] = []

        def inputs():
            for x, y in self.split.batches(self.resolution):
                labels.append(y)
                yield x

        preds = np.concatenate([o.argmax(1) for o in self.device.outputs(Path(path), inputs())])
        return float((preds == np.concatenate(labels)).mean() * 100.0)

    def measure(self, path: str | os.PathLike, reference: str = "auto") -> Measurement:
        return self.device.measure(Path(path), self.timing, reference=reference)

    def latency(self, path: str | os.PathLike) -> float:
        """Milliseconds on this evaluator's scale."""
        return self.measure(path).latency_on(self.scale)
