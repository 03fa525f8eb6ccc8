"""The timing loop, memory meter, references and the ONNX Runtime backend, on real ORT sessions."""

import numpy as np
import pytest

from conftest import randomize_
from hwnas.devices import get_device, list_devices
from hwnas.devices.measure import ReferenceSet, measure_model
from hwnas.devices.memory import PeakMemory
from hwnas.devices.reference import pick_reference, reference_onnx
from hwnas.devices.timing import TimingConfig, time_interleaved, time_runner
from hwnas.errors import ConfigError, DeviceError, UnknownNameError
from hwnas.fileio import file_sha256
from hwnas.types import LatencyStats


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    net = randomize_(ElasticMBV3("fmnist-mbv3"))
    d = tmp_path_factory.mktemp("m")
    return (export_subnet(net, net.space.min_arch(20), d / "small.onnx"),
            export_subnet(net, net.space.max_arch(32), d / "large.onnx"))


def test_latency_stats_summary():
    s = LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0, 100.0], n_warmup=3)
    assert s.median_ms == 3.0 and s.min_ms == 1.0 and s.n_runs == 5 and s.n_warmup == 3
    assert s.p10_ms == pytest.approx(1.4) and s.p90_ms == pytest.approx(61.6)
    assert s.unstable
    assert not LatencyStats.from_samples([1.0, 1.01, 0.99, 1.0], 0).unstable
    with pytest.raises(ConfigError):
        LatencyStats.from_samples([], 0)


def test_timing_loop_respects_counts_and_budget():
    calls = []
    stats = time_runner(lambda: calls.append(1), TimingConfig(warmup=7, warmup_s=0.0, runs=25, budget_s=10))
    assert stats.n_warmup == 7 and stats.n_runs == 25 and len(calls) == 32
    import time

    stats = time_runner(lambda: time.sleep(0.01), TimingConfig(warmup=1, warmup_s=0, runs=1000, min_runs=5,
                                                                 budget_s=0.1))
    assert 5 <= stats.n_runs < 30 and stats.median_ms >= 10


def test_interleaved_ratio_tracks_true_ratio(monkeypatch):
    """The interleaving arithmetic on a simulated clock (no dependence on how busy this machine is):
    a model twice as slow as the reference, with every 7th run of either preempted for 30 ms, and a
    stretch of model runs (at most two bursts) slowed by half: the median over bursts ignores both."""
    import itertools

    from hwnas.devices import timing

    now = [0]
    runs = itertools.count()

    class Clock:
        @staticmethod
        def perf_counter_ns():
            return now[0]

        @staticmethod
        def perf_counter():
            return now[0] / 1e9

    model_calls = itertools.count()

    def runner(ms, model=False):
        def f():
            slow = 1.5 if model and 60 <= next(model_calls) < 72 else 1.0
            now[0] += int(ms * slow * 1e6) + (30_000_000 if next(runs) % 7 == 0 else 0)
        return f

    monkeypatch.setattr(timing, "time", Clock)
    stats, ratio, ref_stats = time_interleaved(runner(2.0, model=True), runner(1.0), TimingConfig(bursts=6, burst_s=0.03),
                                               "b1")
    # per-burst medians shrug off the preemptions
    assert ratio.ratio == pytest.approx(2.0, rel=1e-9) and ratio.n_bursts == 6
    assert stats.median_ms == pytest.approx(2.0) and stats.p90_ms > 2.0  # the preempted runs are in the raw samples
    assert ref_stats.median_ms == pytest.approx(1.0) and ratio.reference == "b1"
    assert ratio.n_bursts == 6


def test_ort_backend_spec_and_accuracy(tiny_onnx, cpu_threads):
    dev = get_device("onnxruntime-cpu", threads=cpu_threads)
    spec = dev.spec()
    assert spec.runtime == "onnxruntime" and spec.threads == cpu_threads and spec.runtime_version
    assert dict(spec.options)["graph_optimization"] == "all"
    assert spec.id() == get_device("onnxruntime-cpu", threads=cpu_threads).spec().id()
    assert spec.id() != get_device("onnxruntime-cpu", threads=cpu_threads + 1).spec().id()
    m = dev.load(tiny_onnx[0])
    assert m.input_shape == (1, 1, 20, 20)
    y = m.infer(np.zeros((1, 1, 20, 20), np.float32))
    assert y.shape == (1, 10)
    m.run()
    with pytest.raises(DeviceError, match="does not exist"):
        dev.load("/nonexistent.onnx")
    with pytest.raises(ConfigError, match="graph_optimization"):
        get_device("onnxruntime-cpu", graph_optimization="max")


def test_measure_model_orders_models_and_records_memory(tiny_onnx):
    dev = get_device("onnxruntime-cpu", threads=1)
    refs = ReferenceSet(dev)
    small = measure_model(dev, tiny_onnx[0], TimingConfig.quick(), refs)
    large = measure_model(dev, tiny_onnx[1], TimingConfig.quick(), refs)
    assert small.normalized_ms < large.normalized_ms
    assert small.model_sha256 == file_sha256(tiny_onnx[0])
    assert large.peak_memory_mb is not None and large.peak_memory_mb > 0
    assert large.energy_mj is None and large.energy_note
    plain = measure_model(dev, tiny_onnx[0], TimingConfig.quick(), reference="none")
    assert plain.ref is None and plain.normalized_ms is None
    d = large.to_dict()
    assert d["normalized_ms"] == pytest.approx(large.ref.ratio * large.ref.ref_median_ms)


def test_peak_memory_sees_an_allocation():
    with PeakMemory() as pm:
        buf = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del buf
    assert pm.peak_mb is not None and pm.peak_mb >= 60


def test_references_are_deterministic(tmp_path):
    a = reference_onnx("ref-small", tmp_path / "a")
    b = reference_onnx("ref-small", tmp_path / "b")
    assert file_sha256(a) == file_sha256(b)
    assert pick_reference(0.5, {"ref-small": 0.08, "ref-medium": 0.45, "ref-large": 2.5}) == "ref-medium"
    with pytest.raises(UnknownNameError, match="Did you mean 'ref-small'"):
        reference_onnx("ref-smal", tmp_path)


def test_device_registry():
    rows = {r["name"]: r for r in list_devices()}
    assert rows["onnxruntime-cpu"]["available"]
    with pytest.raises(UnknownNameError, match="Did you mean 'onnxruntime-cpu'"):
        get_device("onnxrt-cpu")
