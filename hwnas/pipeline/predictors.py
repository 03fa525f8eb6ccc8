"""Latency models for the device at hand: a profile's model, checked and calibrated there first.

Every job that predicts for a device (``predict``, ``search`` and its closed loop, the quickstart)
asks :func:`device_latency_model`, never the profile's model directly, so no stored millisecond
reaches a user unchecked: the model comes back calibrated to this device now
(:mod:`hwnas.profiling.calibration`), used as is when the profile was just measured on this very
host, or — only when asked with ``calibrate=False`` — labelled uncalibrated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hwnas.types import Say

UNCALIBRATED = "uncalibrated: the profile's own milliseconds, not checked on this device"


@dataclass(frozen=True)
class DeviceModel:
    """A latency model for one device, the base model it stands on, how it was checked, and the
    calibration record (None when none was needed or asked for)."""

    model: Any
    base: Any
    note: str
    calibrated: bool
    calibration: Any = None


def base_model(prof, space: str, target: str = "latency_ms", name: str | None = None, say: Say | None = None):
    """The profile's stored model for ``target`` (fitted, scored and stored when it has none — kept in
    memory only for a read-only profile)."""
    from hwnas.latency_models import predictor_for

    return predictor_for(prof, space, target, name, say)


def device_latency_model(prof, space: str, device, checkpoint: str | os.PathLike | None = None,
                         model: str | None = None, calibrate: bool = True, say: Say | None = None) -> DeviceModel:
    """The profile's latency model made to predict ``device``'s milliseconds now (see the module doc)."""
    from hwnas.pipeline.jobs import subnet_builder
    from hwnas.profiling.calibration import calibrate as run_calibration
    from hwnas.profiling.calibration import find_fresh, measured_here

    base = base_model(prof, space, "latency_ms", model, say)
    if not calibrate:
        return DeviceModel(base, base, UNCALIBRATED, False)
    if measured_here(prof, device):
        return DeviceModel(base, base, f"profile {prof.root.name} was measured on this host with these settings: "
                                       "used as is", True)
    rec = find_fresh(prof, space, device)
    if rec is not None:
        say and say(f"{rec.line()} (fresh, {rec.age_h():.1f} h old)")
    else:
        from hwnas.profiling.precision import in_precision

        build = in_precision(device, subnet_builder(space, checkpoint, device.batch_size)[0])  # INT8: quantized
        rec = run_calibration(prof, space, device, base, build, say=say)
    return DeviceModel(rec.transfer(), base, rec.line(), True, rec)


def refit_on_device(dm: DeviceModel, archs, measured_ms, space: str):
    """A transfer from the base model fitted on the calibration's measurements plus new ones
    (the closed loop's), all milliseconds of this device."""
    from hwnas.latency_models.transfer import from_models
    from hwnas.types import ArchConfig

    pts_a, pts_y = list(archs), list(measured_ms)
    if dm.calibration is not None:
        pts_a = [ArchConfig.parse(a) for a in dm.calibration.archs] + pts_a
        pts_y = list(dm.calibration.measured_ms) + pts_y
    return from_models([dm.base]).fit(pts_a, pts_y, None, space=space)


def predict(prof, archs, device: str | None = None, threads: int | None = None, model: str | None = None,
            calibrate: bool = True, coverage: float = 0.9, checkpoint=None, say: Say | None = None):
    """Per arch: latency on the device (calibrated, with its ``coverage`` interval), and the profile's
    memory / energy models' figures where it stores them; plus how latency was checked."""
    from hwnas.errors import NotFittedError
    from hwnas.latency_models import predict_all
    from hwnas.pipeline.jobs import profile_device

    space = archs[0].space
    prof.check_space(space)
    dev = profile_device(prof, device, threads) if calibrate else None
    dm = device_latency_model(prof, space, dev, checkpoint, model, calibrate, say)
    others = predict_all(prof, archs) if prof.list_models(space) else [{"models": {}} for _ in archs]
    try:
        pred, lo, hi = dm.model.predict_interval(archs, coverage)
    except NotFittedError:
        pred = dm.model.predict(archs)
        lo = hi = [None] * len(archs)
    rows = []
    for a, p, low, high, o in zip(archs, pred, lo, hi, others):
        r = {"arch": a.to_str(), "key": a.key(), "latency_ms": float(p),
             "latency_ms_interval": None if low is None else [float(low), float(high)], "coverage": coverage,
             "models": {**o.get("models", {}), "latency_ms": dm.model.name}, "calibration": dm.note}
        r.update({k: v for k, v in o.items() if k not in ("arch", "key", "models", "latency_ms")})
        rows.append(r)
    return rows
