"""Verify a deployment bundle on a device: integrity first, then accuracy and latency re-measured.

Integrity (:meth:`DeploymentBundle.open`) refuses a bundle with any edited byte. Accuracy is
re-measured on the manifest's split of the same dataset (by default the one the manifest names —
an image folder by its path; data whose fingerprint differs from the manifest's is refused);
latency interleaved with the manifest's reference and put on the manifest's scale, so the
comparison cancels machine drift. A bundle of a derived space carries its definition
(``space.json``), registered here where the space is not known.
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
           data: str | None = None, data_options: dict[str, str] | None = None) -> Verification:
    """Check ``bundle`` and re-measure it on ``device`` (default: the manifest's device here)."""
    from hwnas.devices import get_device

    b = bundle if isinstance(bundle, DeploymentBundle) else DeploymentBundle.open(bundle)
    m = b.manifest
    register_bundle_space(b)
    dev = device or get_device(m.device["name"], threads=m.device["threads"],
                               precision=m.device.get("precision", "fp32"), batch_size=m.device.get("batch_size", 1))
    split = bundle_data(m, data, data_options).split(m.accuracy.split)
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


def bundle_data(manifest, data: str | None = None, options: dict[str, str] | None = None):
    """The dataset to re-check ``manifest``'s accuracy on: ``data``, else the one it records (an
    image folder at its recorded path, else the space's own); refused when its fingerprint is
    not the manifest's."""
    from hwnas.datasets import open_dataset
    from hwnas.errors import DataError

    rec = manifest.dataset or {}
    if data is None and rec.get("name") == "image-folder" and rec.get("root"):
        data = rec["root"]
    ds = open_dataset(data, manifest.space, options)
    want = rec.get("fingerprint")
    if want is not None and ds.fingerprint() != want:
        raise DataError(f"The bundle's accuracy was measured on {rec.get('name')} (fingerprint {want}); --data "
                        f"{data or ds.describe()['name']} is {ds.describe()['name']} (fingerprint {ds.fingerprint()}): "
                        "pass the dataset the bundle was exported with, or export again with this --data.")
    return ds


def register_bundle_space(b: DeploymentBundle) -> None:
    """Register the derived space a bundle carries (``space.json``) where it is not known yet."""
    from hwnas.registry import SPACES

    f = b.file("space.json")
    if f.is_file() and b.manifest.space not in SPACES:
        import json

        from hwnas.supernet.derive import register_space, space_from_dict

        d = json.loads(f.read_text())
        register_space(space_from_dict(d), d.get("derived_from", ""))
