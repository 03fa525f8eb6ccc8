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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hwnas.errors import ProfileError
from hwnas.profiles.profile import DeviceProfile

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
    """Measure ONNX models on ``device`` into ``prof`` (which must be open for writing)."""

    def __init__(self, prof: DeviceProfile, device, energy: bool = True, kernel_times: bool = True,
                 note: str = "", retries: int = RETRIES) -> None:
        from hwnas.devices.measure import ReferenceSet, now_iso
        from hwnas.devices.reference import reference_onnx
        from hwnas.fileio import file_sha256

        spec = device.spec()
        if spec.id() != prof.device_id:
            raise ProfileError(
                f"Profile '{prof.root}' was measured on {_describe(prof.spec.to_dict())}; this device is "
                f"{_describe(spec.to_dict())}. Profile it into another --out directory."
            )
        self.prof, self.device, self.retries = prof, device, int(retries)
        from collections import deque

        self._recent_ref: deque[float] = deque(maxlen=9)
        self.kernel_times = kernel_times and callable(getattr(device, "kernel_profile", None))
        self.refs = ReferenceSet(device)
        if not prof.meta.get("reference", {}).get("ms"):
            prof.update_meta(reference={
                "primary": PRIMARY_REFERENCE, "ms": self._calibrate(), "calibrated": now_iso(),
                "sha256": {n: file_sha256(reference_onnx(n)) for n in self.refs.models}})
        self.canonical = prof.reference_ms_by_name
        self.meter, why = (None, "energy measurement switched off")
        if energy:
            from hwnas.devices.energy import detect_energy_meter

            self.meter, why = detect_energy_meter(spec.provider)
        self.energy_note = "" if self.meter is not None else f"no energy meter: {why}"
        if not prof.meta.get("energy"):
            prof.update_meta(energy={"meter": None if self.meter is None else self.meter.domain, "why": why})
        if not prof.meta.get("memory"):
            prof.update_meta(memory={
                "peak_memory_mb": "measured: peak resident memory (VmHWM) of loading and running the model, "
                                  "MiB over the process's size before loading",
                "analytic_memory_mb": "computed: ONNX initializers + peak live activations by tensor lifetimes"})
        ref_now = self._time_primary(3)
        self._recent_ref.append(ref_now / prof.reference_ms)
        self.session_id = len(prof.sessions)
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        prof.update_meta(sessions=prof.sessions + [{
            "id": self.session_id, "started": now_iso(), "primary_ms": ref_now,
            "drift_vs_canonical": ref_now / prof.reference_ms - 1.0, "loadavg": load, "note": note}])

    # ------------------------------------------------------------------ references
    def _time_primary(self, rounds: int = 5) -> float:
        """Median of ``rounds`` short plain timings of the primary reference (ms): one burst of
        interference moves one of them, not the figure."""
        import numpy as np

        from hwnas.devices.timing import TimingConfig, time_runner

        run = self.refs.models[PRIMARY_REFERENCE].run
        cfg = TimingConfig(warmup=5, runs=60, min_runs=10, budget_s=0.2)
        return float(np.median([time_runner(run, cfg).median_ms for _ in range(rounds)]))

    def _calibrate(self) -> dict[str, float]:
        from hwnas.devices.timing import TimingConfig, time_interleaved

        primary = self._time_primary()
        out = {PRIMARY_REFERENCE: primary}
        for name, m in self.refs.models.items():
            if name != PRIMARY_REFERENCE:
                _, ratio, _ = time_interleaved(m.run, self.refs.models[PRIMARY_REFERENCE].run,
                                               TimingConfig(bursts=8), PRIMARY_REFERENCE)
                out[name] = ratio.ratio * primary
        return out

    # ------------------------------------------------------------------ one model
    def measure(self, onnx_path: str | os.PathLike, timing, energy: bool = True) -> dict[str, Any]:
        """Columns common to op and model rows for the model at ``onnx_path``."""
        from hwnas.devices.measure import measure_model
        from hwnas.devices.onnx_memory import analytic_memory

        meter = self.meter if energy else None
        m = measure_model(self.device, onnx_path, timing, self.refs, energy_meter=meter)
        for _ in range(self.retries):
            if not self._transient(m):
                break
            time.sleep(RETRY_PAUSE_S)  # let a burst of foreign load pass, then measure again
            m2 = measure_model(self.device, onnx_path, timing, self.refs, energy_meter=meter)
            m = min((m, m2), key=self._badness)
        self._recent_ref.append(m.ref.ref_median_ms / self.canonical[m.ref.reference])
        s, ref = m.stats, m.ref
        mem = analytic_memory(onnx_path)
        row: dict[str, Any] = {
            "session": self.session_id, "when": m.when, "model_sha256": m.model_sha256,
            **{k: v for k, v in asdict(s).items()}, "spread": s.spread,
            "unstable": bool(s.unstable or self._disturbed(m)),
            "ref_name": ref.reference, "ref_ratio": ref.ratio, "ref_ratio_spread": ref.ratio_spread,
            "ref_n_bursts": ref.n_bursts, "ref_session_ms": ref.ref_median_ms,
            "latency_ms": ref.ratio * self.canonical[ref.reference],
            "peak_memory_mb": m.peak_memory_mb, "weights_mb": mem.weights_mb,
            "activations_mb": mem.peak_activations_mb, "analytic_memory_mb": mem.total_mb,
            "energy_mj": m.energy_mj,
            "energy_note": m.energy_note if m.energy_mj is not None else (self.energy_note if energy else
                                                                         "energy not measured for ops"),
            "runtime_graph": json.dumps(self.runtime_graph(onnx_path), separators=(",", ":")),
        }
        return row

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

    def runtime_graph(self, onnx_path: str | os.PathLike) -> dict[str, Any] | None:
        """What the runtime ran: per-kernel records from the backend's kernel profiler where it has
        one (times are inflated by profiling: use them as shares), else the optimised graph."""
        if self.kernel_times:
            ks = self.device.kernel_profile(onnx_path, runs=10)
            return {"source": "kernel_profile", "kernels": ks}
        model = self.device.load(Path(onnx_path))
        try:
            for _ in range(5):  # per-layer counters (where the backend keeps them) fill while it runs
                model.run()
            g = model.runtime_graph()
        finally:
            model.close()
        if g is None:
            return None
        out = {"source": "runtime_graph", **g}
        timed = [p for p in g.get("profiling") or [] if float(p.get("us") or 0) > 0]
        if timed:  # per-layer times (e.g. OpenVINO with PERF_COUNT): the same shape as ORT's kernel records
            out["kernels"] = [{"node": p["name"], "op": p.get("op", ""), "us": float(p["us"])} for p in timed]
        return out


def _describe(spec: dict[str, Any]) -> str:
    return (f"{spec.get('hardware')} / {spec.get('runtime')} {spec.get('runtime_version')} "
            f"({spec.get('provider')}, {spec.get('precision')}, {spec.get('threads')} thread(s), "
            f"batch {spec.get('batch_size')}, options {spec.get('options')})")
