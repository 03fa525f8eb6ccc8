"""Device profiles on disk: what models cost on one device, stored as a directory (see ``schema``).

This package is the format only — ``DeviceProfile`` reads and writes the directory (schema,
journal, lock, merge, repeatability summary). The act of measuring into a profile lives in
:mod:`hwnas.profiling`. Importing this package imports no runtime and no pandas (tables are
read on demand).
"""

from __future__ import annotations

from typing import Any

from hwnas.profiles.profile import DeviceProfile
from hwnas.profiles.schema import MODEL_KINDS, SCHEMA_VERSION, TARGETS

__all__ = ["DeviceProfile", "MODEL_KINDS", "SCHEMA_VERSION", "TARGETS", "merge_profiles"]


def __getattr__(name: str) -> Any:
    if name == "merge_profiles":
        from hwnas.profiles.merge import merge_profiles

        return merge_profiles
    raise AttributeError(f"module 'hwnas.profiles' has no attribute '{name}'")
