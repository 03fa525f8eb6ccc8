"""Export: precision policies, ORT INT8 quantization, the bundle (all-or-nothing) and its verification."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from dataclasses import replace

from hwnas.errors import BundleError, ConfigError
from hwnas.exporting.bundle import BundleWriter, DeploymentBundle
from hwnas.exporting.mixed import layer_groups, only
from hwnas.supernet.spaces import get_space
from hwnas.types import (
    AccuracyReport,
    DeploymentManifest,
    LatencyReport,
    MemoryReport,
    PrecisionPolicy,
    Rule,
)


def test_policy_rules_and_json(tmp_path):
    p = PrecisionPolicy("int8", (Rule("/first_conv/.*", "fp32"), Rule("/blocks\\.2/.*", "fp16")))
    assert p.precision_for("/first_conv/conv/Conv") == "fp32"
    assert p.precision_for("/blocks.2/conv/point_linear/conv/Conv") == "fp16"
    assert p.precision_for("/blocks.12/conv/Add") == "int8"  # no accidental prefix match
    p.save(tmp_path / "p.json")
    assert PrecisionPolicy.load(tmp_path / "p.json") == p
    with pytest.raises(ConfigError, match="Unknown precision 'int4'"):
        PrecisionPolicy("int4")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        PrecisionPolicy("int8", (Rule("/blocks[", "fp32"),))
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 0, "default": "int8"}))
    with pytest.raises(ConfigError, match="schema_version 0"):
        PrecisionPolicy.load(tmp_path / "old.json")


def test_layer_groups():
    nodes = ["/first_conv/conv/Conv", "/first_conv/act/HardSwish", "/blocks.0/conv/depth_conv/conv/Conv",
             "/blocks.1/conv/point_linear/conv/Conv", "/blocks.1/Add", "/blocks.10/conv/Mul",
             "/final_expand_layer/conv/Conv", "/classifier/linear/Gemm"]
    g = {x.name: x for x in layer_groups(nodes)}
    assert set(g) == {"stem", "block00", "block01", "block10", "head"}
    assert len(g["block01"].layers) == 2 and len(g["head"].layers) == 2
    pol = only(list(g.values()), ["block01"])
    assert pol.precision_for("/blocks.1/Add") == "int8"
    assert pol.precision_for("/blocks.10/conv/Mul") == "fp32"
    assert pol.precision_for("/classifier/linear/Gemm") == "fp32"


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    from hwnas.exporting.onnx_export import export_onnx
    from hwnas.devices.onnxruntime_quant import preprocess
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import recalibrate_bn
    from hwnas.supernet.extract import extract

    net, _ = load_supernet("tiny-mbv3")
    a = net.space.max_arch()
    train = get_dataset("fashion-mnist").split("train")
    sub = extract(net, a)
    recalibrate_bn(sub, train, a)
    d = tmp_path_factory.mktemp("q")
    fp32 = export_onnx(sub, (1, 1, a.r, a.r), d / "fp32.onnx")
    calib = train.inputs(a.r, 128)
    return fp32, preprocess(fp32, d / "pre.onnx"), calib


@pytest.mark.data
def test_policy_controls_which_nodes_are_quantized(tiny_fp32, tmp_path):
    from hwnas.devices.base import onnx_nodes as node_names
    from hwnas.devices.onnxruntime_quant import quantize

    _, pre, calib = tiny_fp32
    nodes = [n for n, _ in node_names(pre)]
    groups = layer_groups(nodes)
    q_all = quantize(pre, tmp_path / "all.onnx", PrecisionPolicy.uniform("int8"), calib)
    q_one = quantize(pre, tmp_path / "one.onnx", only(groups, ["block02"]), calib)

    def quantized_convs(path):
        g = onnx.load(str(path)).graph
        produced = {o: n for n in g.node for o in n.output}
        out = set()
        for n in g.node:
            w = produced.get(n.input[1]) if n.op_type == "Conv" else None
            if w is not None and w.op_type == "DequantizeLinear":  # INT8 weights
                out.add(n.name)
        return out

    all_q, one_q = quantized_convs(q_all), quantized_convs(q_one)
    convs = [n for n, op in node_names(pre) if op == "Conv"]
    assert set(convs) <= all_q
    assert one_q and all(n.startswith("/blocks.2/") for n in one_q)
    with pytest.raises(ConfigError, match="match no node"):
        quantize(pre, tmp_path / "x.onnx", PrecisionPolicy("int8", (Rule("/nothing/.*", "fp32"),)), calib)


def _manifest(**changes) -> DeploymentManifest:
    m = DeploymentManifest(
        arch="tiny-mbv3/r16_k3e2_k3e2", arch_key="k", space="tiny-mbv3", weights="w", precision="fp32",
        policy="policy.json", policy_summary={"fp32": 3}, deployed="model.onnx", compiled={"runtime": "onnxruntime"},
        preprocess={"resolution": 16}, device={"name": "onnxruntime-cpu", "threads": 1}, host={"cpu": "x"},
        dataset={"name": "fashion-mnist"}, accuracy=AccuracyReport("test", 10, 90.0, 89.5, 0.5),
        latency=LatencyReport(0.1, 0.12, 0.11, 0.1, "ref-small", 0.05, "own"), memory=MemoryReport(5.0, {"weights_mb": 1}))
    return replace(m, **changes)


def _bundle(tmp_path):
    out = tmp_path / "bundle"
    with BundleWriter(out) as w:
        (w.dir / "model.onnx").write_bytes(b"123")
        (w.dir / "openvino").mkdir()
        (w.dir / "openvino" / "model.bin").write_bytes(b"weights")
        b = w.finish(_manifest())
    return out, b


def test_bundle_writer_is_all_or_nothing(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with BundleWriter(out) as w:
            (w.dir / "model.onnx").write_bytes(b"123")
            raise RuntimeError("export failed half-way")
    assert not out.exists() and not list(tmp_path.glob(".bundle.partial*"))
    out, b = _bundle(tmp_path)
    assert set(b.manifest.files) == {"model.onnx", "openvino/model.bin"} and b.manifest.created
    opened = DeploymentBundle.open(out)
    assert opened.manifest == b.manifest and opened.manifest.accuracy.drop_pts == pytest.approx(0.5)
    with pytest.raises(BundleError, match="exists and is not empty"):
        BundleWriter(out)


@pytest.mark.parametrize("victim", ["model.onnx", "openvino/model.bin", "manifest.json", "manifest.sha256"])
def test_any_edited_byte_of_a_bundle_is_refused(tmp_path, victim):
    out, _ = _bundle(tmp_path)
    f = out / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="failed its integrity check"):
        DeploymentBundle.open(out)


def test_edited_claims_in_the_manifest_are_refused(tmp_path):
    """The manifest's claims (what is deployed, its accuracy) cannot be changed without detection,
    even as valid JSON with the other files untouched."""
    out, _ = _bundle(tmp_path)
    d = json.loads((out / "manifest.json").read_text())
    d["accuracy"]["deployed_top1"] = 99.9
    (out / "manifest.json").write_text(json.dumps(d, indent=1) + "\n")
    with pytest.raises(BundleError, match="manifest.json was modified"):
        DeploymentBundle.open(out)
    out2, _ = _bundle(tmp_path / "two")
    (out2 / "extra.bin").write_bytes(b"0")
    with pytest.raises(BundleError, match="extra.bin is not part of the bundle"):
        DeploymentBundle.open(out2)
    (out2 / "extra.bin").unlink()
    (out2 / "manifest.sha256").unlink()
    with pytest.raises(BundleError, match="manifest.sha256 is missing"):
        DeploymentBundle.open(out2)


@pytest.mark.data
@pytest.mark.slow
def test_export_int8_bundle_and_verify(tmp_path):
    from hwnas.pipeline import export, verify

    a = get_space("tiny-mbv3").max_arch()
    b = export(arch=a.to_str(), out=tmp_path / "b", precision="int8")
    m = b.manifest
    assert m.arch == a.to_str() and m.precision == "int8" and m.lineage["parent"] == {"kind": "arch", "id": a.key()}
    assert m.lineage["config"]["kind"] == "export"
    assert set(m.files) >= {"model.onnx", "model.fp32.onnx", "policy.json", m.deployed}
    assert m.accuracy.images == 10_000 and m.accuracy.fp32_top1 > 80 and m.dataset["name"] == "fashion-mnist"
    assert m.accuracy.drop_pts < 3.0  # a 24k-parameter net loses a little in INT8
    assert m.policy_summary.get("int8", 0) >= 10
    assert m.latency.measured_ms > 0 and m.memory.analytic_mb["weights_mb"] > 0
    r = verify(bundle=tmp_path / "b", latency_tolerance=10.0)  # latency agreement is a benchmark, not a unit test
    assert r.accuracy.ok and r.accuracy.diff == 0.0 and r.latency_ms > 0
    with pytest.raises(BundleError, match="exists"):
        export(arch=a.to_str(), out=tmp_path / "b", precision="int8")
    with (tmp_path / "b" / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="model.onnx was modified"):
        verify(bundle=tmp_path / "b")


@pytest.mark.openvino
@pytest.mark.data
def test_nncf_int8_for_openvino_honours_the_policy(tiny_fp32, tmp_path):
    from hwnas.devices import get_device
    from hwnas.devices.openvino_quant import quantize
    from hwnas.devices.base import onnx_nodes as node_names

    fp32, _, calib = tiny_fp32
    groups = layer_groups([n for n, _ in node_names(fp32)])
    dev = get_device("openvino-cpu")
    full = dev.load(quantize(fp32, tmp_path / "all.xml", PrecisionPolicy.uniform("int8"), calib)).runtime_graph()
    part = dev.load(quantize(fp32, tmp_path / "b2.xml", only(groups, ["block02"]), calib)).runtime_graph()

    def int8_convs(g):
        return {n["fused"] or n["name"] for n in g["nodes"] if n["op"] == "Convolution" and n["precision"] in ("u8", "i8")}

    assert len(int8_convs(full)) >= 15
    assert int8_convs(part) and all("/blocks.2/" in n for n in int8_convs(part))


@pytest.mark.openvino
@pytest.mark.data
@pytest.mark.slow
def test_openvino_int8_bundle_carries_the_ir_and_verifies(tmp_path):
    """A batched (throughput) bundle: the deployed IR and the FP32 graph take 4 images, the manifest's
    device runs batch 4, and verify re-measures it at that batch."""
    import openvino as ov

    from hwnas.pipeline import export, verify

    a = get_space("tiny-mbv3").min_arch()
    m = export(arch=a.to_str(), out=tmp_path / "b", device="openvino-cpu", precision="int8", batch_size=4).manifest
    assert m.deployed == "openvino/model.xml" and "model.onnx" not in m.files
    assert {"openvino/model.xml", "openvino/model.bin", "model.fp32.onnx"} <= set(m.files)
    assert m.memory.analytic_mb["weights_mb"] > 0  # from the FP32 graph: the IR holds no ONNX
    assert m.accuracy.drop_pts < 3.0
    assert m.device["batch_size"] == 4
    assert ov.Core().read_model(str(tmp_path / "b" / m.deployed)).input(0).get_partial_shape()[0].get_length() == 4
    fp32 = onnx.load(str(tmp_path / "b" / "model.fp32.onnx"))
    assert fp32.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    r = verify(bundle=tmp_path / "b", latency_tolerance=10.0)
    assert r.accuracy.ok and r.accuracy.diff == 0.0 and r.device == "openvino-cpu"


@pytest.mark.openvino
@pytest.mark.data
def test_openvino_mixed_search_times_the_ir_it_deploys(tiny_fp32, tmp_path):
    """The mixed search must judge the artefact it deploys: on OpenVINO the IR from NNCF's OpenVINO
    backend, not a QDQ ONNX file (which the CPU plugin ran 1.75-2.41x slower than that IR here)."""
    from hwnas.devices import get_device
    from hwnas.exporting.mixed import group_costs, search_policy

    fp32, _, calib = tiny_fp32
    q = get_device("openvino-cpu").quantizer(fp32, tmp_path, calib)
    groups = layer_groups(q.layers())[:2]
    seen = []

    def judged(path):
        seen.append(Path(path))
        return 90.0

    costs = group_costs(groups, q.build, judged, lambda p: judged(p) and 1.0, 90.0, 1.0, tmp_path)
    _, _, model = search_policy(groups, costs, 0.5, q.build, judged, lambda p: judged(p) - 89.5, 90.0, 1.0, tmp_path)
    assert seen and {p.suffix for p in seen} == {".xml"} and all(p.with_suffix(".bin").is_file() for p in seen)
    assert model.suffix == ".xml"


def test_export_batch_size_is_checked_before_any_work(tmp_path):
    from hwnas.pipeline import export

    a = get_space("tiny-mbv3").min_arch()
    for bad in (0, 257):
        with pytest.raises(ConfigError, match=r"--batch-size must be 1\.\.256"):
            export(arch=a.to_str(), out=tmp_path / "b", precision="int8", batch_size=bad)
    assert not (tmp_path / "b").exists()


def test_policy_search_reverts_top_down_when_no_single_group_gains(tmp_path):
    """A runtime that only speeds up once whole chains are INT8: no group gains alone, all-INT8 is
    fast but breaks the budget; the search must revert the sensitive groups from all-INT8."""
    from hwnas.exporting.mixed import GroupCost, search_policy

    nodes = ["/first_conv/conv/Conv"] + [f"/blocks.{i}/conv/Conv" for i in range(4)] + ["/classifier/linear/Gemm"]
    groups = layer_groups(nodes)
    sens = {"stem": 0.9, "block00": 0.05, "block01": 0.05, "block02": 0.05, "block03": 0.05, "head": 0.6}
    built = {}

    def build(policy, path):  # the policy's INT8 groups, written to the file the search will read back
        int8 = [g.name for g in groups if all(policy.precision_for(n) == "int8" for n in g.layers)]
        built[str(path)] = int8
        return path

    def accuracy(path):
        return 90.0 - sum(sens[g] for g in built[str(path)])

    def latency(path):  # 1 ms in FP32; each INT8 group costs 0.05 ms unless >= 4 groups are INT8 together
        n = len(built[str(path)])
        return 1.0 + 0.05 * n if n < 4 else 1.0 - 0.1 * n

    costs = [GroupCost(g.name, g.pattern, len(g.layers), sens[g.name], -0.05) for g in groups]
    policy, trials, path = search_policy(groups, costs, 0.5, build, accuracy, latency, 90.0, 1.0, tmp_path)
    chosen = next(t for t in trials if t.label == policy.notes["chosen"])
    assert policy.notes["chosen"].startswith("all-int8-r") and 90.0 - chosen.accuracy <= 0.5
    assert set(chosen.int8_groups) == {"block00", "block01", "block02", "block03"} and chosen.latency_ms < 1.0
    assert set(built[str(path)]) == set(chosen.int8_groups)  # the returned model is the chosen policy's
