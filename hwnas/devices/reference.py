"""Reference models for drift-cancelling measurement.

A reference is a fixed MobileNet-style network (depthwise-separable blocks with
ReLU and HardSwish, global pool, linear) written directly as ONNX with weights
from a fixed numpy seed, so its file — and sha256 — is the same on every machine
and independent of torch. Three sizes cover the latency range of typical
models; :func:`pick_reference` chooses the one closest to the model being
measured so both spend similar time per burst.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hwnas.fileio import atomic_write_bytes

REFERENCES = {"ref-small": 32, "ref-medium": 112, "ref-large": 224}
"""name → input resolution of the same reference network (3 channels)."""

_BLOCKS = [(32, 1), (48, 2), (48, 1), (96, 2), (96, 1), (160, 2), (160, 1), (320, 1)]  # (out channels, stride)


def _build(resolution: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def w(name: str, shape: tuple[int, ...], fan_in: int) -> str:
        inits.append(numpy_helper.from_array(
            (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name))
        return name

    def conv(x: str, cin: int, cout: int, k: int, s: int, groups: int, act: str, tag: str) -> str:
        wt = w(f"{tag}.w", (cout, cin // groups, k, k), cin // groups * k * k)
        b = w(f"{tag}.b", (cout,), cout)
        y = f"{tag}.conv"
        nodes.append(helper.make_node("Conv", [x, wt, b], [y], kernel_shape=[k, k], strides=[s, s],
                                      pads=[k // 2] * 4, group=groups, name=tag))
        if act:
            nodes.append(helper.make_node(act, [y], [f"{tag}.act"], name=f"{tag}.{act}"))
            y = f"{tag}.act"
        return y

    x = conv("input", 3, 24, 3, 2, 1, "HardSwish", "stem")
    c = 24
    for i, (cout, s) in enumerate(_BLOCKS):
        act = "Relu" if i < 4 else "HardSwish"
        x = conv(x, c, c, 3, s, c, act, f"b{i}.dw")
        x = conv(x, c, cout, 1, 1, 1, act, f"b{i}.pw")
        c = cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1, name="flatten"))
    fw = w("fc.w", (10, c), c)
    fb = w("fc.b", (10,), 10)
    nodes.append(helper.make_node("Gemm", ["flat", fw, fb], ["logits"], transB=1, name="fc"))
    graph = helper.make_graph(
        nodes, f"hwnas-reference-{resolution}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, resolution, resolution])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hwnas")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference_onnx(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Path of reference model ``name`` (written on first use into ``directory`` or a cache dir)."""
    from hwnas.errors import UnknownNameError, did_you_mean

    if name not in REFERENCES:
        raise UnknownNameError(f"Unknown reference '{name}'.{did_you_mean(name, REFERENCES)} "
                               f"Available: {', '.join(REFERENCES)}.")
    from hwnas.fileio import cache_dir

    d = Path(directory) if directory is not None else cache_dir("references")
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    if not path.exists():
        atomic_write_bytes(path, _build(REFERENCES[name]).SerializeToString())
    return path


def pick_reference(model_ms: float, ref_ms: dict[str, float]) -> str:
    """The reference whose latency is closest to ``model_ms`` on a log scale."""
    return min(ref_ms, key=lambda n: abs(np.log(max(ref_ms[n], 1e-6) / max(model_ms, 1e-6))))
