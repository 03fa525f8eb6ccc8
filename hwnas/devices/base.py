"""The Device protocol: where models run, and what a runtime brings with it.

A backend knows one runtime. Its primitive is :meth:`Device.load`: a model file into a
:class:`LoadedModel` (``run`` executes one inference on pre-set inputs, for timing; ``infer``
maps an input array to outputs, for accuracy). On top of it every device offers the same
verbs, which the stages use and nothing else — so a board reached over a cluster
(:mod:`hwnas.devices.remote`) is a Device like any other, overriding the verbs to run there:

* :meth:`Device.measure` — latency (raw and reference-normalised), peak memory, energy, as a
  :class:`~hwnas.types.Measurement` (one timing loop for every runtime: :mod:`hwnas.devices.measure`);
* :meth:`Device.outputs` — model outputs for batches of inputs (accuracy checks);
* :meth:`Device.runtime_graph` — what the runtime really ran (fused kernels, per-kernel times);
* :meth:`Device.energy_status`, :meth:`Device.host_facts` — what can be metered, and where it runs.

A runtime's deployment capabilities live in its own backend module too:
:meth:`Device.quantizer` (a :class:`Quantizer` that writes a model under a precision policy)
and :meth:`Device.compile_artifact` (what a bundle deploys). Stages never switch on runtime
names: they ask the device.

Backends never import the super-network code: they take model paths.
"""

from __future__ import annotations

import os
import platform
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import ConfigError, DeviceError, RuntimeMissingError
from hwnas.types import DeviceSpec, Measurement, PrecisionPolicy


class Quantizer(ABC):
    """Writes quantized variants of one FP32 ONNX model under precision policies, for one runtime.

    ``layers`` are the node names a policy addresses (the FP32 model's, which the runtime keeps
    as friendly names); ``weighted_layers`` the convolution / fully connected ones a policy
    summary counts; ``precisions`` what a policy may ask for; ``suffix`` the file suffix of what
    :meth:`build` writes by default (the device loads it), ``suffixes`` every format it can write
    (:meth:`build` writes the one ``out`` names, when it is one of them).
    """

    precisions: tuple[str, ...] = ("int8", "fp32")
    suffix: str = ".onnx"
    suffixes: tuple[str, ...] = (".onnx",)

    @abstractmethod
    def layers(self) -> list[str]: ...

    @abstractmethod
    def weighted_layers(self) -> list[str]: ...

    @abstractmethod
    def build(self, policy: PrecisionPolicy, out: Path) -> Path:
        """The model under ``policy`` at ``out`` (in ``out``'s format when it is one of ``suffixes``, else
        with this quantizer's ``suffix``)."""

    runtime_name: str = "This runtime"
    hint: str = ""  # where the refused precisions are offered instead

    def check(self, policy: PrecisionPolicy) -> None:
        """Refuse a policy naming a precision this runtime cannot run, with what it can (one line)."""
        bad = sorted((policy.precisions() | policy.floats()) - set(self.precisions))
        if bad:
            raise ConfigError(f"{self.runtime_name} cannot run {', '.join(bad)} layers; it offers "
                              f"{', '.join(self.precisions)}{'; ' + self.hint if self.hint else ''}.")


