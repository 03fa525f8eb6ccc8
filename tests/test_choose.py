"""The runtime chosen by measurement, and mixed policies through the manifest and verify (real runtimes,
the shipped tiny-mbv3 weights, Fashion-MNIST)."""

import json

import pytest

from hwnas.errors import BundleError
from hwnas.supernet.spaces import get_space


@pytest.mark.openvino
@pytest.mark.data
@pytest.mark.slow
def test_a_device_list_picks_a_runtime_by_measurement_and_records_the_table(tmp_path):
    from hwnas.devices.base import host_facts
    from hwnas.pipeline import export, verify

    a = get_space("tiny-mbv3").min_arch()
    b = export(arch=a.to_str(), out=tmp_path / "b", device="onnxruntime-cpu,openvino-cpu", precision="int8",
               max_accuracy_drop=2.0)
    m = b.manifest
    sel = m.selection
    rows = sel["table"]
    tried = {(r["runtime"], r["policy"]) for r in rows}
    want = {("onnxruntime-cpu", "fp32"), ("onnxruntime-cpu", "int8"), ("openvino-cpu", "fp32"), ("openvino-cpu", "int8")}
    from hwnas.devices import get_device

    for p in get_device("openvino-cpu").float_precisions():  # what the ISA has and the plugin offers
        if p != "fp32":
            want |= {("openvino-cpu", p), ("openvino-cpu", f"int8+{p}")}
    assert ("bf16" in get_device("openvino-cpu").float_precisions()) == \
        bool({"avx512_bf16", "amx_bf16"} & set(host_facts().get("isa", [])))
    assert tried == want, tried  # every runtime × policy the hardware has, nothing it lacks
    chosen = [r for r in rows if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["within_budget"]
    w = chosen[0]
    assert (m.device["name"], m.device["precision"], m.policy_label) == (w["runtime"], w["precision"], w["policy"])
    for r in rows:
        lo, hi = r["speedup_ci"]
        assert lo <= r["speedup"] <= hi and r["latency_ms"] > 0 and r["verdict"], r
    # the winner is the fastest measurable gain within the budget, else the baseline
    gains = [r for r in rows if r["within_budget"] and r["verdict"] == "gain"]
    assert w == (max(gains, key=lambda r: r["speedup"]) if gains else next(r for r in rows if r["verdict"] == "baseline"))
    assert sel["baseline"] == "onnxruntime-cpu fp32" and sel["reason"].startswith(f"{w['runtime']} ")
    assert m.runtime_precisions["summary"]  # what the deployed artifact really runs
    if "int8" in w["policy"]:
        assert m.runtime_precisions["summary"].get("int8", 0) > 0
    r = verify(bundle=b.path, latency_tolerance=10.0)
    assert r.accuracy.ok and r.device == w["runtime"]
    doc = json.loads((b.path / "manifest.json").read_text())
    doc["selection"]["table"][0]["speedup"] = 9.9
    (b.path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError):
        verify(bundle=b.path)


def test_device_auto_names_the_installed_runtimes():
    from hwnas.exporting.choose import device_names, is_choice

    names = device_names("auto", 1)
    assert "onnxruntime-cpu" in names and all("@" not in n and "cuda" not in n for n in names)
    assert device_names("onnxruntime-cpu, openvino-cpu", 1) == ["onnxruntime-cpu", "openvino-cpu"]
    assert is_choice("auto") and is_choice("a,b") and not is_choice("openvino-cpu")
    assert not is_choice("onnxruntime-cpu@board-a,board-b")  # one device on two boards


@pytest.mark.openvino
@pytest.mark.data
@pytest.mark.slow
def test_a_mixed_policy_round_trips_through_the_manifest_and_verify(tmp_path):
    """A hand-made mixed policy (two blocks INT8; BF16 elsewhere where the CPU has it) in a bundle: policy.json
    reads back equal, the manifest's record of what ran has those blocks INT8, verify passes and refuses an edit."""
    import tempfile
    from pathlib import Path

    from hwnas.datasets import get_dataset
    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.exporting import build as B
    from hwnas.exporting.bundle import DeploymentBundle
    from hwnas.exporting.evaluate import DeviceEvaluator
    from hwnas.exporting.mixed import layer_groups, only
    from hwnas.exporting.verify import verify
    from hwnas.types import PrecisionPolicy

    bf16 = bool({"avx512_bf16", "amx_bf16"} & set(host_facts().get("isa", [])))
    dev = get_device("openvino-cpu", precision="bf16" if bf16 else "fp32")
    a = get_space("tiny-mbv3").max_arch()
    ds = get_dataset(None, a.space)
    train, test = ds.splits("train", "test")
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    fp32, weights = B.fp32_subnet(a, None, train, work)
    q = dev.quantizer(fp32, work, train.calibration_inputs(a.r, 64))
    groups = layer_groups(q.layers())
    policy = only(groups, ["block01", "block03"], dev.precision)
    model = q.build(policy, work / "mixed")
    ev = DeviceEvaluator(dev, test, a.r, {})
    plan = B.Plan(dev, B.Chosen(model, policy, [], q.weighted_layers()), ev, ev.accuracy(fp32), ev.latency(fp32),
                  {}, "test scale")
    b = B.write_bundle(tmp_path / "b", False, a, plan, fp32, "mixed", 1.0, weights, ds.describe(), test, {})
    m = b.manifest
    assert PrecisionPolicy.load(b.path / "policy.json") == policy and m.policy_label == policy.label()
    assert m.policy_label == ("mixed int8/bf16" if bf16 else "mixed int8/fp32") and m.device["precision"] == dev.precision
    layers = m.runtime_precisions["layers"]
    in_policy = [n for n in layers if policy.precision_for(n) == "int8"]
    assert in_policy and all(layers[n] == "int8" for n in in_policy), layers
    assert any(p == dev.precision for n, p in layers.items() if n not in in_policy), layers
    assert not [x for x in m.runtime_precisions["mismatches"] if "asked int8" in x]  # every INT8 layer ran INT8
    again = DeploymentBundle.open(b.path).manifest
    assert again.runtime_precisions == m.runtime_precisions and again.policy_label == m.policy_label
    r = verify(b.path, latency_tolerance=10.0)
    assert r.accuracy.ok and r.device == "openvino-cpu"
    pol = json.loads((b.path / "policy.json").read_text())
    pol["rules"] = pol["rules"][:1]
    (b.path / "policy.json").write_text(json.dumps(pol))
    with pytest.raises(BundleError, match="policy.json"):
        verify(b.path)


def test_the_pick_is_the_fastest_measurable_gain_within_the_budget():
    """The rule on a table of measured rows: over-budget and inside-the-noise rows never win."""
    from hwnas.devices import get_device
    from hwnas.exporting.choose import Tried, _pick

    def row(rt, prec, pol, drop, s, lo, hi, verdict):
        return Tried(rt, prec, pol, 90 - drop, drop, drop <= 0.5, 1.0 / s, s, (lo, hi), verdict)

    ort = get_device("onnxruntime-cpu")
    base = row("onnxruntime-cpu", "fp32", "fp32", 0.0, 1.0, 1.0, 1.0, "baseline")
    table = [base, row("onnxruntime-cpu", "fp32", "int8", 2.0, 1.9, 1.8, 2.0, "gain"),  # fast, over budget
             row("onnxruntime-cpu", "fp32", "mixed int8/fp32", 0.3, 1.25, 1.2, 1.3, "gain"),
             row("onnxruntime-cpu", "fp32", "mixed int8/fp32", 0.1, 1.3, 0.9, 1.7, NO := "no measurable gain"),
             row("onnxruntime-cpu", "fp32", "int8", 0.4, 1.2, 1.15, 1.22, "gain")]
    ch = _pick(table, [ort], ort, 0.5)
    assert ch.winner is table[2] and sum(t.chosen for t in table) == 1
    assert ch.reason == ("onnxruntime-cpu mixed int8/fp32: 1.25x faster than onnxruntime-cpu fp32 (CI 1.20-1.30), "
                         "drop 0.3 pts <= 0.5; runner-up onnxruntime-cpu int8 1.20x, intervals overlap")
    only_noise = [row("onnxruntime-cpu", "fp32", "fp32", 0.0, 1.0, 1.0, 1.0, "baseline"),
                  row("onnxruntime-cpu", "fp32", "int8", 0.1, 1.3, 0.9, 1.7, NO)]
    ch = _pick(only_noise, [ort], ort, 0.5)
    assert ch.winner is only_noise[0] and "was measurably faster" in ch.reason
