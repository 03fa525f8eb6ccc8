"""Analytic memory from ONNX tensor lifetimes, on hand-built graphs whose answer is known."""

import numpy as np
import pytest

from hwnas.devices.onnx_memory import MIB, analytic_memory
from hwnas.errors import DeviceError


def _model(path, residual: bool):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")  # 432 B
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")  # 16 B
    w2 = numpy_helper.from_array(np.ones((3, 4, 1, 1), np.float32), "w2")  # 48 B
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),  # 1x4x8x8 = 1024 B
             helper.make_node("Relu", ["c"], ["r"]),  # 1024 B
             helper.make_node("Conv", ["r", "w2"], ["p"])]  # 1x3x8x8 = 768 B
    out = "p"
    if residual:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
        out = "y"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3, 8, 8])], [w, b, w2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))
    return path


def test_chain_peak_is_the_largest_adjacent_pair(tmp_path):
    mem = analytic_memory(_model(tmp_path / "chain.onnx", residual=False))
    assert mem.weights_mb * MIB == 432 + 16 + 48
    # x dies after the first conv; the peak is Relu: c (1024) + r (1024)
    assert mem.peak_activations_mb * MIB == 2048 and mem.n_nodes == 3
    assert mem.total_mb == pytest.approx(mem.weights_mb + mem.peak_activations_mb)


def test_residual_input_stays_alive_until_the_add(tmp_path):
    mem = analytic_memory(_model(tmp_path / "res.onnx", residual=True))
    # x (768) is needed by the Add, so it is live at the Relu too: 768 + 1024 + 1024
    assert mem.peak_activations_mb * MIB == 768 + 2048


def test_exported_subnet_memory_grows_with_resolution(tmp_path):
    from conftest import randomize_
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    net = randomize_(ElasticMBV3("tiny-mbv3"))
    small = analytic_memory(export_subnet(net, net.space.max_arch(16), tmp_path / "s.onnx"))
    large = analytic_memory(export_subnet(net, net.space.max_arch(28), tmp_path / "l.onnx"))
    assert small.weights_mb == pytest.approx(large.weights_mb)  # same weights
    assert large.peak_activations_mb > 2 * small.peak_activations_mb  # (28/16)^2 ≈ 3x pixels
    params_mb = net.space.params(net.space.max_arch(28)) * 4 / MIB
    assert large.weights_mb == pytest.approx(params_mb, rel=0.1)  # BN folded into conv: about the same


def test_unreadable_model_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"not onnx")
    with pytest.raises(DeviceError, match="Cannot read ONNX model"):
        analytic_memory(p)
