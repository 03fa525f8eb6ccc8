"""The small immutable values that flow between hwnas stages.

Units live in the names (``_ms``, ``_mb``, ``_mj``). Every type serialises to a plain JSON-able
dict (``to_dict``/``from_dict``); nothing here imports torch or a runtime.
"""

from hwnas.types.arch import ArchConfig, stable_hash
from hwnas.types.callbacks import Progress, Say
from hwnas.types.deploy import (
    AccuracyReport,
    Check,
    DeploymentManifest,
    LatencyReport,
    MemoryReport,
    PrecisionPolicy,
    Rule,
    Verification,
)
from hwnas.types.front import Candidate, ParetoFront
from hwnas.types.measurement import (
    MEASUREMENT_COLUMNS,
    SPREAD_LIMIT,
    DeviceSpec,
    LatencyStats,
    Measurement,
    ReferenceRatio,
    utc_now,
)

from hwnas.types.quant_arch import QuantArch  # noqa: E402 - after the types it builds on

__all__ = ["QuantArch", "AccuracyReport", "ArchConfig", "Candidate", "Check", "DeploymentManifest", "DeviceSpec", "LatencyReport",
           "LatencyStats", "MEASUREMENT_COLUMNS", "Measurement", "MemoryReport", "ParetoFront", "PrecisionPolicy",
           "Progress", "ReferenceRatio", "Rule", "SPREAD_LIMIT", "Say", "Verification", "stable_hash", "utc_now"]
