"""OpenVINO on the CPU.

Settings that change latency are explicit and recorded in the DeviceSpec: inference threads,
one stream, latency performance hint, and the **inference precision**. OpenVINO's CPU plugin
picks bf16 by itself on CPUs with bf16 instructions (some AMD and Intel parts) — a silent
precision change. hwnas always sets ``INFERENCE_PRECISION_HINT`` (``f32`` by default; ``bf16``
or ``f16`` only when asked) and records what the compiled model actually reports.

``load`` accepts an ONNX file or an OpenVINO IR (``.xml`` beside its ``.bin``), e.g. a model
quantized by NNCF. One inference is ``InferRequest.infer()`` on a pre-set input tensor (the
dict-argument call costs ~0.15 ms of Python per run).
"""

from __future__ import annotations

import functools

import os
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Artifact, Device, LoadedModel, random_input
from hwnas.devices.precision import ran_record
from hwnas.errors import ConfigError, DeviceError

# precision → INFERENCE_PRECISION_HINT; ``int8``: the device times quantized models (an INT8
# profile's), their float layers in f32
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
INT8_MODEL = "ir"  # what an int8 device times: the IR of NNCF's OpenVINO backend (see hwnas.profiling.precision)


_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}


@functools.lru_cache(maxsize=1)
def plugin_capabilities() -> tuple[str, ...]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, FP16, INT8) on this host (read once:
    every device built at another precision asks again)."""
    import openvino as ov

    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul")


def runtime_elements(compiled) -> dict[str, str]:
    """Compute layer of the runtime model (convolutions, fully connected; named after the original
    layer it was fused from) → the element type the CPU plugin really runs it in, after its own
    choices (``f32``, ``bf16``, ``f16``; INT8 layers show as ``u8``/``i8``)."""
    out: dict[str, str] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        get = lambda k: str(getattr(info[k], "value", info[k])) if k in info else ""  # noqa: E731
        if get("layerType") in COMPUTE_LAYERS and get("runtimePrecision"):
            out[op.get_friendly_name()] = get("runtimePrecision")
    return out


def compute_precisions(compiled) -> dict[str, int]:
    """Element type → number of compute layers of the runtime model (:func:`runtime_elements`)."""
    from collections import Counter

    return dict(Counter(runtime_elements(compiled).values()))


def layer_precisions(compiled) -> dict[str, str]:
    """Compute layer → the policy precision it runs in (``fp32``, ``bf16``, ``fp16``, ``int8``)."""
    from hwnas.devices.precision import ELEMENT

    return {n: ELEMENT.get(e, e) for n, e in runtime_elements(compiled).items()}


def check_precision(requested: str, precisions: dict[str, int]) -> None:
    """Refuse a silent precision change: float compute layers must run at the requested precision
    (INT8 layers of a quantized model are allowed beside them)."""
    want = _HINTS[requested]
    floats = {p: n for p, n in precisions.items() if p in ("f32", "bf16", "f16")}
    if not floats:
        return  # an all-INT8 model
    other = {p: n for p, n in floats.items() if p != want}
    if want not in floats or (want == "f32" and other):
        found = ", ".join(f"{n} {p}" for p, n in sorted(floats.items()))
        raise DeviceError(f"OpenVINO ran the model's compute layers as {found}, not the requested {requested}: this "
                          f"CPU {'lacks ' + requested + ' instructions' if want != 'f32' else 'changed precision'}"
                          "; choose another --precision (see 'hwnas devices').")


class OpenVINOModel(LoadedModel):
    def __init__(self, compiled, input_shape: tuple[int, ...]) -> None:
        import openvino as ov

        self.compiled = compiled
        self.input_shape = input_shape
        self.request = compiled.create_infer_request()
        self._x = ov.Tensor(random_input(input_shape))
        self.request.set_input_tensor(self._x)

    def run(self) -> None:
        self.request.infer()

    def infer(self, x: np.ndarray) -> np.ndarray:
        import openvino as ov

        self.request.set_input_tensor(ov.Tensor(np.ascontiguousarray(x, dtype=np.float32)))
        self.request.infer()
        out = self.request.get_output_tensor().data.copy()
        self.request.set_input_tensor(self._x)
        return out

    def runtime_graph(self) -> dict[str, Any] | None:
        """The executed (fused) graph: layer type and, when PERF_COUNT is on, per-layer times (µs)."""
        rt = self.compiled.get_runtime_model()
        nodes = []
        for op in rt.get_ordered_ops():
            info = op.get_rt_info()
            get = lambda k: str(getattr(info[k], "value", info[k])) if k in info else ""  # noqa: E731
            nodes.append({"name": op.get_friendly_name(), "op": get("layerType"),
                          "precision": get("runtimePrecision"), "fused": get("originalLayersNames")})
        prof = []
        try:
            for p in self.request.get_profiling_info():
                prof.append({"name": p.node_name, "op": p.node_type, "exec": p.exec_type,
                             "us": p.real_time.total_seconds() * 1e6})
        except RuntimeError:
            pass
        return {"nodes": nodes, "profiling": prof}

    def close(self) -> None:
        self.request = None
        self.compiled = None


class OpenVINOCPU(Device):
    name = "openvino-cpu"
    runtime = "openvino"
    extra = "openvino"
    description = "OpenVINO, CPU plugin (explicit inference precision)"

    def __init__(self, threads: int = 1, precision: str = "fp32", batch_size: int = 1, perf_count: bool = False,
                 **options: Any) -> None:
        if precision not in _HINTS:  # int8: it times quantized models, as an INT8 profile hands it
            raise ConfigError(f"OpenVINO precision must be one of {list(_HINTS)}, got '{precision}'.")
        if precision == "int8":  # recorded in the spec: INT8 profiles made before timed QDQ ONNX, not the IR
            if str(options.setdefault("int8_model", INT8_MODEL)) != INT8_MODEL:
                raise ConfigError(f"openvino-cpu int8 times NNCF's OpenVINO IR (int8_model={INT8_MODEL}), what export "
                                  f"deploys; got int8_model={options['int8_model']}.")
        else:
            options.pop("int8_model", None)
        super().__init__(threads, precision, batch_size, perf_count=int(bool(perf_count)), **options)
        from hwnas.devices.precision import require_float_precision

        require_float_precision(self.name, precision, self.host_facts(),
                                f", and OpenVINO would silently run {precision} layers in f32")
        caps = plugin_capabilities()
        if precision in _CAPABILITY and _CAPABILITY[precision] not in caps:
            raise ConfigError(f"OpenVINO's CPU plugin offers no {precision} on this CPU (its capabilities: "
                              f"{', '.join(caps)}), though the ISA has it; use --precision fp32 or int8 here.")

    def float_precisions(self) -> tuple[str, ...]:
        """Float precisions the host ISA has *and* the CPU plugin offers here."""
        from hwnas.devices.precision import host_float_precisions

        caps = plugin_capabilities()
        return tuple(p for p in host_float_precisions(self.host_facts()) if p == "fp32" or _CAPABILITY[p] in caps)

    def ran_precisions(self, model: str | os.PathLike) -> dict[str, Any]:
        """Per compute layer (the original layer names each fused runtime node holds), the element type
        of the compiled runtime model: u8/i8 → int8, f32 → fp32, bf16, f16 → fp16."""
        m = self.load(model)
        try:
            return ran_record(layer_precisions(m.compiled), "openvino runtime model (runtimePrecision)")
        finally:
            m.close()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import openvino as ov
        except ImportError:
            return False, "openvino is not installed"
        return True, ov.get_version().split("-")[0]

    def runtime_version(self) -> str:
        import openvino as ov

        return ov.get_version().split("-")[0]

    def config(self) -> dict[str, Any]:
        return {"INFERENCE_PRECISION_HINT": _HINTS[self.precision], "INFERENCE_NUM_THREADS": self.threads,
                "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": bool(int(self.options["perf_count"]))}

    def read(self, path: Path):
        import openvino as ov

        if path.suffix not in (".onnx", ".xml"):
            raise DeviceError(f"OpenVINO loads .onnx or IR .xml files, not '{path.name}'.")
        try:
            return ov.Core().read_model(str(path))
        except RuntimeError as exc:
            raise DeviceError(f"OpenVINO cannot read '{path}': {str(exc).splitlines()[0]}") from None

    def load(self, path: str | os.PathLike) -> OpenVINOModel:
        import openvino as ov

        path = Path(path)
        if not path.is_file():
            raise DeviceError(f"Model '{path}' does not exist.")
        model = self.read(path)
        shape = tuple(int(d) for d in model.input(0).get_partial_shape().to_shape())
        try:
            compiled = ov.Core().compile_model(model, "CPU", self.config())
        except RuntimeError as exc:  # e.g. an INT8 model's quantizer range out of f16's range at fp16
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise DeviceError(f"OpenVINO cannot compile '{path.name}' at inference precision "
                              f"{_HINTS[self.precision]}: {lines[-1] if lines else type(exc).__name__}") from None
        check_precision(self.precision, compute_precisions(compiled))
        return OpenVINOModel(compiled, shape)

    def quantizer(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray):
        """NNCF post-training INT8 (:mod:`hwnas.devices.openvino_quant`)."""
        from hwnas.devices.openvino_quant import NncfQuantizer

        return NncfQuantizer(fp32_onnx, calibration, "fp32" if self.precision == "int8" else self.precision)

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        """OpenVINO IR (``openvino/model.xml`` + ``.bin``) of the deployed model, for a bundle: an ONNX
        file is converted; an IR (e.g. written by NNCF) is placed there as it is."""
        import openvino as ov

        out = bundle_dir / "openvino" / "model.xml"
        out.parent.mkdir(parents=True, exist_ok=True)
        if model.suffix == ".xml":
            if model != out:
                import shutil

                shutil.copyfile(model, out)
                shutil.copyfile(model.with_suffix(".bin"), out.with_suffix(".bin"))
            return Artifact(self.runtime, "openvino/model.xml", "OpenVINO IR written by the quantizer")
        ov.save_model(ov.convert_model(str(model)), str(out), compress_to_fp16=False)
        return Artifact(self.runtime, "openvino/model.xml", "OpenVINO IR converted from ONNX")
