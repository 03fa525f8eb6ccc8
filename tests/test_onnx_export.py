import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import assert_agree, randomize_, structured_inputs
from hwnas.exporting.onnx_export import OPSET, export_onnx, export_subnet
from hwnas.supernet.elastic import ElasticMBV3
from hwnas.supernet.extract import extract

# Conv+BN folding and fused kernels change float rounding order; 1e-3 of how much the outputs vary
# from input to input is far below any accuracy-relevant difference, and far above that rounding.
RTOL = 1e-3


@pytest.mark.parametrize("space,res", [("ofa-mbv3-w1.0", 128), ("fmnist-mbv3", 28), ("tiny-mbv3", 20)])
def test_export_is_clean_and_matches_torch(tmp_path, space, res):
    sp = ElasticMBV3(space).space
    a = sp.sample(np.random.default_rng(5), [res])
    net = randomize_(ElasticMBV3(space), seed=4, arch=a)
    path = export_subnet(net, a, tmp_path / "m.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET >= 17
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops  # BN folded, no leftovers
    assert ops <= {"Conv", "Relu", "HardSwish", "HardSigmoid", "Mul", "Add", "ReduceMean", "Flatten", "Gemm"}
    x = structured_inputs(6, sp.in_channels, a.r, seed=7)
    with torch.no_grad():
        ref = extract(net, a)(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    assert_agree(out, ref, RTOL)
    with pytest.raises(AssertionError, match="max difference"):  # an export that ignored its input fails the bar
        assert_agree(np.repeat(out[:1], len(out), axis=0), ref, RTOL)


def test_export_batch_and_atomic_overwrite(tmp_path):
    net = randomize_(ElasticMBV3("tiny-mbv3"))
    a = net.space.max_arch()
    p = export_onnx(extract(net, a), net.space.input_shape(a, 4), tmp_path / "sub" / "m.onnx")
    dims = [d.dim_value for d in onnx.load(p).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 1, 28, 28]
    assert not list((tmp_path / "sub").glob("*.tmp"))
