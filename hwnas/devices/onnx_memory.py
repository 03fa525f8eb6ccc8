"""Analytic memory of an ONNX model: weights + peak live activations from tensor lifetimes.

For microcontroller-class budgets what matters is not a process's resident size but how many
bytes the model itself needs: its weights (initializers) and, while it runs, the activations
that are alive at the same time. This module walks the graph in its stored (topological)
order: an activation is born when its producing node runs and dies after its last consumer
(graph outputs live to the end; the graph input lives until its last consumer). At each node
the live set is the tensors still needed plus the node's outputs being written; the peak
over all nodes is the activation memory. No in-place reuse and no operator scratch space are
assumed, so the figure is what a simple static memory planner needs (an upper bound for an
arena that reuses buffers in place). Sizes come from ONNX shape inference; units are MiB
(2**20 bytes).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from hwnas.errors import DeviceError

_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
"""ONNX TensorProto element type → bytes (FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL,
FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16)."""

MIB = float(2**20)


@dataclass(frozen=True)
class AnalyticMemory:
    """``weights_mb`` + ``peak_activations_mb`` = ``total_mb``; ``peak_node`` is where the peak is."""

    weights_mb: float
    peak_activations_mb: float
    total_mb: float
    peak_node: str
    n_nodes: int

    def to_dict(self) -> dict:
        return asdict(self)


def _nbytes(vi, fallback_batch: int = 1) -> int | None:
    t = vi.type.tensor_type
    size = _DTYPE_BYTES.get(t.elem_type)
    if size is None or not t.HasField("shape"):
        return None
    n = 1
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            n *= d.dim_value
        else:  # a symbolic (batch) dimension
            n *= fallback_batch
    return n * size


def analytic_memory(onnx_path: str | os.PathLike) -> AnalyticMemory:
    """Weights and peak live activations of the model at ``onnx_path`` (see the module doc)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = onnx.load(str(onnx_path))
        model = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # onnx raises several unrelated types
        raise DeviceError(f"Cannot read ONNX model '{onnx_path}' for its memory: {exc}") from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    weights = sum(int(np.prod(i.dims, dtype=np.int64)) * _DTYPE_BYTES.get(i.data_type, 4) for i in g.initializer)
    # constants produced by Constant nodes count as weights too
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    weights += numpy_helper.to_array(a.t).nbytes
    sizes: dict[str, int] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name not in inits:
            b = _nbytes(vi)
            if b is not None:
                sizes[vi.name] = b
    nodes = [n for n in g.node if n.op_type != "Constant"]
    const_outputs = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    last_use: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for name in n.input:
            if name and name not in inits and name not in const_outputs:
                last_use[name] = i
    outputs = {o.name for o in g.output}
    for o in outputs:
        last_use[o] = len(nodes)
    missing = [o for n in nodes for o in n.output if o and o not in sizes]
    if missing:
        raise DeviceError(f"Shape inference left {len(missing)} tensor(s) of '{onnx_path}' without a static "
                          f"shape (first: '{missing[0]}'); export the model with fixed input shapes.")
    live = {vi.name: sizes.get(vi.name, 0) for vi in g.input if vi.name not in inits}
    peak, peak_node = sum(live.values()), "input"
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                live[o] = sizes[o]
        cur = sum(live.values())
        if cur > peak:
            peak, peak_node = cur, n.name or n.op_type
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in outputs:
                del live[name]
    return AnalyticMemory(weights_mb=weights / MIB, peak_activations_mb=peak / MIB,
                          total_mb=(weights + peak) / MIB, peak_node=peak_node, n_nodes=len(nodes))


def model_memory(path: str | os.PathLike) -> AnalyticMemory:
    """:func:`analytic_memory` of an ONNX model; of a model in a runtime's own format (an OpenVINO IR
    a profiler wrote beside the FP32 ONNX it was quantized from): weights as that format stores them
    (its files other than the graph, e.g. the IR's ``.bin``), activations from the ONNX beside it."""
    from pathlib import Path

    from hwnas.devices.base import model_files

    p = Path(path)
    if p.suffix == ".onnx":
        return analytic_memory(p)
    twin = p.with_suffix(".onnx")
    if not twin.is_file():
        raise DeviceError(f"No analytic memory for '{p.name}': it is not ONNX and no ONNX model lies beside it "
                          f"('{twin.name}').")
    act = analytic_memory(twin)
    weights = sum(f.stat().st_size for f in model_files(p)[1:]) / MIB
    return AnalyticMemory(weights_mb=weights, peak_activations_mb=act.peak_activations_mb,
                          total_mb=weights + act.peak_activations_mb, peak_node=act.peak_node, n_nodes=act.n_nodes)
