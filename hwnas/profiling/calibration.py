"""Calibration: a stored profile checked on the device at hand before its milliseconds are used.

A profile is a fact about the machine and the conditions it was measured on. On another machine
of the same kind its subnets can run 11–15 % faster while the reference network does not move, so
reference normalisation cannot see it; on another runtime or precision the landscape changes
more. Before a profile predicts for a device, hwnas measures the profile's fixed reference subnets
there (at most 20, about a minute), fits a :class:`~hwnas.latency_models.transfer.TransferModel`
from the profile's own model to those measurements, and reports it in one line. The calibrated
model predicts this device's milliseconds *now* (the measurements are put on the reference
latencies measured at the start of the calibration, so drift during it cancels).

A calibration is *fresh* — reused without measuring — when it was made for the same profile
(content id), the same device settings (spec id) and the same host (CPU, cores, memory, ISA,
kernel, boot), less than :data:`MAX_AGE_H` hours ago. A profile measured on this very host and
boot within that time needs none. Records are JSON: in the profile's ``calibrations/`` folder, or,
for a read-only (shipped) profile, in the user cache.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.devices.base import Device, host_fingerprint
from hwnas.errors import ProfileError
from hwnas.profiles import DeviceProfile
from hwnas.types import ArchConfig, Say, utc_now

MAX_SUBNETS = 20
BUDGET_S = 60.0
MAX_AGE_H = float(os.environ.get("HWNAS_CALIBRATION_MAX_AGE_H", 24))
FORMAT = "hwnas-calibration"
VERSION = 1

POOR_LOO = 0.8
"""Below this leave-one-out share within ±10 % a calibration is reported as holding poorly."""


@dataclass(frozen=True)
class Calibration:
    """One check of a profile on a device: what was measured, the transfer fitted, how well it holds."""

    profile: str
    profile_id: str
    space: str
    device: dict[str, Any]
    device_id: str
    host: dict[str, Any]
    when: str
    archs: list[str]
    measured_ms: list[float]
    predicted_ms: list[float]
    reference_ms: dict[str, float]
    model: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    def transfer(self):
        from hwnas.latency_models.base import model_from_json

        return model_from_json(self.model, f"calibration of {self.profile}")

    def line(self) -> str:
        s = self.summary
        return (f"profile {Path(self.profile).name} transferred to this host ({self.device.get('runtime')} "
                f"{self.device.get('precision')}, {self.device.get('threads')} thread(s)): {s['transfer']} from "
                f"{s['n']} subnets in {s['seconds']:.0f} s; leave-one-out {s['loo_within_10']:.0%} within ±10 %, "
                f"{s['loo_within_5']:.0%} within ±5 %")

    def age_h(self) -> float:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(self.when)).total_seconds() / 3600

    def fresh_for(self, prof: DeviceProfile, device: Device) -> bool:
        return (self.profile_id == prof.content_id() and self.device_id == device.spec().id()
                and self.host == host_fingerprint(device.host_facts()) and self.age_h() < MAX_AGE_H)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise ProfileError("Not a calibration record of this hwnas version: it will be measured again.")
        return cls(**{k: v for k, v in d.items() if k not in ("format", "version")})


def store_dir(prof: DeviceProfile) -> Path:
    """Where a profile's calibrations live: inside it, or in the user cache for a read-only profile."""
    if not prof.shipped:
        d = prof.root / "calibrations"
        d.mkdir(exist_ok=True)
        return d
    from hwnas.fileio import cache_dir

    return cache_dir("calibrations", prof.content_id())


def _record_path(prof: DeviceProfile, space: str, device: Device) -> Path:
    from hwnas.types import stable_hash

    host = stable_hash(host_fingerprint(device.host_facts()), 10)
    return store_dir(prof) / f"{space}-{device.spec().id()}-{host}.json"


def find_fresh(prof: DeviceProfile, space: str, device: Device) -> Calibration | None:
    p = _record_path(prof, space, device)
    if not p.is_file():
        return None
    try:
        rec = Calibration.from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, ProfileError, TypeError):
        return None
    # a calibration that held poorly (a loaded machine) is measured again rather than served for a day
    held = rec.summary.get("loo_within_10", 1.0) >= POOR_LOO
    return rec if held and rec.fresh_for(prof, device) else None


