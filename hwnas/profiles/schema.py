"""The on-disk format of a device profile: file names, schema version, row columns and row keys.

A profile is a directory::

    device.json            what was measured where: DeviceSpec, host facts, runtime versions,
                           reference latencies, sessions, spaces profiled, energy/memory notes
    models.parquet         end-to-end rows (one subnet each)
    ops.parquet            block/op rows (one standalone layer model each)
    *.journal.jsonl        rows written since the last compaction (one JSON object per line)
    predictors/<space>/<target>/<name>.json    fitted latency/energy/memory models
    .lock                  held (flock) by the one process writing to the profile

Latency figures. Every row keeps the raw statistics of its timing run (``median_ms`` ...
``std_ms``) and the reference ratio (``ref_ratio``: model median / reference median over
interleaved bursts, against reference model ``ref_name``, whose median in those bursts was
``ref_session_ms``). ``latency_ms`` is the *normalised* figure: ``ref_ratio`` × the profile's
canonical latency of that reference (measured once, when the profile was created, and kept in
``device.json``). Rows measured minutes or days apart are comparable through it, because machine
drift moves model and reference together; latency models are fitted on it and predict it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hwnas.types import MEASUREMENT_COLUMNS, Measurement, stable_hash

FORMAT = "hwnas-device-profile"
SCHEMA_VERSION = 1
DEVICE_FILE = "device.json"
TABLES = ("models", "ops")
PREDICTORS_DIR = "predictors"
LOCK_FILE = ".lock"

_DERIVED = {"latency_ms": float, "weights_mb": float, "activations_mb": float, "analytic_memory_mb": float,
            "runtime_graph": str}
_COMMON = {"row_key": str, "space": str, "session": int, **MEASUREMENT_COLUMNS, **_DERIVED}
_IDENTITY = {
    "models": {"kind": str, "arch": str, "arch_key": str, "resolution": int, "macs": int, "params": int, "repeat": int},
    "ops": {"layer_key": str, "layer": str, "layer_kind": str, "in_hw": int, "macs": int, "params": int},
}

COLUMNS: dict[str, dict[str, type]] = {t: {**_COMMON, **_IDENTITY[t]} for t in _IDENTITY}
"""Column → Python type per table (floats may be NaN where not measured, e.g. ``energy_mj``). The
measurement columns are :data:`hwnas.types.MEASUREMENT_COLUMNS` — one flat form for every record."""

METRICS = {"latency_ms": "latency_ms", "memory_mb": "peak_memory_mb", "energy_mj": "energy_mj"}
"""Objective name → the row column that measures it (a budget on ``memory_mb`` is judged on the
measured peak)."""


@dataclass(frozen=True)
class ProfileRow:
    """One row of a profile table, built from a :class:`~hwnas.types.Measurement`.

    ``identity`` holds what was measured (``row_key``, ``space`` and the table's identity columns);
    ``latency_ms`` is the measurement on the profile's canonical scale; ``derived`` the analytic
    memory of the graph and what the runtime ran. :meth:`record` is the table row;
    :meth:`from_record` reads one back.
    """

    table: str
    identity: dict[str, Any]
    measurement: Measurement
    latency_ms: float
    session: int
    derived: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.identity["row_key"]

    def record(self) -> dict[str, Any]:
        return {**self.identity, "session": self.session, **self.measurement.columns(),
                "latency_ms": self.latency_ms, **self.derived}

    @classmethod
    def from_record(cls, table: str, rec: dict[str, Any]) -> ProfileRow:
        ident = {k: rec.get(k) for k in ("row_key", "space", *_IDENTITY[table])}
        derived = {k: rec.get(k) for k in _DERIVED if k != "latency_ms"}
        derived["unstable"] = bool(rec.get("unstable"))
        subject = str(rec.get("arch") or rec.get("layer_key") or "")
        return cls(table, ident, Measurement.from_columns(rec, subject), float(rec["latency_ms"]),
                   int(rec.get("session") or 0), derived)

    def metrics(self) -> dict[str, float | None]:
        """Objective name → measured value, None where this row did not measure it."""
        rec = self.record()
        out: dict[str, float | None] = {}
        for name, col in METRICS.items():
            v = rec.get(col)
            out[name] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return out


MODEL_KINDS = ("reference", "random", "repeat", "holdout", "search", "active")
"""Why an end-to-end row was measured. ``repeat`` and ``holdout`` rows are never used to fit."""

TARGETS = {"latency_ms": "latency_ms", "peak_memory_mb": "peak_memory_mb", "memory_mb": "peak_memory_mb",
           "analytic_memory_mb": "analytic_memory_mb", "energy_mj": "energy_mj"}
"""Target names a predictor can be fitted on → profile column (``memory_mb`` is the measured peak)."""


def model_row_key(arch_key: str, device_id: str, repeat: int = 0) -> str:
    """Content hash of an end-to-end row: which subnet, on which device settings, which repetition."""
    return stable_hash({"t": "model", "arch": arch_key, "device": device_id, "repeat": int(repeat)})


def op_row_key(layer_key: str, device_id: str) -> str:
    """Content hash of a block/op row: which layer (OFA key: shapes and options), on which device."""
    return stable_hash({"t": "op", "layer": layer_key, "device": device_id})
