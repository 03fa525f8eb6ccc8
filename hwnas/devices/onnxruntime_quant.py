"""ONNX Runtime static INT8 quantization (QDQ), driven by a precision policy.

Recipe (the one that works with ORT 1.31): ``quant_pre_process`` (shape inference + graph
clean-up), then ``quantize_static`` in QDQ format with per-channel INT8 weights and UINT8
activations (U8S8 — ORT's fast path on x86; S8S8 is ~3x slower here), MinMax calibration on
real training images at the subnet's resolution, ranges averaged over the calibration batches.
``reduce_range`` stays off: it exists for CPUs without VNNI, where U8S8 products can saturate;
turn it on for those.

Layers a policy keeps in FP32 are passed as ``nodes_to_exclude`` — ORT's own mechanism.
:class:`OrtQuantizer` is what the ``onnxruntime-*`` devices hand to the export stage.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from hwnas.devices.base import Quantizer, onnx_nodes, weighted_layers
from hwnas.errors import ConfigError
from hwnas.types import PrecisionPolicy



def preprocess(fp32_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """ORT's recommended pre-processing before quantization (symbolic shapes, optimisations)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out_path)
    quant_pre_process(str(fp32_path), str(out), skip_symbolic_shape=False)
    return out


class _ArrayReader:
    """ORT ``CalibrationDataReader`` over an array of inputs, one batch at a time."""

    def __init__(self, name: str, data: np.ndarray, batch: int) -> None:
        self.name, self.data, self.batch, self.i = name, data, batch, 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        x = self.data[self.i:self.i + self.batch]
        self.i += self.batch
        return {self.name: np.ascontiguousarray(x, dtype=np.float32)}

    def rewind(self) -> None:
        self.i = 0


def quantize(pre_path: str | os.PathLike, out_path: str | os.PathLike, policy: PrecisionPolicy,
             calibration: np.ndarray, per_channel: bool = True, reduce_range: bool = False,
             op_types: tuple[str, ...] | None = None) -> Path:
    """Quantize the pre-processed FP32 model at ``pre_path`` to INT8 QDQ under ``policy``.

    ``calibration``: float32 inputs ``(N, C, H, W)`` already pre-processed like inference inputs
    (batched by the model's own batch size). Layers the policy maps to fp32/fp16 are excluded.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(pre_path), load_external_data=False)
    inp = model.graph.input[0]
    batch = inp.type.tensor_type.shape.dim[0].dim_value or 1
    if calibration.ndim != 4 or len(calibration) < batch:
        raise ConfigError(f"Calibration data must be (N, C, H, W) with N >= {batch}; got {calibration.shape}.")
    names = [n for n, _ in onnx_nodes(pre_path)]
    unknown = [r.pattern for r in policy.rules if not any(r.matches(n) for n in names)]
    if unknown:
        raise ConfigError(f"Policy rules match no node of this model: {unknown[:3]}. Node names look like "
                          f"'{names[0] if names else '?'}'.")
    # every node (convolutions, activations, adds, SE multiplies ...) outside INT8 stays float
    exclude = [n for n in names if policy.precision_for(n) != "int8"]
    reader = _ArrayReader(inp.name, calibration, batch)

    class Reader(CalibrationDataReader):
        def get_next(self):
            return reader.get_next()

        def rewind(self):
            reader.rewind()

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        tmp_out = Path(tmp) / out.name
        quantize_static(str(pre_path), str(tmp_out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types) if op_types else None,
                        nodes_to_exclude=exclude or None,
                        # ranges averaged over calibration batches instead of the extreme min/max:
                        # largest fmnist-mbv3 subnet loses 0.45 pt instead of 1.27 (percentile 0.68,
                        # entropy 1.27), at the same speed
                        extra_options={"CalibMovingAverage": True})
        from hwnas.fileio import atomic_write_bytes

        atomic_write_bytes(out, tmp_out.read_bytes())
    return out


class OrtQuantizer(Quantizer):
    """INT8 (QDQ) variants of one FP32 model for ONNX Runtime; layers outside INT8 stay FP32."""

    precisions = ("int8", "fp32")
    suffix = ".onnx"
    runtime_name = "ONNX Runtime (CPU)"
    hint = "for bf16 or fp16 layers use --device openvino-cpu on a CPU that has them"

    def __init__(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray) -> None:
        self.pre = preprocess(fp32_onnx, Path(workdir) / "model.pre.onnx")
        self.calibration = calibration

    def layers(self) -> list[str]:
        return [n for n, _ in onnx_nodes(self.pre)]

    def weighted_layers(self) -> list[str]:
        return weighted_layers(self.pre)

    def build(self, policy: PrecisionPolicy, out: Path) -> Path:
        self.check(policy)
        return quantize(self.pre, Path(out).with_suffix(self.suffix), policy, self.calibration)
