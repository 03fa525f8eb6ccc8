"""Compile the deployed ONNX model for the device's runtime, into the bundle.

* ONNX Runtime: the graph optimised at level ALL as ORT runs it on this CPU
  (``model.ort-opt.onnx``; layout rewrites make it specific to this machine kind — the
  portable ``model.onnx`` stays in the bundle).
* OpenVINO: IR (``openvino/model.xml`` + ``.bin``) via ``ov.convert_model``.
* TVM: a shared library for the host ``llvm`` target (``tvm/model.so``).

Returns ``{"runtime", "artifact"}`` — the artifact path relative to the bundle that
verification loads on the device.
"""

from __future__ import annotations

from pathlib import Path


def compile_for(device, onnx_path: Path, bundle_dir: Path) -> dict:
    runtime = device.runtime
    if runtime == "onnxruntime":
        import onnxruntime as ort

        out = bundle_dir / "model.ort-opt.onnx"
        ort.InferenceSession(str(onnx_path), device.session_options(out), providers=["CPUExecutionProvider"])
        return {"runtime": runtime, "artifact": out.name, "note": "ORT graph optimisation level ALL for this CPU"}
    if hasattr(device, "compile_artifact"):
        art = device.compile_artifact(onnx_path, bundle_dir)
        return {"runtime": runtime, "artifact": str(Path(art).relative_to(bundle_dir))}
    return {"runtime": runtime, "artifact": onnx_path.name, "note": "runs the ONNX file directly"}
