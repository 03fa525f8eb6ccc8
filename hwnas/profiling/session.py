"""One measuring session on a profile: reference calibration, then one row per measured model.

A session is one process writing to a profile. It loads the reference models on the device,
and — the first time a profile is measured into — fixes the profile's *canonical* reference
latencies: the primary reference (``ref-medium``) timed plainly, the others through their
interleaved ratio to it (so all canonical figures describe the same moment). Each later session
records its own reference latency, so drift between sessions is visible (``quality``).

Every row stores the raw statistics, the reference ratio, the normalised ``latency_ms``
(ratio × canonical latency of the reference used), measured peak memory, the analytic memory of
the ONNX graph, energy where a meter exists (else the reason in ``energy_note``) and what the
runtime really ran (``runtime_graph``: the fused kernels, with per-kernel times and shapes where
the backend can profile kernels).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import Any

from hwnas.devices.base import Device
from hwnas.devices.reference import REFERENCES
from hwnas.errors import ProfileError
from hwnas.profiles.profile import DeviceProfile
from hwnas.profiles.schema import ProfileRow
from hwnas.types import Measurement, utc_now

PRIMARY_REFERENCE = "ref-medium"
RETRY_SPREAD = 0.25
"""Ratio spread (p90-p10)/median over bursts above which a measurement is taken again."""
RETRY_REF_DRIFT = 0.15
"""Relative distance of the reference's latency during a measurement from its recent typical
value above which the measurement counts as hit by a transient burst of foreign load (the ratio
does not cancel such load well: a contended CPU slows different networks by different factors)
and is taken again. A row whose reference moved that far from its *canonical* latency is
flagged ``unstable`` (a persistent change of machine state, which retrying cannot undo)."""
RETRIES = 2
RETRY_PAUSE_S = 0.5


class MeasureSession:
    """Measure models on ``device`` into ``prof`` (which must be open for writing).

    Only the device's verbs are used (``measure``, ``runtime_graph``, ``energy_status``), so a
    board reached over a cluster is measured exactly like this machine.
    """

    def __init__(self, prof: DeviceProfile, device: Device, energy: bool = True, kernel_times: bool = True,
                 note: str = "", retries: int = RETRIES, config: dict | None = None) -> None:
        from collections import deque

        from hwnas.devices.reference import reference_onnx
        from hwnas.fileio import file_sha256

        spec = device.spec()
        if spec.id() != prof.device_id:
            raise ProfileError(
                f"Profile '{prof.root}' was measured on {_describe(prof.spec.to_dict())}; this device is "
                f"{_describe(spec.to_dict())}. Profile it into another --out directory."
            )
        self.prof, self.device, self.retries = prof, device, int(retries)
        self._recent_ref: deque[float] = deque(maxlen=9)
        self.kernel_times = kernel_times
        if not prof.meta.get("reference", {}).get("ms"):
            prof.update_meta(reference={
                "primary": PRIMARY_REFERENCE, "ms": reference_latencies(device), "calibrated": utc_now(),
                "sha256": {n: file_sha256(reference_onnx(n)) for n in REFERENCES}})
        self.canonical = prof.reference_ms_by_name
        domain, why = device.energy_status() if energy else (None, "energy measurement switched off")
        self.energy = energy and domain is not None
        self.energy_note = "" if self.energy else f"no energy meter: {why}"
        if not prof.meta.get("energy"):
            prof.update_meta(energy={"meter": domain, "why": why})
        if not prof.meta.get("memory"):
            prof.update_meta(memory={
                "peak_memory_mb": "measured: peak resident memory (VmHWM) of loading and running the model, "
                                  "MiB over the process's size before loading",
                "analytic_memory_mb": "computed: ONNX initializers + peak live activations by tensor lifetimes"})
        ref_now = primary_latency(device, 3)
        self._recent_ref.append(ref_now / prof.reference_ms)
        self.session_id = len(prof.sessions)
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        prof.update_meta(sessions=prof.sessions + [{
            "id": self.session_id, "started": utc_now(), "primary_ms": ref_now,
            "drift_vs_canonical": ref_now / prof.reference_ms - 1.0, "loadavg": load, "note": note,
            "host": device.host_facts(), "config": config}])

    # ------------------------------------------------------------------ one model
    def measure(self, onnx_path: str | os.PathLike, timing, energy: bool = True) -> tuple[Measurement, dict[str, Any]]:
        """``(measurement, derived columns)`` for the model at ``onnx_path``: re-measured when a burst
        of foreign load hit it; derived = analytic memory, what the runtime ran, ``unstable``."""
        from hwnas.devices.onnx_memory import model_memory

        energy = energy and self.energy
        m = self.device.measure(onnx_path, timing, energy=energy)
        for _ in range(self.retries):
            if not self._transient(m):
                break
            time.sleep(RETRY_PAUSE_S)  # let a burst of foreign load pass, then measure again
            m2 = self.device.measure(onnx_path, timing, energy=energy)
            m = min((m, m2), key=self._badness)
        self._recent_ref.append(self._ref_level(m))
        if not energy:
            note = self.energy_note if self.energy_note else "energy not measured for ops"
            m = replace(m, energy_mj=None, energy_note=note)
        mem = model_memory(onnx_path)
        derived = {"weights_mb": mem.weights_mb, "activations_mb": mem.peak_activations_mb,
                   "analytic_memory_mb": mem.total_mb,
                   "runtime_graph": json.dumps(self.device.runtime_graph(onnx_path, self.kernel_times),
                                               separators=(",", ":"))}
        # a row whose reference moved far from its canonical latency is flagged too (a persistent change
        # of machine state, which retrying cannot undo)
        derived["unstable"] = bool(m.stats.unstable or self._disturbed(m))
        return m, derived

    def row(self, table: str, identity: dict[str, Any], onnx_path: str | os.PathLike, timing,
            energy: bool = True) -> ProfileRow:
        """Measure ``onnx_path`` and build its profile row on this profile's scale."""
        m, derived = self.measure(onnx_path, timing, energy)
        return ProfileRow(table, identity, m, m.latency_on(self.canonical), self.session_id, derived)

    def _ref_level(self, m) -> float:
        """The reference's latency during this measurement relative to its canonical figure."""
        return m.ref.ref_median_ms / self.canonical[m.ref.reference]

    def _typical_level(self) -> float:
        import numpy as np

        return float(np.median(self._recent_ref)) if self._recent_ref else 1.0

    def _transient(self, m) -> bool:
        """Hit by a short burst of foreign load: wide ratio spread, or the reference far from its recent level."""
        return (m.ref.ratio_spread > RETRY_SPREAD
                or abs(self._ref_level(m) / self._typical_level() - 1.0) > RETRY_REF_DRIFT)

    def _disturbed(self, m) -> bool:
        return m.ref.ratio_spread > RETRY_SPREAD or abs(self._ref_level(m) - 1.0) > RETRY_REF_DRIFT

    def _badness(self, m) -> float:
        return max(m.ref.ratio_spread / RETRY_SPREAD,
                   abs(self._ref_level(m) / self._typical_level() - 1.0) / RETRY_REF_DRIFT)


