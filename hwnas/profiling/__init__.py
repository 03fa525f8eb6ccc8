"""Profiling: the act of measuring a device into a profile.

``run_profile`` measures a space's block table, end-to-end samples and reference set;
``measure_archs`` adds end-to-end rows for given archs (the search's closed loop, active
sampling). This package composes :mod:`hwnas.devices` (where models run) and
:mod:`hwnas.profiles` (the on-disk format); neither of those imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProfileSettings", "measure_archs", "plan", "run_profile"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hwnas.profiling import profiler

        return getattr(profiler, name)
    raise AttributeError(f"module 'hwnas.profiling' has no attribute '{name}'")
