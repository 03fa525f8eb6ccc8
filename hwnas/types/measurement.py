"""What a device is and what one measurement on it found: ``DeviceSpec``, ``LatencyStats``,
``ReferenceRatio``, ``Measurement`` — and the one UTC timestamp helper every record uses."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from hwnas.errors import ConfigError
from hwnas.types.arch import stable_hash


def utc_now() -> str:
    """Now, in UTC, ISO 8601 to the second: the timestamp of every profile row, session, model and bundle."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DeviceSpec:
    """Identity of a measurement target; ``id()`` hashes everything that changes latency."""

    hardware: str
    runtime: str
    runtime_version: str
    provider: str = "CPU"
    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 1
    options: tuple[tuple[str, str], ...] = ()

    def id(self) -> str:
        return stable_hash(self.to_dict(), 12)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSpec:
        kw = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        kw["options"] = tuple(sorted((str(k), str(v)) for k, v in dict(data.get("options", {})).items()))
        return cls(**kw)


# --------------------------------------------------------------------------- measurements
SPREAD_LIMIT = 0.25
"""(p90 - p10) / median above which a timing is flagged as too noisy to trust."""


@dataclass(frozen=True)
class LatencyStats:
    """Summary of raw latency samples in milliseconds. Quote the median; min/p10 are steadier."""

    median_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    n_runs: int
    n_warmup: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], n_warmup: int) -> LatencyStats:
        import numpy as np

        a = np.asarray(samples_ms, dtype=float)
        if a.size == 0:
            raise ConfigError("No latency samples: raise the run count or the time budget.")
        return cls(
            median_ms=float(np.median(a)),
            min_ms=float(a.min()),
            p10_ms=float(np.percentile(a, 10)),
            p90_ms=float(np.percentile(a, 90)),
            mean_ms=float(a.mean()),
            std_ms=float(a.std()),
            n_runs=int(a.size),
            n_warmup=int(n_warmup),
        )

    @property
    def spread(self) -> float:
        """Relative inter-decile spread, (p90 - p10) / median."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else math.inf

    @property
    def unstable(self) -> bool:
        return self.spread > SPREAD_LIMIT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ReferenceRatio:
    """Latency relative to a reference model timed in interleaved bursts.

    ``ratio`` is the median over bursts of (model median / reference median);
    ``ref_median_ms`` is the reference's median over the same bursts;
    ``ratio_spread`` is (p90 - p10) / median of the per-burst ratios.
    """

    ratio: float
    ref_median_ms: float
    ratio_spread: float
    n_bursts: int
    reference: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MEASUREMENT_COLUMNS: dict[str, type] = {
    "model_sha256": str, "when": str,
    "median_ms": float, "min_ms": float, "p10_ms": float, "p90_ms": float, "mean_ms": float, "std_ms": float,
    "n_runs": int, "n_warmup": int, "spread": float, "unstable": bool,
    "ref_name": str, "ref_ratio": float, "ref_ratio_spread": float, "ref_n_bursts": int, "ref_session_ms": float,
    "peak_memory_mb": float, "energy_mj": float, "energy_note": str,
}
"""The one flat form of a :class:`Measurement`: column name → type. Profile tables, ``measure --json``
and bundles use these names (``latency_ms``, the figure on a profile's scale, is added by whoever
knows the scale)."""


@dataclass(frozen=True)
class Measurement:
    """One measured model on one device.

    ``stats`` are the raw timings of this run; ``ref`` the ratio to a reference model timed in
    interleaved bursts — the figure that is repeatable across minutes on a drifting machine.
    :meth:`latency_on` puts it on a scale (ratio × a fixed latency of that reference);
    :attr:`normalized_ms` uses the reference's latency in this very run.
    """

    subject: str
    model_sha256: str
    device_id: str
    stats: LatencyStats
    ref: ReferenceRatio | None = None
    peak_memory_mb: float | None = None
    energy_mj: float | None = None
    energy_note: str = ""
    when: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def normalized_ms(self) -> float | None:
        return None if self.ref is None else self.ref.ratio * self.ref.ref_median_ms

    def latency_on(self, scale: Mapping[str, float]) -> float:
        """Reference ratio × ``scale[reference]`` (ms): this measurement on a fixed scale, e.g. a
        profile's canonical reference latencies. A reference missing from ``scale`` is added at this
        run's own reference latency (so the first measurement fixes the scale)."""
        if self.ref is None:
            raise ConfigError(f"'{self.subject}' was timed without a reference: it cannot be put on a scale.")
        base = scale.get(self.ref.reference)
        if base is None and isinstance(scale, dict):
            base = scale.setdefault(self.ref.reference, self.ref.ref_median_ms)
        if base is None:
            raise ConfigError(f"No latency of reference '{self.ref.reference}' on this scale ({sorted(scale)}).")
        return self.ref.ratio * base

    def columns(self) -> dict[str, Any]:
        """The flat form (:data:`MEASUREMENT_COLUMNS`)."""
        s, r = self.stats, self.ref
        return {
            "model_sha256": self.model_sha256, "when": self.when, **asdict(s), "spread": s.spread,
            "unstable": s.unstable,
            "ref_name": r.reference if r else None, "ref_ratio": r.ratio if r else None,
            "ref_ratio_spread": r.ratio_spread if r else None, "ref_n_bursts": r.n_bursts if r else None,
            "ref_session_ms": r.ref_median_ms if r else None,
            "peak_memory_mb": self.peak_memory_mb, "energy_mj": self.energy_mj, "energy_note": self.energy_note,
        }

    @classmethod
    def from_columns(cls, row: Mapping[str, Any], subject: str = "", device_id: str = "") -> Measurement:
        """Rebuild from :meth:`columns` output or a profile row (NaN reads as missing)."""
        def get(k):
            v = row.get(k)
            try:
                return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
            except TypeError:
                return v

        stats = LatencyStats(**{f.name: (int if f.type == "int" else float)(get(f.name) or 0)
                                for f in fields(LatencyStats)})
        ref = None
        if get("ref_ratio") is not None:
            ref = ReferenceRatio(float(get("ref_ratio")), float(get("ref_session_ms")),
                                 float(get("ref_ratio_spread") or 0.0), int(get("ref_n_bursts") or 0),
                                 str(get("ref_name")))
        mem, en = get("peak_memory_mb"), get("energy_mj")
        return cls(subject, str(get("model_sha256") or ""), device_id, stats, ref,
                   None if mem is None else float(mem), None if en is None else float(en),
                   str(get("energy_note") or ""), str(get("when") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "device_id": self.device_id, **self.columns(),
                "normalized_ms": self.normalized_ms, **self.extra}
