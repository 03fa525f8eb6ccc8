"""The closed loop for real: subnets of the shipped tiny super-network measured on ONNX Runtime."""

import numpy as np
import pytest

from hwnas.errors import ConfigError
from hwnas.searching.closed_loop import DeviceCheck, meets, status
from hwnas.searching.objectives import Objective, from_predictor, params
from hwnas.searching.run import NSGA2, SearchProblem, Termination, search
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
    problem = SearchProblem(SP.name, (acc, from_predictor("latency_ms", pred)), {"latency_ms": budget_ms})
    check = DeviceCheck(measure, ("latency_ms",), refit, top_k=2, max_measurements=8)
    front = search(problem, NSGA2(16, 0), Termination(generations=8), check)
    loop = front.meta["closed_loop"]
    assert loop["met"], loop["rounds"]
    best = front.candidates[front.best]
    assert best.measured is not None and best.measured["latency_ms"] <= budget_ms
    checks = loop["checks"]
    assert checks and all("latency_ms_predicted" in c and "latency_ms_measured" in c for c in checks)
    assert len(calls) - n_before == len(checks) <= 8
    # the chosen subnet is the most capable one among those measured under the budget
    ok = [c for c in front.candidates if c.measured and c.measured["latency_ms"] <= budget_ms]
    assert best.objectives["params_m"] == max(c.objectives["params_m"] for c in ok)


def test_closed_loop_with_an_impossible_budget_stops_and_says_so(device_measure):
    measure, _ = device_measure
    rng = np.random.default_rng(1)
    train = [SP.sample(rng) for _ in range(10)]
    ms = np.array([m["latency_ms"] for m in measure(train)])
    pred = RidgeLatency().fit(train, ms)
    problem = SearchProblem(SP.name, (Objective("params_m", params(SP).fn, "max"), from_predictor("latency_ms", pred)),
                            {"latency_ms": float(ms.min()) * 0.05})
    front = search(problem, NSGA2(12, 0), Termination(generations=3), DeviceCheck(measure, ("latency_ms",),
                                                                                   max_measurements=4))
    assert not front.meta["closed_loop"]["met"] and front.best is None


def test_a_budget_is_never_met_without_a_measurement():
    """A memory budget whose figure the device did not measure is 'not measured', never 'met'."""
    budgets = {"latency_ms": 1.0, "memory_mb": 10.0}
    assert status({"latency_ms": 0.5, "memory_mb": None}, budgets) == "not measured"
    assert not meets({"latency_ms": 0.5}, budgets)
    assert status({"latency_ms": 0.5, "memory_mb": 12.0}, budgets) == "over budget"
    assert meets({"latency_ms": 0.5, "memory_mb": 9.0}, budgets)


def test_the_closed_loop_measures_what_it_judges_or_says_it_cannot():
    rng = np.random.default_rng(2)
    archs = [SP.sample(rng) for _ in range(12)]
    pred = RidgeLatency().fit(archs, np.array([SP.macs(a) / 1e5 for a in archs]))
    energy = from_predictor("energy_mj", pred)
    problem = SearchProblem(SP.name, (Objective("params_m", params(SP).fn, "max"), from_predictor("latency_ms", pred),
                                      energy), {"latency_ms": 1.0, "energy_mj": 1.0})
    check = DeviceCheck(lambda a: [], ("latency_ms", "memory_mb"),
                        unmeasurable={"energy_mj": "no RAPL counters on this machine"})
    with pytest.raises(ConfigError, match="energy_mj budget cannot be judged as measured here .no RAPL"):
        search(problem, NSGA2(8, 0), Termination(generations=1), check)
    # a candidate whose budgeted figure came back unmeasured is never chosen
    calls = []

    def measure_without_memory(archs):
        calls.append(len(archs))
        return [{"latency_ms": 0.001, "memory_mb": None} for _ in archs]

    problem = SearchProblem(SP.name, (Objective("params_m", params(SP).fn, "max"), from_predictor("latency_ms", pred),
                                      from_predictor("memory_mb", pred)), {"latency_ms": 1e9, "memory_mb": 1e9})
    front = search(problem, NSGA2(8, 0), Termination(generations=2),
                   DeviceCheck(measure_without_memory, ("latency_ms", "memory_mb"), max_measurements=4))
    assert calls and front.best is None
    assert {c["status"] for c in front.meta["closed_loop"]["checks"]} == {"not measured"}
