"""The profiler on real ONNX Runtime sessions: tiny space, short timings, resume, kill -9, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hwnas.devices import get_device, list_devices
from hwnas.errors import ProfileError, RuntimeMissingError
from hwnas.profiles import DeviceProfile
from hwnas.profiling import measure_archs
from hwnas.profiles.journal import journal_path
from hwnas.supernet.spaces import get_space

QUICK = ["--quick", "--reference-set", "2", "--repeats", "1"]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A small real profile of tiny-mbv3 (block table at two resolutions + 6 random + 2 reference + 1 repeat)."""
    from hwnas.pipeline import profile

    out = tmp_path_factory.mktemp("p") / "tiny-cpu"
    res = profile(space=["tiny-mbv3"], out=out, device="onnxruntime-cpu", threads=1, samples=6, reference_set=2,
                  repeats=1, resolutions=[16, 28], quick=True)
    return out, res


def test_profile_holds_every_planned_row(profiled):
    out, res = profiled
    r = res.spaces["tiny-mbv3"]
    assert r["measured"] == r["planned"] and r["already_stored"] == 0
    prof = DeviceProfile.open(out)
    models, ops = prof.models_df("tiny-mbv3"), prof.ops_df("tiny-mbv3")
    assert dict(models["kind"].value_counts()) == {"random": 6, "reference": 2, "repeat": 1}
    sp = get_space("tiny-mbv3")
    assert set(ops["layer_key"]) == {layer.key() for layer in sp.all_layers([16, 28])}
    assert ops["layer_key"].is_unique and models["row_key"].is_unique
    # normalised = ratio x the profile's canonical latency of the reference used
    canon = prof.reference_ms_by_name
    expect = models["ref_ratio"] * models["ref_name"].map(canon).astype(float)
    assert np.allclose(models["latency_ms"], expect)
    assert (models["analytic_memory_mb"] > models["weights_mb"]).all() and (models["weights_mb"] > 0).all()
    assert models["peak_memory_mb"].notna().all()
    assert models["energy_mj"].isna().all() == (prof.meta["energy"]["meter"] is None)
    if prof.meta["energy"]["meter"] is None:
        assert prof.meta["energy"]["why"] and models["energy_note"].str.startswith("no energy meter").all()
    g = json.loads(models["runtime_graph"].iloc[0])
    assert g["source"] == "kernel_profile"
    ops_run = {k["op"] for k in g["kernels"]}
    assert "Conv" in ops_run and "BatchNormalization" not in ops_run  # BN folded, conv fused with its activation
    assert all("us" in k and k["outputs"] for k in g["kernels"])
    # the repeat row re-measures a reference arch
    rep = models[models["kind"] == "repeat"].iloc[0]
    first = models[(models["arch_key"] == rep["arch_key"]) & (models["repeat"] == 0)].iloc[0]
    assert first["kind"] == "reference" and rep["row_key"] != first["row_key"]
    q = prof.meta["quality"]["spaces"]["tiny-mbv3"]
    assert q["repeatability"]["n_pairs"] == 1 and "normalised" in q["repeatability"]
    assert prof.sessions and prof.reference_ms > 0


