"""Measure one ONNX model on one device: latency (raw and reference-normalised), peak memory, energy."""

from __future__ import annotations

import os
from pathlib import Path

from hwnas.devices.base import Device, LoadedModel
from hwnas.devices.memory import PeakMemory
from hwnas.devices.reference import REFERENCES, pick_reference, reference_onnx
from hwnas.devices.timing import TimingConfig, time_interleaved, time_runner, warm_up
from hwnas.fileio import file_sha256
from hwnas.types import Measurement, utc_now


class ReferenceSet:
    """Loaded reference models of one device, kept warm across measurements."""

    def __init__(self, device: Device, names: list[str] | None = None, directory=None) -> None:
        self.device = device
        self.models: dict[str, LoadedModel] = {}
        self.probe_ms: dict[str, float] = {}
        for n in names or list(REFERENCES):
            m = device.load(reference_onnx(n, directory))
            self.models[n] = m
            self.probe_ms[n] = warm_up(m.run, TimingConfig.quick())[1]

    def choose(self, model_ms: float) -> str:
        return pick_reference(model_ms, self.probe_ms)


def measure_model(
    device: Device,
    onnx_path: str | os.PathLike,
    timing: TimingConfig = TimingConfig(),
    references: ReferenceSet | None = None,
    reference: str = "auto",
    subject: str | None = None,
    energy_meter=None,
) -> Measurement:
    """Load ``onnx_path`` on ``device`` and measure it.

    ``reference``: ``"auto"`` (the closest-latency reference of ``references``), a
    reference name, or ``"none"`` for plain timing. Peak memory covers loading
    and running the model. ``energy_meter`` (see :mod:`hwnas.devices.energy`)
    adds energy per inference over a separate plain timed loop.
    """
    onnx_path = Path(onnx_path)
    with PeakMemory() as pm:
        model = device.load(onnx_path)
        if reference == "none":
            stats, ratio = time_runner(model.run, timing), None
        else:
            refs = references if references is not None else ReferenceSet(device)
            _, est = warm_up(model.run, timing)
            name = refs.choose(est) if reference == "auto" else reference
            stats, ratio, _ = time_interleaved(model.run, refs.models[name].run, timing, name)
    energy_mj, energy_note = None, ""
    if energy_meter is not None:
        energy_mj, energy_note = energy_meter.per_inference_mj(model.run, timing)
    model.close()
    return Measurement(
        subject=subject or onnx_path.stem,
        model_sha256=file_sha256(onnx_path),
        device_id=device.spec().id(),
        stats=stats,
        ref=ratio,
        peak_memory_mb=pm.peak_mb,
        energy_mj=energy_mj,
        energy_note=energy_note or ("" if energy_meter is not None else "no energy meter on this device"),
        when=utc_now(),
        extra={"memory_note": pm.reason} if pm.reason else {},
    )
