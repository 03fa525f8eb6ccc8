"""The CLI end to end: each command's output, --json, and one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hwnas.cli import app
from hwnas.types import ArchConfig

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def hwnas_proc(*args):
    """Run the real entry point (to check exit codes and that no traceback is printed)."""
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_spaces_and_devices():
    r = run("spaces", "--json")
    assert r.exit_code == 0
    names = {s["name"] for s in json.loads(r.stdout)}
    assert "ofa-mbv3-w1.0" in names and "fmnist-mbv3" in names
    r = run("devices", "--json")
    rows = json.loads(r.stdout)
    assert any(d["name"] == "onnxruntime-cpu" and d["available"] for d in rows)


def test_arch_commands_print_parseable_strings():
    for which in ("sample", "min", "max"):
        r = run("arch", which, "--space", "fmnist-mbv3", "--seed", "3")
        assert r.exit_code == 0
        a = ArchConfig.parse(r.stdout.strip())
        assert a.space == "fmnist-mbv3"
    assert run("arch", "sample", "--space", "fmnist-mbv3", "--seed", "3").stdout == \
        run("arch", "sample", "--space", "fmnist-mbv3", "--seed", "3").stdout
    d = json.loads(run("arch", "min", "--space", "ofa-mbv3-w1.0", "-r", "224", "--json").stdout)
    assert d["macs"] == 121_278_672 and d["params"] == 3_410_792


def test_export_then_measure(tmp_path):
    arch = run("arch", "max", "--space", "tiny-mbv3").stdout.strip()
    out = tmp_path / "m.onnx"
    r = run("export-subnet", "--arch", arch, "--out", str(out))
    assert r.exit_code == 0 and out.is_file(), r.stdout
    r = run("measure", str(out), "--threads", "1", "--runs", "30", "--budget-s", "0.3", "--bursts", "3", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["median_ms"] > 0 and d["normalized_ms"] > 0 and d["device"]["threads"] == 1
    r = run("measure", str(out), "--runs", "20", "--budget-s", "0.2", "--bursts", "2")
    assert "median" in r.stdout and "normalised" in r.stdout


def test_arch_from_json_file(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"ks": 3, "e": 2, "d": 1, "r": [16]}))
    r = run("export-subnet", "--space", "tiny-mbv3", "--arch", str(f), "--out", str(tmp_path / "a.onnx"))
    assert r.exit_code == 0 and "tiny-mbv3/r16_k3e2_k3e2" in r.stdout


@pytest.mark.parametrize("args,msg", [
    (["arch", "sample", "--space", "ofa-mbv3-w1.1"], "Did you mean 'ofa-mbv3-w1.2'?"),
    (["export-subnet", "--arch", "ofa-mbv3-w1.0/r224_k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3",
      "--out", "/tmp/x.onnx"], "depth of stage 1 is 1; allowed [2, 3, 4]"),
    (["measure", "/nonexistent/model.onnx"], "does not exist"),
    (["measure", "/nonexistent/model.onnx", "--device", "onnxrt"], ""),
    (["arch", "median", "--space", "tiny-mbv3"], "use sample, min or max"),
    # an ImageNet space without --data is refused before any weights are touched; so is data that does not fit
    (["eval-subnet", "--arch", "ofa-mbv3-w1.0/r160_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3"],
     "pass --data FOLDER"),
    (["eval-subnet", "--arch", "ofa-mbv3-w1.0/r160_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3_k3e3-k3e3",
      "--data", "fashion-mnist"], "takes 3-channel images and 1000 classes"),
    (["accuracy-dataset", "--space", "ofa-mbv3-w1.2", "--out", "/tmp/never.parquet"], "pass --data FOLDER"),
])
def test_errors_are_one_line(args, msg):
    p = hwnas_proc(*args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], p.stderr


def test_tables_survive_a_pipe():
    """Through a pipe (no terminal, no COLUMNS) rich tables are not cut to 80 columns."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "spaces"], capture_output=True, text=True, env=env)
    assert p.returncode == 0
    assert "ofa-mbv3-w1.0" in p.stdout and "41.48..566.17" in p.stdout
    assert "loads the official ofa_mbv3_d234_e346_k357 checkpoint" in p.stdout  # a description line kept whole
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "devices"], capture_output=True, text=True, env=env)
    assert "onnxruntime-tensorrt" in p.stdout
