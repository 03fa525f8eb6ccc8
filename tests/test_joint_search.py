"""Joint architecture × precision search on the shipped Fashion-MNIST super-network, on ONNX Runtime:
sensitivities measured on the super-network rank held-out (arch, policy) pairs, the search returns
pairs verified on the device, and a pair round-trips through a deployment bundle's manifest."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from hwnas.types.quant_arch import QuantArch

pytestmark = [pytest.mark.data, pytest.mark.slow]
R = 28


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from hwnas.devices import get_device
    from hwnas.pipeline.joint import PairEvaluator, measure_sensitivity
    from hwnas.searching.accuracy import load_accuracy_predictor
    from hwnas.searching.quant_accuracy import QuantAccuracyPredictor

    torch.set_num_threads(1)
    dev = get_device("onnxruntime-cpu")
    pe = PairEvaluator("fmnist-mbv3", dev, val_images=1000)
    qp = QuantAccuracyPredictor(load_accuracy_predictor("fmnist-mbv3")).fit(measure_sensitivity(pe, 1, R))
    yield pe, qp, tmp_path_factory.mktemp("joint")
    pe.close()


def test_quant_arch_policy_round_trip():
    from hwnas.errors import ArchError
    from hwnas.supernet.spaces import get_space
    from hwnas.types import PrecisionPolicy, Rule

    sp = get_space("fmnist-mbv3")
    a = sp.arch(3, 3, (2, 3, 1, 3), R)
    q = QuantArch(a, tuple(i % 2 == 0 for i in range(sp.n_slots)))
    assert q.int8_slots() == [0, 4, 6, 10]  # even slots that are active (2, 7, 8 lie beyond their depth)
    back = QuantArch.from_policy(a, PrecisionPolicy.from_dict(q.policy().to_dict()))
    assert back == q and back.key() == q.key() and QuantArch.from_dict(q.to_dict()) == q
    with pytest.raises(ArchError, match="per-block"):
        QuantArch.from_policy(a, PrecisionPolicy("int8"))
    with pytest.raises(ArchError, match="in part"):
        QuantArch.from_policy(a, PrecisionPolicy("fp32", (Rule(r"/blocks\.1/conv/.*", "int8"),)))


def test_sensitivity_predictor_ranks_held_out_pairs(setup):
    """Predicted vs measured accuracy drop of held-out pairs (other subnets, multi-block policies), in
    points of mean true-class probability (top-1 drops of INT8 here are within a few images)."""
    pe, qp, _ = setup
    from hwnas.supernet.spaces import get_space

    sp = get_space("fmnist-mbv3")
    rng = np.random.default_rng(7)
    pairs = []
    for _ in range(2):
        a = sp.sample(rng, [R])
        pairs += [QuantArch(a, tuple(rng.random(sp.n_slots) < f)) for f in (0.25, 0.6, 1.01)]
    measured = np.array([pe.confidence(QuantArch.fp32(p.arch)) - pe.confidence(p) for p in pairs])
    predicted = qp.drop(pairs)
    rho = spearmanr(predicted, measured).statistic
    print(f"held-out pairs: Spearman {rho:.3f} predicted vs measured drop; measured {np.round(measured, 2)}")
    assert np.isfinite(rho) and rho > 0.3, (rho, predicted, measured)


def test_joint_search_returns_pairs_that_round_trip_through_the_manifest(setup):
    import hwnas.pipeline.jobs as jobs
    from hwnas.pipeline.joint import export_pair, pair_from_bundle, pair_latency, search_pairs
    from hwnas.profiles import DeviceProfile
    from hwnas.searching.joint import Evolution

    pe, qp, tmp = setup
    profs = {}
    for prec in ("fp32", "int8"):
        jobs.profile(space=("fmnist-mbv3",), out=tmp / prec, precision=prec, samples=0, reference_set=1, repeats=0,
                     resolutions=(R,), ops=True, quick=True, energy=False, kernel_times=False)
        profs[prec] = DeviceProfile.open(tmp / prec)
    from hwnas.latency_models import LATENCY_MODELS

    lut = LATENCY_MODELS.create("lut").fit([], [], profs["fp32"], space="fmnist-mbv3")  # the FP32 block table summed
    lat = pair_latency(lut, profs["fp32"], profs["int8"], "fmnist-mbv3")
    budget = float(np.median(lat.predict([QuantArch.fp32(get_space_arch(R))])))
    verified = search_pairs("fmnist-mbv3", qp, lat, budget, pe.latency, Evolution(population=16, generations=3),
                            [R], top_k=1, max_measurements=3)
    assert verified and all(v.measured_ms > 0 for v in verified)
    best = verified[0].pair
    bundle = export_pair(pe, best, tmp / "bundle")
    assert pair_from_bundle(bundle.path) == best
    assert len(bundle.manifest.policy_summary) >= 1
    assert bundle.manifest.lineage["joint_pair"] == best.to_dict()


def get_space_arch(r):
    from hwnas.supernet.spaces import get_space

    sp = get_space("fmnist-mbv3")
    return sp.arch(5, 3, 2, r)


def test_joint_precision_needs_a_budget_and_an_int8_profile(tmp_path):
    from hwnas.config import SearchConfig
    from hwnas.errors import ConfigError
    from hwnas.pipeline.joint import check_joint

    cfg = SearchConfig(space="fmnist-mbv3", profile=tmp_path, out=tmp_path / "run", joint_precision=True)
    with pytest.raises(ConfigError, match="--int8-profile"):
        check_joint(cfg)
    with pytest.raises(ConfigError, match="accuracy and latency only"):
        check_joint(cfg.replace(latency_budget_ms=1.0, int8_profile=tmp_path, objectives=("accuracy", "memory")))
    check_joint(cfg.replace(latency_budget_ms=1.0, int8_profile=tmp_path))


def test_joint_search_refuses_data_its_predictor_was_not_fitted_on(tmp_path):
    """--joint-precision goes through the same data check as every search, before anything is measured."""
    import json

    from hwnas.errors import ConfigError
    from hwnas.pipeline import search
    from hwnas.searching.accuracy import shipped_predictor

    d = json.loads(shipped_predictor("fmnist-mbv3").read_text())
    d["dataset"] = {"name": "image-folder", "fingerprint": "0123456789abcdef"}  # fitted on other data
    other = tmp_path / "other.json"
    other.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="0123456789abcdef"):
        search(space="fmnist-mbv3", profile=tmp_path / "no-profile", int8_profile=tmp_path / "no-int8-profile",
               joint_precision=True, latency_budget_ms=1.0, accuracy_predictor=other, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_joint_population_holds_uniform_pairs():
    """All-FP32 and all-INT8 pairs are in the joint search's initial population (random bits alone
    would almost never give the all-INT8 one, the fastest on OpenVINO)."""
    from hwnas.searching.joint import _sample
    from hwnas.supernet.spaces import get_space

    sp = get_space("fmnist-mbv3")
    rng = np.random.default_rng(0)
    pairs = [_sample(sp, rng, [R], True) for _ in range(60)]
    full = [p for p in pairs if p.int8_slots() and len(p.int8_slots()) == len(QuantArch.all_int8(p.arch).int8_slots())]
    none = [p for p in pairs if not p.int8_slots()]
    assert 10 <= len(full) <= 35 and 10 <= len(none) <= 35, (len(full), len(none))
    assert all(not p.int8_slots() for p in (_sample(sp, rng, [R], False) for _ in range(20)))
