"""The only module that composes stages (super-network → ONNX → device → profile → models).

Each job has its own clearly separated section of functions; the CLI and benchmarks call them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# =========================================================================== profiling a device


def layer_onnx_builder(batch_size: int = 1) -> Callable[[Any, Path], Path]:
    """``build(layer_spec, path)``: one layer as a standalone ONNX model (block/op table)."""

    def build(spec, path):
        from hwnas.export.onnx_export import export_onnx
        from hwnas.supernet.static import build_layer

        return export_onnx(build_layer(spec), (batch_size, spec.in_ch, spec.in_hw, spec.in_hw), path)

    return build


def subnet_onnx_builder(space: str, checkpoint: str | os.PathLike | None = None,
                        batch_size: int = 1) -> tuple[Callable[[Any, Path], Path], str]:
    """``(build(arch, path), weights source)``: subnets of ``space`` exported to ONNX.

    Weights: ``checkpoint``, else the ones shipped for the space, else a fresh initialisation
    (latency, memory and energy do not depend on the weights' values).
    """
    from hwnas.export.onnx_export import export_subnet
    from hwnas.supernet import load_supernet

    net, source = load_supernet(space, checkpoint)

    def build(arch, path):
        return export_subnet(net, arch, path, batch_size)

    return build, source


def quiet_torch() -> None:
    """One torch thread while profiling: torch's idle worker threads would otherwise spin on the
    cores the measured runtime uses right after each export."""
    import torch

    torch.set_num_threads(1)


def open_profile_for_device(out: str | os.PathLike, device_name: str, device) -> tuple[Any, bool]:
    """Open the profile at ``out`` or create it for ``device``; returns (profile, created).

    An existing profile must have been made with the same device backend (its exact settings
    are checked when measuring starts); a non-empty directory that is not a profile is refused.
    """
    from hwnas.devices.base import host_facts
    from hwnas.errors import ProfileError
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.schema import DEVICE_FILE

    out = Path(out)
    if (out / DEVICE_FILE).exists():
        prof = DeviceProfile.open(out)
        if prof.device_name != device_name:
            raise ProfileError(f"Profile '{out}' is for device '{prof.device_name}', not '{device_name}'. "
                               "Use another --out directory.")
        return prof, False
    return DeviceProfile.create(out, device_name, device.spec(), host_facts(), device.options), True


def parse_option(value: Any) -> Any:
    """A device option as stored (a string) back to its value: ``"0"`` → 0, ``"true"`` → True."""
    import json

    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def profile_device(out: str | os.PathLike, spaces: Sequence[str], device: str = "onnxruntime-cpu",
                   threads: int = 1, device_options: dict[str, Any] | None = None,
                   checkpoint: str | os.PathLike | None = None, progress=None, **settings: Any) -> dict[str, Any]:
    """Profile ``device`` for each of ``spaces`` into the profile directory ``out``.

    ``settings`` go to :class:`~hwnas.profiles.profiler.ProfileSettings` (samples, reference_set,
    repeats, op_resolutions, ops, seed, kernel_times, energy, model_timing, op_timing). Resumable:
    running it again measures only what is missing. Returns per-space counts and timings.
    """
    from hwnas.devices import get_device
    from hwnas.profiles.profiler import ProfileSettings, run_profile

    dev = get_device(device, threads=threads, **(device_options or {}))
    plans = [ProfileSettings(space=s, **settings) for s in spaces]  # validate everything before measuring
    prof, created = open_profile_for_device(out, device, dev)
    quiet_torch()
    results: dict[str, Any] = {"profile": str(out), "created": created, "spaces": {}}
    for ps in plans:
        build_model, source = subnet_onnx_builder(ps.space, checkpoint, dev.batch_size)
        res = run_profile(prof, dev, ps, build_model, layer_onnx_builder(dev.batch_size) if ps.ops else None,
                          progress=(lambda d, a, b, s=ps.space: progress(f"{s}: {d}", a, b)) if progress else None,
                          note=f"weights: {source}")
        res["weights"] = source
        results["spaces"][ps.space] = res
    results["quality"] = prof.meta.get("quality", {})
    results["energy"] = prof.meta.get("energy", {})
    return results


def measure_archs_on_device(profile: str | os.PathLike, archs, kind: str = "search", device: str | None = None,
                            checkpoint: str | os.PathLike | None = None, progress=None, **kwargs: Any):
    """Measure ``archs`` end to end on the profile's own device and append them (closed loop)."""
    from hwnas.devices import get_device
    from hwnas.profiles import DeviceProfile, measure_archs

    prof = DeviceProfile.open(profile)
    spec = prof.spec
    dev = get_device(device or prof.device_name, threads=spec.threads, batch_size=spec.batch_size,
                     precision=spec.precision, **{k: parse_option(v) for k, v in prof.device_options.items()})
    quiet_torch()
    builders = {}
    for sp in {a.space for a in archs}:
        builders[sp] = subnet_onnx_builder(sp, checkpoint, dev.batch_size)[0]
    return measure_archs(prof, archs, lambda a, p: builders[a.space](a, p), dev, kind=kind, progress=progress,
                         **kwargs)
