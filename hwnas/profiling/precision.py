"""Profiles measured in a precision the runtime does not take as a setting: INT8 by quantizing.

OpenVINO takes FP32 / BF16 / FP16 as an inference-precision setting; INT8 on ONNX Runtime (and
OpenVINO) exists only as a quantized model. A device configured ``precision="int8"`` used to time
the FP32 models it was handed and label the rows ``int8``. :func:`in_precision` wraps the
profiler's ONNX builders so each model (a block of the block table, or a whole subnet) is
quantized with the device's own quantizer, in the format that runtime deploys, before it is timed:
a QDQ ONNX model (``QuantizeLinear`` / ``DequantizeLinear`` around every layer) by ONNX Runtime's
quantizer on ONNX Runtime, an IR by NNCF's OpenVINO backend on OpenVINO — the IR that ``export``
deploys; the QDQ ONNX form NNCF's ONNX backend writes ran 1.75-2.41x slower on OpenVINO's CPU plugin
(``benchmarks/openvino_int8_formats.py``). The IR is written beside the FP32 ONNX file, which stays
for the row's analytic memory. Calibrated on random inputs (latency does not depend on the
calibration ranges; accuracy is never taken from these models).

A builder returns the path of the model to time (None: the path it was handed), so callers
measure what the builder returns.

:func:`quantize_model` is the same step for one model under any policy (the joint search's
per-block INT8 policies), used where a pair is measured on the device.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.types import PrecisionPolicy
from hwnas.types.deploy import QUANTIZED_PRECISIONS
CALIBRATION_SAMPLES = 8


def random_calibration(onnx_path: str | Path, n: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal inputs of the model's input shape (N padded to its batch size)."""
    from hwnas.devices.base import onnx_input_shape

    shape = onnx_input_shape(Path(onnx_path))
    return np.random.default_rng(seed).standard_normal((max(n, shape[0]), *shape[1:])).astype(np.float32)


def quantize_model(device, fp32: str | Path, out: str | Path, policy: PrecisionPolicy,
                   calibration: np.ndarray | None = None, seed: int = 0) -> Path:
    """``fp32`` quantized by ``device``'s own quantizer under ``policy``, written at ``out`` (with no
    suffix: in the quantizer's own format; in place of ``fp32`` when ``out`` is the same path)."""
    from hwnas.devices.base import copy_model

    fp32, out = Path(fp32), Path(out)
    with tempfile.TemporaryDirectory(prefix="hwnas-precision-") as tmp, quiet_ort():
        src = Path(tmp) / "fp32.onnx"
        shutil.copyfile(fp32, src)
        q = device.quantizer(src, Path(tmp), random_calibration(src, seed=seed) if calibration is None
                             else calibration)
        if q is None:
            raise ConfigError(f"'{device.name}' has no quantizer, so it cannot run INT8 models; profile it with "
                              "--precision fp32 (or a precision its runtime takes as a setting).")
        q.check(policy)
        if not out.suffix:
            out = out.with_suffix(q.suffix)
        if out.suffix not in q.suffixes:
            raise ConfigError(f"'{device.name}' writes INT8 models as {'/'.join(q.suffixes)} files, not "
                              f"'{out.suffix}'; profile INT8 on onnxruntime-cpu or openvino-cpu.")
        built = q.build(policy, Path(tmp) / ("q" + out.suffix))
        copy_model(built, out)
    return out


@contextmanager
def quiet_ort():
    """ONNX Runtime's warnings off while quantizing (one 'removing initializer' line per layer otherwise)."""
    try:
        import onnxruntime as ort
    except ImportError:
        yield
        return
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)


def in_precision(device, build: Callable[[Any, Path], Any] | None, seed: int = 0):
    """``build`` (an ONNX builder of the profiler) writing models in the device's precision: for a
    quantized precision, each FP32 model it writes is quantized in the runtime's own format (in place
    of the ONNX file where that is ONNX, beside it otherwise) and that model's path returned."""
    if build is None or device.precision not in QUANTIZED_PRECISIONS:
        return build
    policy = PrecisionPolicy.uniform(device.precision)

    def built_in_precision(item, path: Path):
        build(item, path)
        return quantize_model(device, path, Path(path).with_suffix(""), policy, seed=seed)

    return built_in_precision
