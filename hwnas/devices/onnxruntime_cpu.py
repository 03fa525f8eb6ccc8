"""ONNX Runtime on the CPU.

Session settings that change latency are explicit and recorded in the
DeviceSpec: intra-op threads (``threads``), inter-op threads (1), graph
optimisation level (ALL by default: only ALL applies the NCHWc layout rewrite,
~2.7x faster than EXTENDED on MobileNetV3) and thread spinning. One inference
is ``run_with_iobinding`` on a pre-bound input, so Python overhead stays out of
the timing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Artifact, Device, LoadedModel, random_input
from hwnas.errors import ConfigError, DeviceError
from hwnas.types.deploy import QUANTIZED_PRECISIONS

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def _graph_nodes(path: Path) -> list[dict[str, str]]:
    """(name, op, domain) of each node of an ONNX file; without the ``onnx`` package (a board that has
    only the runtime) the protobuf is read directly (:mod:`hwnas.devices.onnx_wire`)."""
    try:
        import onnx
    except ImportError:
        from hwnas.devices.onnx_wire import nodes

        return nodes(path)
    m = onnx.load(str(path))
    return [{"name": n.name, "op": n.op_type, "domain": n.domain} for n in m.graph.node]


def _session_input_shape(sess) -> tuple[int, ...]:
    """The first input's shape as the runtime reads it (symbolic dimensions count as 1)."""
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in sess.get_inputs()[0].shape)


class OrtModel(LoadedModel):
    def __init__(self, session, input_shape: tuple[int, ...], optimized_path: Path | None,
                 source: Path | None = None, device: OnnxRuntimeCPU | None = None) -> None:
        import onnxruntime as ort

        self.session = session
        self.input_shape = input_shape
        self.input_name = session.get_inputs()[0].name
        self._x = ort.OrtValue.ortvalue_from_numpy(random_input(input_shape))
        self._binding = session.io_binding()
        self._binding.bind_ortvalue_input(self.input_name, self._x)
        for o in session.get_outputs():
            self._binding.bind_output(o.name, "cpu")
        self.optimized_path = optimized_path
        self._source, self._device = source, device

    def run(self) -> None:
        self.session.run_with_iobinding(self._binding)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def runtime_graph(self) -> dict[str, Any] | None:
        """Op types of the optimised graph ORT runs (fused nodes such as FusedConv appear as one).

        Without ``keep_optimized`` the optimised graph is written once, on first call, by a second
        session with the same options (ORT only saves it while building a session).
        """
        if self.optimized_path is not None and self.optimized_path.exists():
            return {"nodes": _graph_nodes(self.optimized_path)}
        if self._device is not None and self._source is not None:
            import shutil

            import onnxruntime as ort

            tmp = Path(tempfile.mkdtemp(prefix="hwnas-ort-"))
            try:
                ort.InferenceSession(str(self._source), self._device.session_options(tmp / "opt.onnx"),
                                     providers=self._device.providers())
                return {"nodes": _graph_nodes(tmp / "opt.onnx")}
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return None

    def close(self) -> None:
        self.session = None