@dataclass(frozen=True)
class Artifact:
    """A compiled model for a bundle: ``path`` (relative to the bundle) is what the device loads."""

    runtime: str
    path: str
    note: str = ""


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
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}: pin the runtime's thread count "
                              f"(this machine has {os.cpu_count()} logical cores).")
        ok, why = self.available()
        if not ok:
            raise RuntimeMissingError(f"Device '{self.name}' is not available: {why}")
        self._references = None
        self._meter: tuple[Any, str] | None = None

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

    # ------------------------------------------------------------------ the verbs stages use
    def references(self):
        """The reference models loaded on this device, kept warm across measurements."""
        from hwnas.devices.measure import ReferenceSet

        if self._references is None:
            self._references = ReferenceSet(self)
        return self._references

    def measure(self, model: str | os.PathLike, timing=None, reference: str = "auto", energy: bool = False,
                subject: str | None = None) -> Measurement:
        """Latency of ``model`` interleaved with a reference (``"auto"``: the closest in latency; a
        name; ``"none"``: plain timing), peak memory, and energy when ``energy`` and a meter exists."""
        from hwnas.devices.measure import measure_model
        from hwnas.devices.timing import TimingConfig

        meter = self.energy_meter() if energy else None
        return measure_model(self, model, timing or TimingConfig(),
                             None if reference == "none" else self.references(), reference, subject, meter)

    def outputs(self, model: str | os.PathLike, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Outputs of ``model`` for each input batch (one row per input), run at the model's own batch
        size; a last partial chunk is padded with zeros and its padding dropped from the outputs."""
        m = self.load(Path(model))
        try:
            for x in batches:
                yield batch_outputs(m, x)
        finally:
            m.close()

    def runtime_graph(self, model: str | os.PathLike, kernel_times: bool = False) -> dict[str, Any] | None:
        """What the runtime ran: the executed (fused) graph, with per-layer times where the backend
        keeps counters. Backends with a kernel profiler override this for ``kernel_times``."""
        m = self.load(Path(model))
        try:
            for _ in range(5):  # per-layer counters (where the backend keeps them) fill while it runs
                m.run()
            g = m.runtime_graph()
        finally:
            m.close()
        if g is None:
            return None
        out = {"source": "runtime_graph", **g}
        timed = [p for p in g.get("profiling") or [] if float(p.get("us") or 0) > 0]
        if timed:  # per-layer times (e.g. OpenVINO with PERF_COUNT): the same shape as ORT's kernel records
            out["kernels"] = [{"node": p["name"], "op": p.get("op", ""), "us": float(p["us"])} for p in timed]
        return out

    def energy_meter(self):
        """The energy meter of this device's hardware, or None (see :meth:`energy_status`)."""
        if self._meter is None:
            from hwnas.devices.energy import detect_energy_meter

            self._meter = detect_energy_meter(self.provider())
        return self._meter[0]

    def energy_status(self) -> tuple[str | None, str]:
        """(metered domain, "") or (None, why energy cannot be measured here)."""
        meter = self.energy_meter()
        return (meter.domain, "") if meter is not None else (None, self._meter[1])

    def host_facts(self) -> dict[str, Any]:
        """CPU, cores, memory, OS and library versions of the machine the device runs on."""
        return host_facts()

    # ------------------------------------------------------------------ deployment capabilities
    def float_precisions(self) -> tuple[str, ...]:
        """Float inference precisions this device runs natively here (the device's ``precision`` is one)."""
        return ("fp32",)

    def with_precision(self, precision: str) -> Device:
        """The same device with another inference precision (refused where the host lacks it)."""
        if precision == self.precision:
            return self
        from hwnas.devices import get_device, parse_options

        return get_device(self.name, threads=self.threads, precision=precision, batch_size=self.batch_size,
                          **parse_options(self.options))

    def ran_precisions(self, model: str | os.PathLike) -> dict[str, Any] | None:
        """What the runtime really runs for ``model``: ``{"source", "summary", "layers"}`` with each
        compute layer's precision (:func:`hwnas.devices.precision.ran_record`), or None where the
        runtime does not tell."""
        return None

    def quantizer(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray) -> Quantizer | None:
        """This runtime's quantizer for ``fp32_onnx`` (calibrated on ``calibration`` inputs), or
        None when it has none (export then offers FP32 only)."""
        return None

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        """What a bundle deploys for ``model`` (already inside ``bundle_dir``). Default: the file itself."""
        return Artifact(self.runtime, str(Path(model).relative_to(bundle_dir)), "runs the model file directly")

    def close(self) -> None:
        """Release loaded reference models."""
        self._references = None


def model_files(model: str | os.PathLike) -> list[Path]:
    """The files that make up a model: the file itself and its side files (IR weights, external data,
    a library's input shape)."""
    p = Path(model)
    if not p.is_file():
        raise DeviceError(f"Model '{p}' does not exist.")
    side = {".xml": [".bin"], ".so": [".shape"], ".onnx": [".onnx.data"]}.get(p.suffix, [])
    return [p] + [q for q in (p.with_suffix(s) if s != ".onnx.data" else p.with_name(p.name + ".data") for s in side)
                  if q.is_file()]


def copy_model(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a model and its side files (an IR's ``.bin``) to ``dst`` (same suffix), side files renamed alike."""
    import shutil

    src, dst = Path(src), Path(dst)
    for f in model_files(src):
        shutil.copyfile(f, dst.with_name(dst.stem + f.name[len(src.stem):]))
    return dst


def batch_outputs(m: LoadedModel, x: np.ndarray) -> np.ndarray:
    """Outputs of loaded model ``m`` for inputs ``x`` (one row per input), run at the model's own batch
    size; a last partial chunk is padded with zeros and its padding dropped."""
    batch = m.input_shape[0]
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        k = len(chunk)
        if k < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - k, *chunk.shape[1:]), chunk.dtype)])
        outs.append(m.infer(chunk).reshape(batch, -1)[:k])
    return np.concatenate(outs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
             "amx_bf16", "amx_fp16", "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16")
"""CPU features that decide which precisions run fast (x86 ``flags`` / Arm ``Features`` in /proc/cpuinfo)."""


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
        facts["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith(("flags", "Features"))).split(":", 1)[1].split())
        facts["isa"] = sorted(flags & set(ISA_FLAGS))
    except (OSError, StopIteration, IndexError):
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


def host_fingerprint(facts: dict[str, Any]) -> dict[str, Any]:
    """What must not change for a measurement of this host to stay valid: CPU, cores, memory, ISA,
    kernel, and the boot (a new boot, or a new machine of the same kind, is a new host)."""
    keys = ("cpu", "logical_cores", "memory_gb", "isa", "os", "machine", "boot_id")
    return {k: facts.get(k) for k in keys}


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
"""ONNX op types that carry weights: the layers a precision summary counts."""


def onnx_nodes(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(name, op type) of every node of an ONNX model; a precision policy addresses nodes by name."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return [(n.name, n.op_type) for n in m.graph.node]


def weighted_layers(path: str | os.PathLike) -> list[str]:
    """Names of the convolution / fully connected nodes of an ONNX model."""
    return [n for n, op in onnx_nodes(path) if op in WEIGHTED_OPS]


def onnx_input_shape(path: str | os.PathLike) -> tuple[int, ...]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    inp = next(i for i in m.graph.input if i.name not in inits)
    dims = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    return tuple(dims)
