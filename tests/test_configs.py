"""Configs: every CLI command means one config, --save-config writes it, --config replays it; the
layout's rules (no runtime-name switch outside the runtime's own room, a lean ``import hwnas``)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwnas.cli import app
from hwnas.config import Config, ProfileConfig, SearchConfig
from hwnas.errors import ConfigError
from hwnas.profiles.profile import SHIPPED_DIR

runner = CliRunner()
SHIPPED = str(SHIPPED_DIR / "intel-xeon-ort-cpu-1t")
OFA_ARCH = "ofa-mbv3-w1.0/r160_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3"
TINY_DATASET = str(Path(__file__).resolve().parent.parent / "hwnas" / "data" / "accuracy" / "tiny-mbv3.parquet")


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def examples(tmp: Path) -> dict[str, list[str]]:
    """One realistic command line per command (every registered command must appear)."""
    return {
        "spaces": ["--pattern", "*mbv3*"],
        "devices": ["--pattern", "onnxruntime-*"],
        "arch": ["sample", "--space", "tiny-mbv3", "--seed", "4", "-r", "20"],
        "export-subnet": ["--arch", "tiny-mbv3/r20_k3e2_k5e3", "--out", tmp / "m.onnx"],
        "measure": [tmp / "m.onnx", "--runs", "20", "--budget-s", "0.1", "--bursts", "2", "--reference", "ref-small"],
        "export": ["--arch", "tiny-mbv3/r20_k3e2_k5e3", "--precision", "int8", "--out", tmp / "bundle"],
        "verify": [tmp / "bundle", "--latency-tolerance", "0.5"],
        "fit": [tmp / "prof", "--model", "hybrid", "--model", "flops", "--param", "alpha=2"],
        # uncalibrated: a calibration measures the device, and one that held poorly under load is measured
        # again by the replay, which then prints other (equally true) milliseconds
        "predict": [SHIPPED, "--arch", OFA_ARCH, "--arch", OFA_ARCH.replace("r160", "r224"), "--no-calibrate"],
        "evaluate": [SHIPPED, "--space", "ofa-mbv3-w1.0", "--models", "flops,hybrid"],
        "profile": ["--space", "tiny-mbv3,fmnist-mbv3", "--out", tmp / "p", "--resolutions", "16,28", "--no-ops",
                    "--option", "allow_spinning=0"],
        "profile-info": [SHIPPED],
        "profile-merge": [tmp / "a", tmp / "b"],
        "quickstart": ["--out", tmp / "qs", "--samples", "30", "--no-reuse-shipped"],
        "search": ["--space", "fmnist-mbv3", "--profile", SHIPPED, "--latency-budget-ms", "0.15", "--out", tmp / "r",
                   "--objectives", "accuracy,latency,memory"],
        "accuracy-dataset": ["--space", "tiny-mbv3", "--n", "40", "--out", tmp / "acc.parquet"],
        "fit-accuracy": [TINY_DATASET, "--out", tmp / "pred.json", "--holdout", "20"],
        "train-supernet": ["--space", "tiny-mbv3", "--epochs", "2", "--out", tmp / "ckpt"],
        "eval-subnet": ["--arch", "tiny-mbv3/r20_k3e2_k5e3", "--split", "test"],
        "device-join": ["--board", "orin-1", "--kind", "orin", "--address", "127.0.0.1:6379", "--no-block"],
    }


def test_every_command_saves_and_replays_its_config(tmp_path):
    ex = examples(tmp_path)
    assert set(ex) == {c.name for c in app.registered_commands}, "give every command an example"
    for name, args in ex.items():
        saved = tmp_path / f"{name}.json"
        r = run(name, *args, "--save-config", saved)
        assert r.exit_code == 0 and saved.is_file(), (name, r.stdout)
        cfg = json.loads(saved.read_text())
        assert cfg["kind"] == name and cfg["version"] >= 1
        again = tmp_path / f"{name}.again.json"
        r = run(name, "--config", saved, "--save-config", again)
        assert r.exit_code == 0, (name, r.stdout)
        assert json.loads(again.read_text()) == cfg, name  # replaying the file means the same command line


def test_saved_configs_hold_what_the_command_line_said(tmp_path):
    ex = examples(tmp_path)
    run("profile", *ex["profile"], "--save-config", tmp_path / "p.json")
    p = ProfileConfig.load(tmp_path / "p.json")
    assert p.space == ("tiny-mbv3", "fmnist-mbv3") and p.resolutions == (16, 28) and p.ops is False
    assert p.device_options == {"allow_spinning": "0"} and p.samples == ProfileConfig().samples
    run("search", *ex["search"], "--save-config", tmp_path / "s.json")
    s = SearchConfig.load(tmp_path / "s.json")
    assert s.objectives == ("accuracy", "latency", "memory") and s.latency_budget_ms == 0.15
    # options given beside --config override the file; the rest comes from it
    run("search", "--config", tmp_path / "s.json", "--seed", "7", "--save-config", tmp_path / "s2.json")
    s2 = SearchConfig.load(tmp_path / "s2.json")
    assert s2.seed == 7 and s2.replace(seed=0) == s


@pytest.mark.parametrize("name", ["spaces", "devices", "arch", "predict", "profile-info", "fit-accuracy",
                                  "export-subnet"])
def test_replay_gives_the_same_result(tmp_path, name):
    """Deterministic commands: the direct command line and its replayed config print the same JSON."""
    args = examples(tmp_path)[name]
    direct = run(name, *args, "--json")
    assert direct.exit_code == 0, direct.stdout
    out = tmp_path / "m.onnx"
    first = out.read_bytes() if name == "export-subnet" else None
    run(name, *args, "--save-config", tmp_path / "c.json")
    replay = run(name, "--config", tmp_path / "c.json", "--json")
    assert replay.exit_code == 0, replay.stdout
    assert json.loads(replay.stdout) == json.loads(direct.stdout)
    if first is not None:
        assert out.read_bytes() == first


def test_measure_replays(tmp_path):
    ex = examples(tmp_path)
    assert run("export-subnet", *ex["export-subnet"]).exit_code == 0
    run("measure", *ex["measure"], "--save-config", tmp_path / "m.json")
    r = run("measure", "--config", tmp_path / "m.json", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["ref_name"] == "ref-small" and d["n_runs"] >= 5 and d["median_ms"] > 0


def test_config_files_are_checked(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"kind": "search", "version": 1, "space": "tiny-mbv3", "nonsense": 1}))
    with pytest.raises(ConfigError, match="unknown field.*nonsense"):
        SearchConfig.load(f)
    with pytest.raises(ConfigError, match="is a 'search' config, not 'profile'.*hwnas search"):
        ProfileConfig.load(f)
    f.write_text(json.dumps({"kind": "search", "version": 99}))
    with pytest.raises(ConfigError, match="config version 99"):
        SearchConfig.load(f)
    with pytest.raises(ConfigError, match="threads='two' is not a valid int"):
        ProfileConfig(threads="two")
    r = subprocess.run([sys.executable, "-m", "hwnas.cli", "search", "--space", "tiny-mbv3"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "needs --profile, --out (or --config FILE holding them)" in r.stderr
    assert issubclass(ProfileConfig, Config)


RUNTIME_NAMES = {"onnxruntime", "openvino", "tvm", "tensorrt", "onnxruntime-cpu", "openvino-cpu", "tvm-llvm",
                 "onnxruntime-cuda", "onnxruntime-tensorrt", "cuda", "ncnn", "tflite"}
ROOMS = ("devices",)


def _switches(path: Path) -> list[str]:
    """Comparisons against a runtime or device name (``x == "openvino"``, ``x in ("tvm", ...)``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for side in [node.left, *node.comparators]:
            consts = [side] if isinstance(side, ast.Constant) else \
                list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else []
            if any(isinstance(c, ast.Constant) and c.value in RUNTIME_NAMES for c in consts):
                out.append(f"{path}:{node.lineno}")
    return out


def test_no_runtime_switch_outside_the_runtimes_rooms():
    """A runtime's quantizer, compiler and loader are found through its device; no stage switches on
    runtime names (adding a runtime is one module plus one registration)."""
    pkg = Path(__file__).resolve().parent.parent / "hwnas"
    found = [s for p in sorted(pkg.rglob("*.py")) if p.relative_to(pkg).parts[0] not in ROOMS for s in _switches(p)]
    assert not found, f"runtime-name switches outside hwnas/devices/: {found}"
    # the scan itself finds what it is meant to find
    probe = pkg.parent / "tests" / "data" / "switch_probe.py"
    probe.write_text('if device.runtime == "openvino":\n    pass\nelif name in ("tvm-llvm", "x"):\n    pass\n')
    try:
        assert len(_switches(probe)) == 2
    finally:
        probe.unlink()


def test_import_hwnas_is_lean():
    code = ("import sys, hwnas; import hwnas.types, hwnas.config, hwnas.errors, hwnas.registry; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'tvm', 'tensorrt', 'pandas', 'ray', 'onnx') "
            "if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    import hwnas

    assert {"profile", "search", "export", "verify", "ArchConfig", "Measurement", "DeviceProfile", "ParetoFront",
            "DeploymentBundle"} <= set(hwnas.__all__)
    assert callable(hwnas.search) and callable(hwnas.export) and hwnas.ParetoFront.__name__ == "ParetoFront"