def test_rerun_measures_nothing_and_more_samples_extend(profiled):
    out, _ = profiled
    r = _cli("profile", "--space", "tiny-mbv3", "--out", str(out), "--samples", "6", "--resolutions", "16,28",
             *QUICK, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["spaces"]["tiny-mbv3"]
    assert res["measured"] == 0 and res["already_stored"] == res["planned"]
    before = DeviceProfile.open(out).models_df().set_index("row_key")["latency_ms"]
    r = _cli("profile", "--space", "tiny-mbv3", "--out", str(out), "--samples", "8", "--resolutions", "16,28",
             *QUICK, "--json")
    assert json.loads(r.stdout)["spaces"]["tiny-mbv3"]["measured"] == 2  # only the two new samples
    after = DeviceProfile.open(out).models_df().set_index("row_key")["latency_ms"]
    assert after.loc[before.index].equals(before)  # nothing already stored was touched


def test_measure_archs_appends_and_reuses(profiled):
    from hwnas.pipeline.jobs import subnet_builder

    out, _ = profiled
    prof = DeviceProfile.open(out)
    sp = get_space("tiny-mbv3")
    build, _ = subnet_builder("tiny-mbv3")
    known = sp.from_genome(sp.to_genome(__import__("hwnas.types", fromlist=["x"]).ArchConfig.parse(
        prof.models_df()["arch"].iloc[0])))
    new = sp.min_arch(20)
    n0 = len(prof.models_df())
    calls = []

    def counting_build(a, p):
        calls.append(a)
        return build(a, p)

    from hwnas.devices.timing import TimingConfig

    dev = get_device("onnxruntime-cpu", threads=1)
    rows = measure_archs(prof, [known, new], counting_build, dev, kind="search", timing=TimingConfig.quick(),
                         kernel_times=False)
    assert [r.identity["arch"] for r in rows] == [known.to_str(), new.to_str()]
    assert calls == ([new] if new.key() not in set(prof.models_df()["arch_key"][:n0]) else [])
    assert rows[1].identity["kind"] in ("search", "random", "reference") and rows[1].latency_ms > 0
    assert len(DeviceProfile.open(out).models_df()) == n0 + len(calls)
    with pytest.raises(ProfileError, match="was measured on .*Profile it into another --out"):
        measure_archs(prof, [sp.max_arch(16)], build, get_device("onnxruntime-cpu", threads=2), kind="search")


@pytest.mark.slow
def test_kill_9_loses_at_most_the_row_in_flight(tmp_path):
    out = tmp_path / "killed"
    args = ["profile", "--space", "tiny-mbv3", "--out", str(out), "--no-ops", "--samples", "24", *QUICK]
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    jp = journal_path(out, "models")
    deadline = time.time() + 120
    while time.time() < deadline:
        if jp.exists() and jp.read_bytes().count(b"\n") >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = jp.read_bytes().count(b"\n")
    assert lines >= 6, proc.stderr.read().decode()[-2000:]
    stored = DeviceProfile.open(out).models_df().set_index("row_key")
    assert len(stored) == lines  # every fsynced row survived
    r = _cli(*args, "--json")  # resume
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["spaces"]["tiny-mbv3"]
    assert res["already_stored"] == lines and res["measured"] == res["planned"] - lines
    final = DeviceProfile.open(out).models_df().set_index("row_key")
    assert len(final) == res["planned"] and final.index.is_unique
    assert final.loc[stored.index, "latency_ms"].equals(stored["latency_ms"])
    assert not jp.exists() and (out / "models.parquet").exists()


def test_bad_input_gives_one_line_errors(tmp_path, profiled):
    out, _ = profiled
    r = _cli("profile", "--space", "tiny-mbv3", "--device", "onnxrt-cpu", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "Did you mean 'onnxruntime-cpu'" in r.stderr and "Traceback" not in r.stderr
    r = _cli("profile", "--space", "tiny-mbv3", "--threads", "2", "--out", str(out), *QUICK, "--no-ops")
    assert r.returncode == 2 and "was measured on" in r.stderr and "another --out" in r.stderr
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "file.txt").write_text("mine")
    r = _cli("profile", "--space", "tiny-mbv3", "--out", str(junk))
    assert r.returncode == 2 and "not an empty directory" in r.stderr
    assert (junk / "file.txt").read_text() == "mine"
    r = _cli("profile", "--space", "tiny-mbv3", "--out", str(tmp_path / "y"), "--resolutions", "17")
    assert r.returncode == 2 and "not in space 'tiny-mbv3'" in r.stderr
    r = _cli("profile-info", str(junk))
    assert r.returncode == 2 and "not a hwnas device profile" in r.stderr


def test_missing_runtime_names_the_extra():
    missing = [d for d in list_devices() if not d["available"]]
    if not missing:
        pytest.skip("every registered backend's runtime is installed here")
    d = missing[0]
    with pytest.raises(RuntimeMissingError):
        get_device(d["name"])
    if d["extra"]:
        assert f"hwnas[{d['extra']}]" in d["detail"]
    r = _cli("profile", "--space", "tiny-mbv3", "--device", d["name"], "--out", "/nonexistent/never-created")
    assert r.returncode == 2 and "not available" in r.stderr


def _other_backends():
    marks = {"openvino": pytest.mark.openvino, "tvm": pytest.mark.tvm, "cuda": pytest.mark.gpu,
             "tensorrt": pytest.mark.gpu, "gpu": pytest.mark.gpu}
    out = []
    for d in list_devices():
        if d["name"] == "onnxruntime-cpu":
            continue
        m = [mk for key, mk in marks.items() if key in d["name"]]
        out.append(pytest.param(d["name"], marks=m, id=d["name"]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("device", _other_backends())
def test_profile_other_backends(device, tmp_path):
    """Every registered backend profiles through the same Device protocol (skips where its runtime is absent)."""
    from hwnas.pipeline import profile

    if not next(d for d in list_devices() if d["name"] == device)["available"]:
        pytest.skip(f"{device}: runtime not installed here")
    out = tmp_path / device
    res = profile(space=["tiny-mbv3"], out=out, device=device, threads=1, samples=2, reference_set=1, repeats=0,
                  resolutions=[16], quick=True)
    prof = DeviceProfile.open(out)
    from hwnas.devices import device_class

    assert prof.device_name == device and prof.spec.runtime == device_class(device).runtime
    models, ops = prof.models_df(), prof.ops_df()
    assert len(models) == 3 and len(ops) == res.spaces["tiny-mbv3"]["planned"] - 3
    assert (models["latency_ms"] > 0).all() and (models["analytic_memory_mb"] > 0).all()
    graphs = [json.loads(g) for g in models["runtime_graph"] if g and g != "null"]
    if graphs:  # what the runtime ran, where the backend can tell
        assert graphs[0].get("nodes") or graphs[0].get("kernels")


def test_holdout_rows_alternate_with_samples_and_are_never_fitted(tmp_path):
    from hwnas.latency_models import training_data
    from hwnas.latency_models.metrics import evaluate_models

    out = tmp_path / "h"
    r = _cli("profile", "--space", "tiny-mbv3", "--out", str(out), "--no-ops", "--samples", "6", "--holdout", "4",
             *QUICK, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["spaces"]["tiny-mbv3"]["seconds"]["holdout"] > 0
    prof = DeviceProfile.open(out)
    kinds = prof.models_df()["kind"].tolist()
    assert kinds[2:10] == ["random", "holdout"] * 4  # same machine conditions for both
    _, archs, _, _ = training_data(prof)
    held = set(prof.models_df(kinds=["holdout"])["arch"])
    assert len(held) == 4 and not held & {a.to_str() for a in archs}
    res = evaluate_models(prof, ["flops"])
    assert res["protocol"] == "fit on 8 rows, scored on 4 held-out rows" and res["models"]["flops"]["n"] == 4
