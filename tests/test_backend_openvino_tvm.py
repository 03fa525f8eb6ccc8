"""OpenVINO and TVM backends on real runtimes: same outputs as ONNX Runtime, explicit settings, artifacts."""

import numpy as np
import pytest

from conftest import assert_agree, randomize_, structured_inputs


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    a = ElasticMBV3("fmnist-mbv3").space.sample(np.random.default_rng(2), [28])
    net = randomize_(ElasticMBV3("fmnist-mbv3"), seed=3, arch=a)
    return export_subnet(net, a, tmp_path_factory.mktemp("bk") / "m.onnx")


X = structured_inputs(6, 1, 28, seed=11)


def _out(model, x=X):
    """Outputs of a loaded (batch-1) model for each input row."""
    return np.concatenate([model.infer(x[i:i + 1]) for i in range(len(x))])


def _ort_out(path, x=X):
    from hwnas.devices import get_device

    return _out(get_device("onnxruntime-cpu").load(path), x)


@pytest.mark.openvino
def test_openvino_matches_ort_and_records_precision(onnx_model, tmp_path):
    from hwnas.devices import get_device
    from hwnas.devices.measure import measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.errors import ConfigError, DeviceError

    dev = get_device("openvino-cpu", threads=1)
    assert dev.spec().precision == "fp32" and dev.config()["INFERENCE_PRECISION_HINT"] == "f32"
    m = dev.load(onnx_model)
    ref = _ort_out(onnx_model)
    assert_agree(_out(m), ref)
    g = m.runtime_graph()
    assert any(n["op"] == "Convolution" for n in g["nodes"]) and all(n["precision"] in ("f32", "") or
                                                                     n["op"] in ("Const", "Parameter", "Result")
                                                                     for n in g["nodes"] if n["op"] == "Convolution")
    art = dev.compile_artifact(onnx_model, tmp_path)
    ir = tmp_path / art.path
    assert ir.suffix == ".xml" and ir.with_suffix(".bin").is_file() and art.runtime == "openvino"
    assert_agree(_out(dev.load(ir)), ref)
    meas = measure_model(dev, ir, TimingConfig.quick(), reference="none")
    assert meas.stats.median_ms > 0
    with pytest.raises(ConfigError, match="precision must be one of"):
        get_device("openvino-cpu", precision="int4")
    # what ran is read from the runtime model: bf16 where the CPU has bf16 instructions, an error otherwise
    from hwnas.devices.base import host_facts
    from hwnas.devices.openvino_cpu import compute_precisions

    if {"avx512_bf16", "amx_bf16"} & set(host_facts().get("isa", [])):
        ran = compute_precisions(get_device("openvino-cpu", precision="bf16").load(onnx_model).compiled)
        assert ran.get("bf16", 0) > 0, ran
    else:  # refused before anything runs: OpenVINO would run it in f32
        with pytest.raises(ConfigError, match="lacks avx512_bf16/amx_bf16"):
            get_device("openvino-cpu", precision="bf16")


def test_a_silent_precision_change_is_refused():
    """The check that keeps OpenVINO from running another precision than asked, on any CPU."""
    from hwnas.devices.openvino_cpu import check_precision
    from hwnas.errors import DeviceError

    check_precision("fp32", {"f32": 12})
    check_precision("bf16", {"bf16": 10, "f32": 2})  # a few layers stay f32 (e.g. the first conv)
    check_precision("fp32", {"u8": 10, "f32": 2})  # an INT8 model with float layers beside
    check_precision("fp32", {"i8": 4})
    with pytest.raises(DeviceError, match="as 12 bf16, not the requested fp32"):
        check_precision("fp32", {"bf16": 12})
    with pytest.raises(DeviceError, match="not the requested bf16: this CPU lacks bf16 instructions"):
        check_precision("bf16", {"f32": 12})
    with pytest.raises(DeviceError, match="not the requested fp16"):
        check_precision("fp16", {"f32": 12})


@pytest.mark.tvm
def test_tvm_matches_ort_and_exports_a_library(onnx_model, tmp_path):
    from hwnas.devices import get_device

    dev = get_device("tvm-llvm", threads=1)
    ref = _ort_out(onnx_model)
    m = dev.load(onnx_model)
    assert_agree(_out(m), ref)
    m.run()
    lib = tmp_path / dev.compile_artifact(onnx_model, tmp_path).path
    assert lib.suffix == ".so"
    assert_agree(_out(dev.load(lib)), ref)
    assert "(" in dev.spec().hardware  # the LLVM mcpu the code was compiled for is recorded


def test_gpu_backends_are_listed_with_their_fix():
    from hwnas.devices import list_devices

    rows = {r["name"]: r for r in list_devices()}
    for name in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
        r = rows[name]
        if not r["available"]:
            assert "onnxruntime-gpu" in r["detail"] and "hwnas[gpu]" in r["detail"]


@pytest.mark.gpu
def test_ort_cuda_matches_cpu(onnx_model):
    from hwnas.devices import get_device

    dev = get_device("onnxruntime-cuda", threads=1)
    ref = _ort_out(onnx_model)
    m = dev.load(onnx_model)
    assert "CUDAExecutionProvider" in m.session.get_providers()
    assert_agree(_out(m), ref, 1e-2)
    assert dev.spec().provider == "CUDA"
