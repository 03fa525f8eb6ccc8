"""PyTorch module → ONNX file.

hwnas uses torch's TorchScript-based exporter (``dynamo=False``) at opset 17:
for these static CNNs it writes one self-contained file in ~0.2 s, folds
BatchNorm into the convolutions, and emits ``HardSwish``/``HardSigmoid`` as
single nodes. The dynamo exporter gives the same numerics but takes 4–6 s per
model, bumps the opset to 18 and writes external ``.onnx.data`` files by
default — too slow for a profiler that exports hundreds of models, and no
cleaner for this graph family.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from hwnas.fileio import atomic_write_bytes

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(module, input_shape: tuple[int, ...], path: str | os.PathLike, check: bool = True,
                output_name: str = OUTPUT_NAME) -> Path:
    """Export ``module`` (eval mode) for a fixed ``input_shape`` (N, C, H, W) to ``path``.

    The file is written atomically; ``onnx.checker`` validates it when ``check``.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    x = torch.zeros(*input_shape)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[output_name], do_constant_folding=True, dynamo=False)
    model = _drop_initializer_identities(onnx.load_from_string(buf.getvalue()))
    if check:
        onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())


def _drop_initializer_identities(model):
    """Remove the ``Identity`` nodes the exporter adds when it deduplicates equal initializers
    (common with freshly initialised weights); consumers read the initializer directly."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    outputs = {o.name for o in g.output}
    alias = {n.output[0]: n.input[0] for n in g.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    if not alias:
        return model
    keep = [n for n in g.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    del g.node[:]
    g.node.extend(keep)
    return model


def export_subnet(supernet, arch, path: str | os.PathLike, batch_size: int = 1) -> Path:
    """Extract ``arch`` from ``supernet`` and export it at its resolution."""
    from hwnas.supernet.extract import extract

    net = extract(supernet, arch)
    return export_onnx(net, supernet.space.input_shape(arch, batch_size), path)
