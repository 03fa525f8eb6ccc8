"""The Device protocol: where models run.

A device backend knows one runtime. It has two verbs: :meth:`Device.load` an
ONNX file into a :class:`LoadedModel` (whose ``run`` executes one inference on
pre-set inputs, for timing, and whose ``infer`` maps an input array to outputs,
for accuracy checks) and :meth:`Device.spec` to say exactly what it is. Timing,
memory and energy are measured around a LoadedModel by
:mod:`hwnas.devices.measure`, the same way for every backend.

Backends never import the super-network code: they take ONNX paths.
"""

from __future__ import annotations

import os
import platform
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import RuntimeMissingError
from hwnas.types import DeviceSpec


class LoadedModel(ABC):
    """A model ready to run on a device; ``input_shape`` is (N, C, H, W)."""

    input_shape: tuple[int, ...]

    @abstractmethod
    def run(self) -> None:
        """Run one inference on the pre-set input and wait for it to finish."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Outputs for input ``x`` (float32, ``input_shape`` or any batch the model accepts)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runtime resources."""

    def runtime_graph(self) -> dict[str, Any] | None:
        """What the runtime really runs (fused kernels, per-kernel times) where it can tell."""
        return None


class Device(ABC):
    """One runtime on one piece of hardware with fixed settings."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    extra: ClassVar[str] = ""  # pip extra that installs the runtime
    description: ClassVar[str] = ""

    def __init__(self, threads: int = 1, precision: str = "fp32", batch_size: int = 1, **options: Any) -> None:
        self.threads = int(threads)
        self.precision = precision
        self.batch_size = int(batch_size)
        self.options = {k: str(v) for k, v in options.items()}
        ok, why = self.available()
        if not ok:
            raise RuntimeMissingError(f"Device '{self.name}' is not available: {why}")

    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """(True, version) when usable here, else (False, why and how to fix it)."""

    @abstractmethod
    def runtime_version(self) -> str: ...

    @abstractmethod
    def load(self, onnx_path: str | os.PathLike) -> LoadedModel: ...

    def provider(self) -> str:
        return "CPU"

    def hardware(self) -> str:
        return cpu_model()

    def spec(self) -> DeviceSpec:
        return DeviceSpec(
            hardware=self.hardware(), runtime=self.runtime, runtime_version=self.runtime_version(),
            provider=self.provider(), precision=self.precision, threads=self.threads,
            batch_size=self.batch_size, options=tuple(sorted(self.options.items())),
        )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, Any]:
    """CPU, cores, memory, OS and library versions: stored with every profile and bundle."""
    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        facts["memory_gb"] = round(mem_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        facts["isa"] = sorted(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
                              if f" {f}" in flags)
    except (OSError, StopIteration):
        pass
    from importlib import metadata

    libs = {}
    for pkg in ("onnxruntime", "openvino", "apache-tvm", "tensorrt", "torch", "onnx", "numpy"):
        try:
            libs[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    facts["libraries"] = libs
    return facts


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def onnx_input_shape(path: str | os.PathLike) -> tuple[int, ...]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    inp = next(i for i in m.graph.input if i.name not in inits)
    dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    return tuple(dims)
