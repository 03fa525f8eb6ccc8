"""The whole job end to end on the tiny space: profile → fit → search → export → verify → report."""

import json

import pytest

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_quickstart_on_the_tiny_space(tmp_path):
    from hwnas.exporting.bundle import DeploymentBundle
    from hwnas.pipeline import quickstart, verify
    from hwnas.types import ParetoFront

    msgs = []
    s = quickstart(out=tmp_path / "qs", space="tiny-mbv3", samples=20, reference_set=6, repeats=3, generations=10,
                   pop_size=30, reuse_shipped=False, progress=msgs.append)
    assert any(m.startswith("[1/5] profiling") for m in msgs) and any(m.startswith("[5/5]") for m in msgs)
    # the chosen subnet meets the budget when measured, and the bundle passes its accuracy check on the device
    assert s["meets_budget_measured"] and s["measured_ms"] <= s["latency_budget_ms"]
    front = ParetoFront.load(tmp_path / "qs" / "search")
    assert front.candidates[front.best].arch.to_str() == s["arch"]
    b = DeploymentBundle.open(tmp_path / "qs" / "bundle")
    m = b.manifest
    assert m.arch == s["arch"]
    # the export chose its runtime × policy by measurement, and says why in one line
    rows = m.selection["table"]
    assert sum(r["chosen"] for r in rows) == 1 and {r["runtime"] for r in rows} >= {"onnxruntime-cpu"}
    assert s["choice"] == m.selection["reason"] and "\n" not in s["choice"]
    assert s["choice"].startswith(f"{m.device['name']} ") and any(s["choice"] in x for x in msgs)
    if m.device["name"] == "onnxruntime-cpu" and m.device["precision"] == "fp32":  # the searched-for device
        assert m.latency.predicted_ms == pytest.approx(s["predicted_ms"])
    # lineage: profile -> run -> bundle, each with its config
    assert m.lineage["parent"]["kind"] == "run" and m.lineage["parent"]["candidate"] == front.best
    assert front.meta["lineage"]["parent"]["kind"] == "profile" and front.meta["lineage"]["config"]["kind"] == "search"
    # every figure is the device's milliseconds now; a profile just measured here is used as it is
    assert m.latency.scale.startswith(f"milliseconds of {m.device['name']} at")
    assert "measured on this host with these settings" in s["calibration"]
    from hwnas.types import DeviceSpec

    assert front.meta["calibrated"]
    if m.device["name"] == "onnxruntime-cpu":
        assert front.meta["device_id"] == DeviceSpec.from_dict(m.device).id()
    assert (tmp_path / "qs" / "search" / "measurements" / "models.parquet").exists()
    r = verify(bundle=tmp_path / "qs" / "bundle", latency_tolerance=10.0)
    assert r.accuracy.ok and r.latency_ms > 0
    report = (tmp_path / "qs" / "report.md").read_text()
    assert s["arch"] in report and "figures/pareto_latency_ms.png" in report
    for line in report.splitlines():
        if line.startswith("![") and "figures/" in line:
            assert (tmp_path / "qs" / line.split("(", 1)[1].rstrip(")")).is_file()
    assert json.loads((tmp_path / "qs" / "quickstart.json").read_text())["bundle"] == s["bundle"]
