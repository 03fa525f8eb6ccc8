"""Accuracy and latency of an exported model *on the device*, through the Device protocol.

Latency is measured interleaved with a reference model and reported reference-normalised
(``ratio × the reference's median the first time it was measured in this evaluator``), so
figures taken minutes apart — FP32 vs INT8 vs mixed, or export vs verify — are comparable
on a drifting machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hwnas.devices.measure import measure_model
from hwnas.devices.timing import TimingConfig

EXPORT_TIMING = TimingConfig(runs=100, budget_s=1.5, bursts=8, burst_s=0.04)


class DeviceEvaluator:
    def __init__(self, device, references, x: np.ndarray, y: np.ndarray, timing: TimingConfig = EXPORT_TIMING,
                 canonical: dict[str, float] | None = None) -> None:
        self.device, self.refs, self.x, self.y, self.timing = device, references, x, y, timing
        self.canonical: dict[str, float] = canonical if canonical is not None else {}

    def accuracy(self, path: str | os.PathLike) -> float:
        """Top-1 (%) over the evaluator's images, one inference per image as deployed."""
        m = self.device.load(Path(path))
        batch = m.input_shape[0]
        n = len(self.x) - len(self.x) % batch
        preds = np.concatenate([m.infer(self.x[i:i + batch]).reshape(batch, -1).argmax(1) for i in range(0, n, batch)])
        m.close()
        return float((preds == self.y[:n]).mean() * 100.0)

    def measure(self, path: str | os.PathLike, reference: str = "auto") -> dict:
        meas = measure_model(self.device, Path(path), self.timing, self.refs, reference=reference)
        ref = meas.ref
        base = self.canonical.setdefault(ref.reference, ref.ref_median_ms)
        return {"normalized_ms": ref.ratio * base, "median_ms": meas.stats.median_ms, "min_ms": meas.stats.min_ms,
                "ratio_spread": ref.ratio_spread, "reference": ref.reference, "peak_memory_mb": meas.peak_memory_mb}

    def latency(self, path: str | os.PathLike) -> float:
        return self.measure(path)["normalized_ms"]