def measured_here(prof: DeviceProfile, device: Device) -> bool:
    """The profile was measured with these settings on this very host and boot, recently."""
    if prof.device_id != device.spec().id():
        return False
    here = host_fingerprint(device.host_facts())
    recent = [s for s in prof.sessions if s.get("host") and host_fingerprint(s["host"]) == here]
    if not recent:
        return False
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(recent[-1]["started"])).total_seconds() / 3600
    return age < MAX_AGE_H


def calibration_archs(prof: DeviceProfile, space: str, n: int = MAX_SUBNETS) -> list[ArchConfig]:
    """The profile's fixed reference subnets (the same archs on every device), at most ``n``."""
    from hwnas.profiling.sampling import reference_archs

    names = prof.space_settings(space).get("reference_archs") or []
    archs = [ArchConfig.parse(a) for a in names] or reference_archs(space, n)
    return archs[:n]


def profile_timing(prof: DeviceProfile, space: str):
    """The timing loop the profile's end-to-end rows were measured with (``device.json`` records it).

    Calibration must time the same way: a shorter loop read about 1 % slower on an AMX Xeon (8 bursts
    of 30 ms against the profiles' 10 of 40 ms, 20 subnets interleaved: median ratio 1.009), and that
    bias goes straight into the fitted scale. Profiles without the record get the profiler's default.
    """
    from hwnas.devices.timing import TimingConfig
    from hwnas.profiling.profiler import _model_timing

    rec = prof.space_settings(space).get("model_timing")
    return TimingConfig.from_dict(rec) if isinstance(rec, dict) else _model_timing()


def calibrate(prof: DeviceProfile, space: str, device: Device, base, build_model: Callable[[ArchConfig, Path], Any],
              n: int = MAX_SUBNETS, budget_s: float = BUDGET_S, say: Say | None = None) -> Calibration:
    """Measure the profile's reference subnets on ``device`` now and fit the transfer from ``base``
    (the profile's latency model); the record is stored where :func:`store_dir` says."""
    import tempfile

    from hwnas.latency_models.transfer import from_models
    from hwnas.profiling.profiler import built
    from hwnas.profiling.session import reference_latencies

    t0 = time.perf_counter()
    scale = reference_latencies(device)
    archs, measured = [], []
    timing = profile_timing(prof, space)
    with tempfile.TemporaryDirectory(prefix="hwnas-calibrate-") as tmp:
        for a in calibration_archs(prof, space, n):
            if len(archs) >= 5 and time.perf_counter() - t0 > budget_s:
                break
            path = Path(tmp) / "model.onnx"
            measured.append(device.measure(built(build_model(a, path), path), timing).latency_on(scale))
            archs.append(a)
    if len(archs) < 3:
        raise ProfileError(f"Profile '{prof.root}' has only {len(archs)} reference subnets for '{space}': "
                           "calibration needs at least 3 (profile with --reference-set 20).")
    model = from_models([base], simplest_within_se=True).fit(archs, measured, None, space=space)
    m = model.metrics_
    rec = Calibration(str(prof.root), prof.content_id(), space, {"name": device.name, **device.spec().to_dict()},
                      device.spec().id(), host_fingerprint(device.host_facts()), utc_now(),
                      [a.to_str() for a in archs], measured, [float(v) for v in base.predict(archs)], scale,
                      model.to_json(), {"transfer": model.describe(), "n": len(archs),
                                        "seconds": time.perf_counter() - t0, "loo_within_10": m["within_10"],
                                        "loo_within_5": m["within_5"], "loo_mape": m["mape"],
                                        "source_model": base.name, "timing": timing.to_dict()})
    from hwnas.fileio import atomic_write_json

    atomic_write_json(_record_path(prof, space, device), rec.to_dict())
    if say is not None:
        say(rec.line())
        if m["within_10"] < POOR_LOO:
            say(f"warning: this calibration holds poorly (leave-one-out {m['within_10']:.0%} within ±10 %; load "
                f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) and its intervals are wide: re-run on a "
                f"quieter machine, or profile this device (hwnas profile --few-shot 20 --from {prof.root} ...).")
    return rec