class OnnxRuntimeCPU(Device):
    name = "onnxruntime-cpu"
    runtime = "onnxruntime"
    extra = ""  # a core dependency
    description = "ONNX Runtime, CPU execution provider"
    precisions_offered: tuple[str, ...] = ("fp32",)

    def __init__(self, threads: int = 1, precision: str = "fp32", batch_size: int = 1,
                 graph_optimization: str = "all", allow_spinning: bool = True, **options: Any) -> None:
        if graph_optimization not in _LEVELS:
            raise ConfigError(f"graph_optimization must be one of {list(_LEVELS)}, got '{graph_optimization}'.")
        if precision not in self.precisions_offered + QUANTIZED_PRECISIONS:  # int8: it times quantized models
            raise ConfigError(f"{self.name} runs {' and '.join(self.precisions_offered)} float layers (INT8 comes from "
                              f"a quantized model), not {precision}; for bf16/fp16 use --device openvino-cpu on a "
                              "CPU that has them.")
        super().__init__(threads, precision, batch_size, graph_optimization=graph_optimization,
                         allow_spinning=int(bool(allow_spinning)), **options)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "onnxruntime is not installed: pip install onnxruntime"
        return True, ort.__version__

    def runtime_version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def session_options(self, optimized_path: Path | None = None, profile: bool | str = False):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[self.options["graph_optimization"]])
        so.add_session_config_entry("session.intra_op.allow_spinning", self.options["allow_spinning"])
        so.log_severity_level = 3
        if optimized_path is not None:
            so.optimized_model_filepath = str(optimized_path)
        if profile:
            so.enable_profiling = True
            if isinstance(profile, str):  # trace file prefix (ORT writes into the working directory otherwise)
                so.profile_file_prefix = profile
        return so

    def providers(self) -> list[str]:
        """Execution providers in priority order (subclasses put a GPU provider first)."""
        return ["CPUExecutionProvider"]

    def load(self, onnx_path: str | os.PathLike, keep_optimized: bool = False) -> OrtModel:
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise DeviceError(f"Model '{onnx_path}' does not exist.")
        opt_path = None
        if keep_optimized:
            opt_path = Path(tempfile.mkdtemp(prefix="hwnas-ort-")) / (onnx_path.stem + ".opt.onnx")
        try:
            sess = ort.InferenceSession(str(onnx_path), self.session_options(opt_path), providers=self.providers())
        except Exception as exc:  # ORT raises its own exception types
            raise DeviceError(f"ONNX Runtime cannot load '{onnx_path}': {exc}") from None
        return OrtModel(sess, _session_input_shape(sess), opt_path, onnx_path, self)

    def runtime_graph(self, model: str | os.PathLike, kernel_times: bool = False) -> dict[str, Any] | None:
        """Per-kernel records from ORT's profiler when ``kernel_times`` (times are inflated by
        profiling: use them as shares), else the optimised graph ORT runs."""
        if kernel_times:
            return {"source": "kernel_profile", "kernels": self.kernel_profile(model, runs=10)}
        return super().runtime_graph(model)

    def ran_precisions(self, model: str | os.PathLike) -> dict[str, Any]:
        """Per compute node of the optimised graph ORT runs: int8 for its INT8 kernels (QLinearConv,
        ConvInteger, QLinearMatMul, MatMulInteger, a Conv fed by a DequantizeLinear left unfused), fp32
        for float Conv / FusedConv / Gemm / MatMul."""
        from hwnas.devices.precision import ran_record

        m = self.load(model)
        try:
            nodes = (m.runtime_graph() or {}).get("nodes", [])
        finally:
            m.close()
        int8_ops = {"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm", "QLinearGemm"}
        float_ops = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}
        layers = {n["name"]: "int8" if n["op"] in int8_ops else "fp32" for n in nodes
                  if n["op"] in int8_ops | float_ops}
        return ran_record(layers, "onnxruntime optimised graph (kernel op types)")

    def quantizer(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray):
        """Static INT8 in QDQ form (:mod:`hwnas.devices.onnxruntime_quant`)."""
        from hwnas.devices.onnxruntime_quant import OrtQuantizer

        return OrtQuantizer(fp32_onnx, workdir, calibration)

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        """The graph optimised at this session's level as ORT runs it on this CPU (``model.ort-opt.onnx``;
        layout rewrites make it specific to this machine kind — the portable model stays in the bundle)."""
        import onnxruntime as ort

        out = bundle_dir / "model.ort-opt.onnx"
        ort.InferenceSession(str(model), self.session_options(out), providers=self.providers())
        return Artifact(self.runtime, out.name, f"ORT graph optimisation level {self.options['graph_optimization'].upper()} "
                        "for this CPU")

    def kernel_profile(self, onnx_path: str | os.PathLike, runs: int = 20) -> list[dict[str, Any]]:
        """Per-node kernel times (µs, median over ``runs``) from ORT's profiler, for relative breakdowns.

        Each record: ``node`` (name in the optimised graph), ``op``, ``us``, and the kernel's
        ``inputs``/``outputs`` shapes as ORT saw them. Profiling more than doubles run time, so only
        the shares are meaningful.
        """
        import json

        import onnxruntime as ort

        prefix = str(Path(tempfile.mkdtemp(prefix="hwnas-ortprof-")) / "trace")
        sess = ort.InferenceSession(str(onnx_path), self.session_options(profile=prefix),
                                    providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = random_input(_session_input_shape(sess))
        for _ in range(runs):
            sess.run(None, {name: x})
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
        trace.unlink(missing_ok=True)
        trace.parent.rmdir()
        times: dict[str, list[float]] = {}
        info: dict[str, dict[str, Any]] = {}
        for ev in events:
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                node = ev["name"][: -len("_kernel_time")]
                times.setdefault(node, []).append(float(ev["dur"]))
                args = ev.get("args", {})
                info[node] = {"op": args.get("op_name", ""),
                              "inputs": [next(iter(d.values())) for d in args.get("input_type_shape", [])],
                              "outputs": [next(iter(d.values())) for d in args.get("output_type_shape", [])]}
        return [{"node": n, "op": info[n]["op"], "us": float(np.median(t)), "inputs": info[n]["inputs"],
                 "outputs": info[n]["outputs"]} for n, t in times.items()]
