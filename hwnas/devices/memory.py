"""Peak resident memory of loading and running a model (Linux).

The kernel's high-water mark (``VmHWM``) is reset to the current resident size
by writing ``5`` to ``/proc/self/clear_refs``; after the model is loaded and
run, ``VmHWM`` minus the resident size before loading is the peak memory the
model cost this process (weights, runtime arenas, activations), in MiB.
Where the kernel does not allow the reset, the figure is ``None`` and
``reason`` says why — never a guess.
"""

from __future__ import annotations

from pathlib import Path


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _release_free_memory() -> None:
    """Return freed heap pages to the OS so the baseline is the live size, not an old peak."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.peak_mb`` (MiB over the baseline) or ``pm.reason``."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self.reason = ""
        self._base_kb: int | None = None

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as exc:
            self.reason = f"cannot reset the peak-RSS counter ({exc.strerror})"
            return self
        self._base_kb = _status_kb("VmRSS")
        if self._base_kb is None:
            self.reason = "no /proc/self/status (not Linux)"
        return self

    def __exit__(self, *exc) -> None:
        if self._base_kb is None:
            return
        hwm = _status_kb("VmHWM")
        if hwm is not None:
            self.peak_mb = max(0.0, (hwm - self._base_kb) / 1024.0)
