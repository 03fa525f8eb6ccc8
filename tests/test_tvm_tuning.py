"""TVM meta-schedule tuning: in-process builder/runner, a JSON tuning database that later compiles
reuse (the same model, and another model sharing tasks), progress with an ETA, a time budget."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.tvm


def _tiny(path, head: int):
    """conv3x3+relu -> conv1x1 -> pool -> linear(head): the convolutions are the same tasks for every head."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, head)).eval()
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17)
    return path


def _records(db_root):
    files = list(db_root.rglob("database_tuning_record.json"))
    assert len(files) == 1, files
    return files[0], [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def test_tuning_writes_then_reuses_its_database(tmp_path):
    from hwnas.devices import get_device
    from hwnas.devices.tvm_llvm import TVMLLVM

    a, b = _tiny(tmp_path / "a.onnx", 4), _tiny(tmp_path / "b.onnx", 6)
    db = tmp_path / "db"
    seen = []
    dev = TVMLLVM(tune_trials=3, tuning_db=str(db))
    dev.tune_progress = lambda what, done, total: seen.append((what, done, total))
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    tuned = dev.load(a)
    first = dev.last_tuning
    assert first["tasks"] >= 3 and first["tuned"] == first["tasks"] and first["reused"] == 0 and first["trials"] > 0
    rec_file, recs = _records(db)
    assert len(recs) >= first["tasks"] - 1  # one measured record per task (a trivial reshape may have none)
    assert seen and all("ETA" in w and 0 <= d <= t for w, d, t in seen) and seen[-1][1] == first["trials"]
    ort = get_device("onnxruntime-cpu").load(a).infer(x)
    np.testing.assert_allclose(tuned.infer(x), ort, rtol=1e-4, atol=1e-5)

    # a second compile of the same model (a fresh device, as in a new run): every task reused, nothing measured
    before = rec_file.read_bytes()
    again = TVMLLVM(tune_trials=3, tuning_db=str(db))
    np.testing.assert_allclose(again.load(a).infer(x), ort, rtol=1e-4, atol=1e-5)
    assert again.last_tuning["reused"] == first["tasks"] and again.last_tuning["tuned"] == 0
    assert again.last_tuning["trials"] == 0 and rec_file.read_bytes() == before

    # another subnet sharing the convolutions: those are reused, only its new head is tuned
    again.load(b)
    other = again.last_tuning
    assert other["reused"] >= 2 and 1 <= other["tuned"] < other["tasks"]

    # a bundle artifact says it is tuned, and loads
    art = again.compile_artifact(a, tmp_path / "bundle")
    assert "tuned" in art.note and "untuned" not in art.note
    np.testing.assert_allclose(again.load(tmp_path / "bundle" / art.path).infer(x), ort, rtol=1e-4, atol=1e-5)


def test_time_budget_stops_tuning(tmp_path):
    from hwnas.devices.tvm_llvm import TVMLLVM

    from hwnas.devices.tvm_tune import TRIALS_PER_ITER

    dev = TVMLLVM(tune_minutes=0.02, tuning_db=str(tmp_path / "db"))  # 1.2 s; per-task cap 1000 trials
    dev.load(_tiny(tmp_path / "a.onnx", 4))
    rep = dev.last_tuning
    # stopped by the clock: at least one task tuned, but not every task given even one round
    assert 1 <= rep["tuned"] < rep["tasks"] and 0 < rep["trials"] < rep["tasks"] * TRIALS_PER_ITER


def test_tune_minutes_refused_where_nothing_is_compiled():
    from hwnas.errors import ConfigError
    from hwnas.pipeline.jobs import tuning_options

    assert tuning_options("tvm-llvm", 2.0) == {"tune_minutes": 2.0}
    assert tuning_options("onnxruntime-cpu", 0) == {}
    with pytest.raises(ConfigError, match="--device tvm-llvm"):
        tuning_options("onnxruntime-cpu", 2.0)