def primary_latency(device: Device, rounds: int = 5) -> float:
    """Median of ``rounds`` short plain timings of the primary reference on ``device`` (ms): one burst
    of interference moves one of them, not the figure."""
    import numpy as np

    from hwnas.devices.reference import reference_onnx
    from hwnas.devices.timing import TimingConfig

    cfg = TimingConfig(warmup=5, runs=60, min_runs=10, budget_s=0.2)
    path = reference_onnx(PRIMARY_REFERENCE)
    return float(np.median([device.measure(path, cfg, reference="none").stats.median_ms for _ in range(rounds)]))


def reference_latencies(device: Device) -> dict[str, float]:
    """The latency of every reference model on ``device`` now (ms): the primary timed plainly, the others
    through their interleaved ratio to it, so all describe the same moment. A profile's canonical
    scale, and the scale of every run that reports this device's milliseconds."""
    from hwnas.devices.reference import reference_onnx
    from hwnas.devices.timing import TimingConfig

    primary = primary_latency(device)
    out = {PRIMARY_REFERENCE: primary}
    for name in REFERENCES:
        if name != PRIMARY_REFERENCE:
            m = device.measure(reference_onnx(name), TimingConfig(bursts=8), reference=PRIMARY_REFERENCE)
            out[name] = m.ref.ratio * primary
    return out


def _describe(spec: dict[str, Any]) -> str:
    return (f"{spec.get('hardware')} / {spec.get('runtime')} {spec.get('runtime_version')} "
            f"({spec.get('provider')}, {spec.get('precision')}, {spec.get('threads')} thread(s), "
            f"batch {spec.get('batch_size')}, options {spec.get('options')})")
