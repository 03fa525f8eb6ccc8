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

from typing import Any

from hwnas.types import stable_hash

FORMAT = "hwnas-device-profile"
SCHEMA_VERSION = 1
DEVICE_FILE = "device.json"
TABLES = ("models", "ops")
PREDICTORS_DIR = "predictors"
LOCK_FILE = ".lock"

_STATS = {"median_ms": float, "min_ms": float, "p10_ms": float, "p90_ms": float, "mean_ms": float,
          "std_ms": float, "n_runs": int, "n_warmup": int, "spread": float, "unstable": bool}
_REF = {"ref_name": str, "ref_ratio": float, "ref_ratio_spread": float, "ref_n_bursts": int,
        "ref_session_ms": float, "latency_ms": float}
_MEM = {"peak_memory_mb": float, "weights_mb": float, "activations_mb": float, "analytic_memory_mb": float,
        "energy_mj": float, "energy_note": str}
_COMMON = {"row_key": str, "space": str, "session": int, "when": str, "model_sha256": str,
           **_STATS, **_REF, **_MEM, "runtime_graph": str}

COLUMNS: dict[str, dict[str, type]] = {
    "models": {**_COMMON, "kind": str, "arch": str, "arch_key": str, "resolution": int, "macs": int,
               "params": int, "repeat": int},
    "ops": {**_COMMON, "layer_key": str, "layer": str, "layer_kind": str, "in_hw": int, "macs": int,
            "params": int},
}
"""Column → Python type per table (floats may be NaN where not measured, e.g. ``energy_mj``)."""

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


def empty_row(table: str) -> dict[str, Any]:
    return {c: None for c in COLUMNS[table]}
