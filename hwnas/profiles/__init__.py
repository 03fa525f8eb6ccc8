"""Device profiles: what models cost on one device, stored as a directory (see ``schema``).

``DeviceProfile`` reads and writes the directory; ``run_profile`` (in ``profiler``) measures a
space's block table, end-to-end samples and reference set into it; ``measure_archs`` adds
end-to-end rows for given archs (the search's closed loop, active sampling). Importing this
package imports no runtime and no pandas (tables are read on demand).
"""

from __future__ import annotations

from typing import Any

from hwnas.profiles.profile import DeviceProfile
from hwnas.profiles.schema import MODEL_KINDS, SCHEMA_VERSION, TARGETS

__all__ = ["DeviceProfile", "MODEL_KINDS", "SCHEMA_VERSION", "TARGETS", "measure_archs", "run_profile",
           "ProfileSettings", "merge_profiles"]


def __getattr__(name: str) -> Any:
    if name in ("measure_archs", "run_profile", "ProfileSettings", "plan"):
        from hwnas.profiles import profiler

        return getattr(profiler, name)
    if name == "merge_profiles":
        from hwnas.profiles.merge import merge_profiles

        return merge_profiles
    raise AttributeError(f"module 'hwnas.profiles' has no attribute '{name}'")
