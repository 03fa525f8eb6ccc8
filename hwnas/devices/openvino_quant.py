"""OpenVINO INT8 through NNCF post-training quantization, driven by a precision policy.

The FP32 ONNX model is converted to an OpenVINO model, ``nncf.quantize`` calibrates it on real
inputs (the same pre-processed images as the ONNX Runtime path) and inserts FakeQuantize
nodes; layers a policy keeps in float go to NNCF's ``IgnoredScope`` (its own exclusion
mechanism, matched by the ONNX node names OpenVINO keeps as friendly names). The result is
saved as IR (``.xml`` + ``.bin``) that the ``openvino-cpu`` device loads. The default preset is
``mixed`` (asymmetric activations): h-swish outputs are negative down to -0.375, and the
symmetric ``performance`` preset cost a 24k-parameter Fashion-MNIST subnet 5.3 points of
top-1 where ``mixed`` cost 1.2.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from hwnas.devices.base import Quantizer, onnx_nodes, weighted_layers
from hwnas.errors import ConfigError
from hwnas.types import PrecisionPolicy


def quantize(onnx_path: str | os.PathLike, out_xml: str | os.PathLike, policy: PrecisionPolicy,
             calibration: np.ndarray, preset: str = "mixed") -> Path:
    """INT8 IR of ``onnx_path`` under ``policy``; ``calibration`` is float32 ``(N, C, H, W)``."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    batch = int(model.input(0).get_partial_shape()[0].get_length())
    names = [op.get_friendly_name() for op in model.get_ops()]
    ignored = [n for n in names if policy.precision_for(n) != "int8" and _quantizable(n)]
    q = _nncf_quantize(model, _batches(calibration, batch), ignored, preset)
    out = Path(out_xml)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out), compress_to_fp16=False)
    return out


def quantize_onnx(onnx_path: str | os.PathLike, out_onnx: str | os.PathLike, policy: PrecisionPolicy,
                  calibration: np.ndarray, preset: str = "mixed") -> Path:
    """The same quantization by NNCF's ONNX backend: a QDQ ONNX model (``QuantizeLinear`` /
    ``DequantizeLinear`` pairs placed for OpenVINO), which the CPU plugin reads and runs with INT8
    kernels (its runtime model shows the convolutions in ``u8``). What the profiler times for an
    ``openvino-cpu`` INT8 profile, whose builders write ONNX."""
    import onnx

    from hwnas.devices.base import onnx_input_shape

    model = onnx.load(str(onnx_path))
    name = model.graph.input[0].name
    ignored = [n.name for n in model.graph.node
               if n.op_type in ("Conv", "Gemm", "MatMul") and policy.precision_for(n.name) != "int8"]
    batches = _batches(calibration, onnx_input_shape(Path(onnx_path))[0])
    q = _nncf_quantize(model, batches, ignored, preset, transform=lambda x: {name: x})
    out = Path(out_onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(q, str(out))
    return out


def _batches(calibration: np.ndarray, batch: int) -> list[np.ndarray]:
    if calibration.ndim != 4 or len(calibration) < batch:
        raise ConfigError(f"Calibration data must be (N, C, H, W) with N >= {batch}; got {calibration.shape}.")
    return [calibration[i:i + batch].astype(np.float32) for i in range(0, len(calibration) - batch + 1, batch)]


def _nncf_quantize(model, batches: list[np.ndarray], ignored: list[str], preset: str, transform=None):
    """``nncf.quantize`` of an OpenVINO or ONNX model, its progress bars kept off hwnas's output."""
    import contextlib
    import io
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)  # keep the CLI's output readable
    # NNCF draws its own progress bars on stdout whatever its log level; hwnas reports progress itself
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(
            model, nncf.Dataset(batches, transform),
            preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
        )


def _quantizable(name: str) -> bool:
    """Only weighted layers need ignoring; activations follow their producers."""
    return re.search(r"/(Conv|Gemm|MatMul)(/|$)", name) is not None or name.endswith(("Conv", "Gemm", "MatMul"))


class NncfQuantizer(Quantizer):
    """INT8 IR variants of one FP32 model for OpenVINO (NNCF); layers outside INT8 stay float, in the
    device's inference precision (``float_precision``: ``fp32``, ``bf16`` or ``fp16``).

    OpenVINO's CPU plugin runs every non-INT8 layer at the one ``INFERENCE_PRECISION_HINT`` of the
    compiled model: neither node rt_info set from Python (``disable_fp16_compression``) nor the same
    attribute written into the IR kept a convolution in f32 under a bf16 hint (OpenVINO 2026.4,
    checked on the runtime model). So a policy's float precision is per model on OpenVINO — FP32
    islands inside a BF16 model are refused — while INT8 is per layer.
    """

    precisions = ("int8", "fp32", "bf16", "fp16")
    suffix = ".xml"
    suffixes = (".xml", ".onnx")  # IR by default; QDQ ONNX (NNCF's ONNX backend) where ONNX is asked for
    runtime_name = "OpenVINO (CPU)"

    def __init__(self, fp32_onnx: Path, calibration: np.ndarray, float_precision: str = "fp32") -> None:
        self.fp32 = Path(fp32_onnx)
        self.calibration = calibration
        self.float_precision = float_precision

    def check(self, policy: PrecisionPolicy) -> None:
        super().check(policy)
        floats = policy.floats()
        if len(floats) > 1:
            raise ConfigError(f"OpenVINO runs every non-INT8 layer in the model's one inference precision (it cannot "
                              f"pin single layers to another float precision); this policy mixes "
                              f"{', '.join(sorted(floats))}: keep one float precision besides int8.")
        if floats != {self.float_precision}:
            raise ConfigError(f"This openvino-cpu device runs non-INT8 layers in {self.float_precision}; the policy "
                              f"asks {next(iter(floats))}: use --precision {next(iter(floats))} for the device.")

    def layers(self) -> list[str]:
        return [n for n, _ in onnx_nodes(self.fp32)]

    def weighted_layers(self) -> list[str]:
        return weighted_layers(self.fp32)

    def build(self, policy: PrecisionPolicy, out: Path) -> Path:
        self.check(policy)
        if Path(out).suffix == ".onnx":
            return quantize_onnx(self.fp32, out, policy, self.calibration)
        return quantize(self.fp32, Path(out).with_suffix(self.suffix), policy, self.calibration)
