"""hwnas: profile a device, search a subnet under a budget, export it to the device.

The public API — each job takes its config (:mod:`hwnas.config`) or the config's fields::

    import hwnas
    rep = hwnas.profile(space=["fmnist-mbv3"], out="profiles/my-cpu")          # -> ProfileReport
    front = hwnas.search(space="fmnist-mbv3", profile="profiles/my-cpu",
                         latency_budget_ms=0.15, out="runs/r")                   # -> ParetoFront
    bundle = hwnas.export(run="runs/r", device="onnxruntime-cpu", out="b")      # -> DeploymentBundle
    check = hwnas.verify(bundle="b")                                              # -> Verification

and the artifact types flowing between them: :class:`ArchConfig`, :class:`Measurement`,
:class:`DeviceProfile`, :class:`ParetoFront`, :class:`DeploymentBundle`. ``import hwnas`` is
light: it imports no torch and no runtime (everything here is resolved on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "profile": "hwnas.pipeline", "search": "hwnas.pipeline", "export": "hwnas.pipeline", "verify": "hwnas.pipeline",
    "quickstart": "hwnas.pipeline",
    "ArchConfig": "hwnas.types", "Measurement": "hwnas.types", "ParetoFront": "hwnas.types",
    "DeploymentManifest": "hwnas.types", "Verification": "hwnas.types",
    "DeviceProfile": "hwnas.profiles", "DeploymentBundle": "hwnas.exporting.bundle",
    "ProfileConfig": "hwnas.config", "SearchConfig": "hwnas.config", "ExportConfig": "hwnas.config",
    "VerifyConfig": "hwnas.config", "QuickstartConfig": "hwnas.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hwnas' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
