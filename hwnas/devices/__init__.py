"""Device backends, one per runtime, behind the :class:`~hwnas.devices.base.Device` protocol.

Backends are registered by module path and imported only when used, so listing
them (``hwnas devices``) never imports a runtime that is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

from hwnas.registry import Registry

DEVICES: Registry[Any] = Registry("device")


def _lazy(module: str, cls: str):
    def factory(**kwargs):
        return getattr(importlib.import_module(module), cls)(**kwargs)

    factory.target = (module, cls)  # type: ignore[attr-defined]
    return factory


def _register(name: str, module: str, cls: str, description: str, extra: str) -> None:
    DEVICES.register(name, _lazy(f"hwnas.devices.{module}", cls), description, extra=extra,
                     module=f"hwnas.devices.{module}", cls=cls)


_register("onnxruntime-cpu", "onnxruntime_cpu", "OnnxRuntimeCPU", "ONNX Runtime, CPU execution provider", "")
_register("openvino-cpu", "openvino_cpu", "OpenVINOCPU", "OpenVINO, CPU plugin (explicit inference precision)",
          "openvino")
_register("tvm-llvm", "tvm_llvm", "TVMLLVM", "Apache TVM (Relax), compiled for the host CPU with LLVM", "tvm")
_register("onnxruntime-cuda", "onnxruntime_gpu", "OnnxRuntimeCUDA", "ONNX Runtime, CUDA execution provider", "gpu")
_register("onnxruntime-tensorrt", "onnxruntime_gpu", "OnnxRuntimeTensorRT",
          "ONNX Runtime, TensorRT execution provider (fp16 on request)", "gpu")


def get_device(name: str, **kwargs: Any):
    """Instantiate a backend; raises UnknownNameError / RuntimeMissingError with the fix.

    ``BACKEND@BOARD`` (or ``@KIND``, or ``@BOARD1,BOARD2``) is that backend on boards of a Ray cluster
    (:mod:`hwnas.devices.remote`; ``cluster=`` its address, else ``RAY_ADDRESS``). Only such a name
    imports Ray."""
    if "@" in name:
        from hwnas.devices.remote import remote_device

        return remote_device(name, **kwargs)
    return DEVICES.create(name, **kwargs)


def is_remote(name: str) -> bool:
    """Whether a device name is a backend on boards of a cluster (``BACKEND@BOARD``)."""
    return "@" in name


def device_class(name: str):
    e = DEVICES.entry(name)
    return getattr(importlib.import_module(e.meta["module"]), e.meta["cls"])


def list_devices() -> list[dict[str, Any]]:
    """Every backend with whether it is usable here and why not (naming the pip extra)."""
    rows = []
    for e in DEVICES.entries():
        try:
            cls = device_class(e.name)
            ok, why = cls.available()
        except ImportError as exc:
            ok, why = False, f"{exc}"
        if not ok and e.meta.get("extra"):
            why = f"{why} (pip install 'hwnas[{e.meta['extra']}]')"
        rows.append({"name": e.name, "description": e.description, "available": ok,
                     "detail": why, "extra": e.meta.get("extra", "")})
    return rows


CPU_RUNTIMES = ("onnxruntime-cpu", "openvino-cpu", "tvm-llvm")
"""The local CPU runtimes ``--device auto`` tries (GPUs and remote boards are named explicitly)."""
BASELINE_DEVICE = "onnxruntime-cpu"
"""The runtime every other is compared with when choosing by measurement (its FP32)."""


def installed_cpu_devices() -> list[str]:
    """The local CPU runtimes installed here."""
    return [r["name"] for r in list_devices() if r["available"] and r["name"] in CPU_RUNTIMES]


def parse_options(options: dict[str, Any]) -> dict[str, Any]:
    """Device options as stored or typed (strings) back to values: ``"0"`` → 0, ``"true"`` → True."""
    import json

    out = {}
    for k, v in options.items():
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        out[k] = v
    return out
