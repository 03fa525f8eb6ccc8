"""Profiles in INT8 are measured on INT8 models: the block table and end-to-end rows of an
``--precision int8`` ONNX Runtime profile time quantized (QDQ) models, not the FP32 ones."""

import numpy as np

from hwnas.devices.base import onnx_nodes


def _ops(path):
    return {op for _, op in onnx_nodes(path)}


def test_in_precision_quantizes_what_is_timed(tmp_path):
    from hwnas.devices import get_device
    from hwnas.devices.timing import TimingConfig
    from hwnas.pipeline.jobs import layer_builder
    from hwnas.profiling.precision import in_precision
    from hwnas.supernet.spaces import get_space

    sp = get_space("fmnist-mbv3")
    layer = max((lyr for lyr in sp.layers(sp.max_arch()) if lyr.kind == "mbconv"), key=lambda x: x.mid_ch)
    fp32_dev, int8_dev = get_device("onnxruntime-cpu"), get_device("onnxruntime-cpu", precision="int8")
    assert in_precision(fp32_dev, layer_builder()) is not None
    f, q = tmp_path / "f.onnx", tmp_path / "q.onnx"
    in_precision(fp32_dev, layer_builder())(layer, f)
    in_precision(int8_dev, layer_builder())(layer, q)
    assert "QuantizeLinear" not in _ops(f) and {"QuantizeLinear", "DequantizeLinear"} <= _ops(q)
    t = TimingConfig.quick()
    mf, mq = fp32_dev.measure(f, t, reference="none"), int8_dev.measure(q, t, reference="none")
    assert mf.model_sha256 != mq.model_sha256 and mq.stats.median_ms != mf.stats.median_ms


def test_int8_profile_rows_are_int8_models(tmp_path):
    import hwnas.pipeline.jobs as jobs
    from hwnas.profiles import DeviceProfile

    rows = {}
    for prec in ("fp32", "int8"):
        out = tmp_path / prec
        jobs.profile(space=("fmnist-mbv3",), out=out, precision=prec, samples=2, reference_set=1, repeats=0,
                     resolutions=(20,), ops=True, quick=True, energy=False, kernel_times=False)
        prof = DeviceProfile.open(out)
        assert prof.spec.precision == prec
        rows[prec] = (prof.ops_df("fmnist-mbv3"), prof.models_df("fmnist-mbv3"))
    (of, mf), (oq, mq) = rows["fp32"], rows["int8"]
    assert len(of) == len(oq) > 0 and len(mf) == len(mq) > 0
    # the same layers and subnets, but other model files (quantized), and other latencies
    assert sorted(of["layer"]) == sorted(oq["layer"])
    assert not set(of["model_sha256"]) & set(oq["model_sha256"])
    assert not set(mf["model_sha256"]) & set(mq["model_sha256"])
    a = of.set_index("layer")["latency_ms"]
    b = oq.set_index("layer")["latency_ms"].reindex(a.index)
    assert np.mean(np.abs(a.values - b.values) / a.values) > 0.02


def test_openvino_int8_profile_times_models_openvino_runs_in_int8(tmp_path):
    """An ``openvino-cpu --precision int8`` profile times NNCF's OpenVINO IR — what ``export`` deploys —
    written beside the FP32 ONNX (kept for the row's activations); the CPU plugin's runtime model runs
    its convolutions in INT8, and its weights are counted as the IR stores them (INT8, not FP32)."""
    import pytest

    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from hwnas.devices import get_device
    from hwnas.devices.onnx_memory import analytic_memory, model_memory
    from hwnas.pipeline.jobs import layer_builder
    from hwnas.profiling.precision import in_precision
    from hwnas.supernet.spaces import get_space

    sp = get_space("fmnist-mbv3")
    layer = max((lyr for lyr in sp.layers(sp.max_arch()) if lyr.kind == "mbconv"), key=lambda x: x.mid_ch)
    dev = get_device("openvino-cpu", precision="int8")
    assert dict(dev.spec().options)["int8_model"] == "ir"  # INT8 profiles made before timed QDQ ONNX
    f, path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    layer_builder()(layer, f)
    q = in_precision(dev, layer_builder())(layer, path)
    assert q.suffix == ".xml" and q.with_suffix(".bin").is_file()
    assert "QuantizeLinear" not in _ops(path)  # the FP32 ONNX it was quantized from stays beside it
    ran_q, ran_f = dev.ran_precisions(q)["summary"], dev.ran_precisions(f)["summary"]
    assert ran_q.get("int8", 0) >= 2 and set(ran_q) <= {"int8", "fp32"}, ran_q
    assert ran_f == {"fp32": ran_f.get("fp32", 0)} and ran_f["fp32"] >= 2, ran_f  # the FP32 model stays f32
    mq, mf = model_memory(q), analytic_memory(f)
    assert mq.weights_mb < 0.5 * mf.weights_mb and mq.peak_activations_mb == mf.peak_activations_mb


def test_openvino_int8_profile_rows_time_the_ir(tmp_path):
    import json

    import pytest

    pytest.importorskip("nncf")
    import hwnas.pipeline.jobs as jobs
    from hwnas.profiles import DeviceProfile

    out = tmp_path / "ov8"
    jobs.profile(space=("fmnist-mbv3",), out=out, device="openvino-cpu", precision="int8", samples=2, reference_set=1,
                 repeats=0, resolutions=(20,), ops=False, quick=True, energy=False, kernel_times=False)
    rows = DeviceProfile.open(out).models_df("fmnist-mbv3")
    assert len(rows) == 3 and (rows["weights_mb"] > 0).all()
    for g in rows["runtime_graph"]:
        convs = [n for n in json.loads(g)["nodes"] if n["op"] == "Convolution"]
        assert convs and sum(n["precision"] in ("u8", "i8") for n in convs) >= 0.9 * len(convs)
    assert not list(out.rglob("*.xml")) and not list(out.rglob("*.bin"))  # timed models are not left behind
