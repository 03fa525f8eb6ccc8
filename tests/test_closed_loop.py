"""The closed loop for real: subnets of the shipped tiny super-network measured on ONNX Runtime."""

import numpy as np
import pytest

from hwnas.searching.algorithms import Termination
from hwnas.searching.closed_loop import closed_loop
from hwnas.searching.objectives import Objective, params
from hwnas.supernet.spaces import get_space

SP = get_space("tiny-mbv3")


class RidgeLatency:
    """A small latency predictor fitted in the test on real measurements."""

    def fit(self, archs, ms):
        X = self._x(archs)
        self.coef = np.linalg.lstsq(X, np.log(ms), rcond=None)[0]
        return self

    def _x(self, archs):
        return np.array([[1.0, np.log(SP.macs(a)), a.r / 28, sum(a.d)] for a in archs])

    def predict(self, archs):
        return np.exp(self._x(archs) @ self.coef)


@pytest.fixture(scope="module")
def device_measure(tmp_path_factory):
    from hwnas.devices import get_device
    from hwnas.devices.measure import ReferenceSet, measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet

    net, _ = load_supernet("tiny-mbv3")
    dev = get_device("onnxruntime-cpu", threads=1)
    refs = ReferenceSet(dev, ["ref-small"])
    canon = {}
    d = tmp_path_factory.mktemp("cl")
    calls = []

    def measure(archs):
        out = []
        for a in archs:
            p = export_subnet(net, a, d / f"{a.key()}.onnx")
            m = measure_model(dev, p, TimingConfig.quick(), refs, reference="ref-small")
            canon.setdefault("ref", m.ref.ref_median_ms)
            out.append({"latency_ms": m.ref.ratio * canon["ref"]})
            calls.append(a.key())
        return out

    return measure, calls


def test_closed_loop_meets_the_budget_when_measured(device_measure):
    measure, calls = device_measure
    rng = np.random.default_rng(0)
    train = [SP.sample(rng) for _ in range(16)]
    ms = np.array([m["latency_ms"] for m in measure(train)])
    pred = RidgeLatency().fit(train, ms)
    budget_ms = float(np.median(ms))
    refits = []

    def refit(archs, measured):
        refits.append(len(archs))
        all_archs = train + archs
        all_ms = np.concatenate([ms, [m["latency_ms"] for m in measured]])
        return {"latency_ms": RidgeLatency().fit(all_archs, all_ms)}

    acc = Objective("params_m", params(SP).fn, "max")
    n_before = len(calls)
    rep = closed_loop(SP, acc, {"latency_ms": pred}, {"latency_ms": budget_ms}, measure, refit,
                      termination=Termination(generations=8), pop_size=16, top_k=2, max_measurements=8, seed=0)
    assert rep.met, rep.rounds
    best = rep.front.candidates[rep.front.best]
    assert best.measured is not None and best.measured["latency_ms"] <= budget_ms
    assert rep.checks and all("latency_ms_predicted" in c and "latency_ms_measured" in c for c in rep.checks)
    assert len(calls) - n_before == len(rep.checks) <= 8
    assert rep.front.meta["closed_loop"]["met"]
    # the chosen subnet is the most capable one among those measured under the budget
    ok = [c for c in rep.front.candidates if c.measured and c.measured["latency_ms"] <= budget_ms]
    assert best.objectives["params_m"] == max(c.objectives["params_m"] for c in ok)


def test_closed_loop_with_an_impossible_budget_stops_and_says_so(device_measure):
    measure, _ = device_measure
    rng = np.random.default_rng(1)
    train = [SP.sample(rng) for _ in range(10)]
    ms = np.array([m["latency_ms"] for m in measure(train)])
    pred = RidgeLatency().fit(train, ms)
    rep = closed_loop(SP, Objective("params_m", params(SP).fn, "max"), {"latency_ms": pred},
                      {"latency_ms": float(ms.min()) * 0.05}, measure, None,
                      termination=Termination(generations=3), pop_size=12, max_measurements=4)
    assert not rep.met and rep.front.best is None
