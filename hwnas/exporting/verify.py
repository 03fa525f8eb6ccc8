"""Verify a deployment bundle on a device: integrity first, then accuracy and latency re-measured.

Integrity (:meth:`DeploymentBundle.open`) refuses a bundle with any edited byte. Accuracy is
re-measured on the manifest's split of the same dataset; latency interleaved with the manifest's
reference and put on the manifest's scale, so the comparison cancels machine drift.
"""

from __future__ import annotations

import os

from hwnas.devices.base import Device
from hwnas.exporting.bundle import DeploymentBundle
from hwnas.exporting.evaluate import DeviceEvaluator
from hwnas.types import Check, Verification

LATENCY_TOLERANCE = 0.15
ACCURACY_TOLERANCE_PTS = 0.1


def verify(bundle: str | os.PathLike | DeploymentBundle, device: Device | None = None,
           latency_tolerance: float = LATENCY_TOLERANCE, accuracy_tolerance: float = ACCURACY_TOLERANCE_PTS,
           data: str | None = None) -> Verification:
    """Check ``bundle`` and re-measure it on ``device`` (default: the manifest's device here)."""
    from hwnas.datasets import get_dataset
    from hwnas.devices import get_device

    b = bundle if isinstance(bundle, DeploymentBundle) else DeploymentBundle.open(bundle)
    m = b.manifest
    dev = device or get_device(m.device["name"], threads=m.device["threads"],
                               precision=m.device.get("precision", "fp32"))
    split = get_dataset(data, m.space).split(m.accuracy.split)
    lat = m.latency
    ev = DeviceEvaluator(dev, split, m.preprocess["resolution"], {lat.reference: lat.reference_ms})
    acc = ev.accuracy(b.file(m.deployed))
    meas = ev.measure(b.file(m.deployed), reference=lat.reference)
    ms = meas.latency_on(ev.scale)
    rel = ms / lat.measured_ms - 1.0
    diff = acc - m.accuracy.deployed_top1
    return Verification(
        bundle=str(b.path), device=dev.name,
        accuracy=Check(m.accuracy.deployed_top1, acc, diff, accuracy_tolerance, abs(diff) <= accuracy_tolerance),
        latency=Check(lat.measured_ms, ms, rel, latency_tolerance, abs(rel) <= latency_tolerance),
        latency_ms=ms, raw_median_ms=meas.stats.median_ms)
