"""Gains statistics on real measurements: a clearly slower model, a clearly faster one, and identical models."""

import numpy as np
import pytest

from conftest import randomize_


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    net = ElasticMBV3("fmnist-mbv3")
    sp = net.space
    work = tmp_path_factory.mktemp("gains")
    small, big = sp.min_arch(), sp.max_arch()
    randomize_(net, seed=1, arch=big)
    return export_subnet(net, small, work / "small.onnx"), export_subnet(net, big, work / "big.onnx")


def test_a_smaller_model_is_a_measurable_gain_and_a_bigger_one_a_loss(models):
    from hwnas.devices import get_device
    from hwnas.exporting.gains import GainConfig, paired_gain

    small, big = models
    dev = get_device("onnxruntime-cpu")
    g = paired_gain(dev, big, dev, small, GainConfig.quick())
    assert g.verdict == "gain" and g.faster and g.speedup > 1.2, g
    lo, hi = g.speedup_ci
    assert 1.0 < lo <= g.speedup <= hi and g.gain_ci_ms[0] > 0, g
    assert g.candidate_ms < g.baseline_ms
    loss = paired_gain(dev, small, dev, big, GainConfig.quick())
    assert loss.verdict == "loss" and not loss.faster and loss.speedup < 1 / 1.2 and loss.gain_ms < 0, loss


def test_identical_models_have_no_measurable_gain(models):
    from hwnas.devices import get_device
    from hwnas.exporting.gains import NO_GAIN, GainConfig, paired_gain

    _, big = models
    dev = get_device("onnxruntime-cpu")
    cfg = GainConfig.quick()
    g = paired_gain(dev, big, dev, big, cfg)
    assert g.verdict == NO_GAIN and not g.measurable, g
    # two sessions of one file can differ by a few per cent (memory layout: 1.9 %, 2.5 % and 3.1 % seen
    # here), which is why a gain needs min_gain; the interval must reach inside that band
    assert g.speedup_ci[0] < 1 + cfg.min_gain and g.speedup_ci[1] > 1 / (1 + cfg.min_gain), g
    assert g.n_pairs >= cfg.min_pairs


def test_the_stopping_rule_on_synthetic_runners():
    """The rule itself: a 2x slower runner is a loss within the first look; equal runners stop equivalent."""
    import time

    from hwnas.exporting.gains import NO_GAIN, GainConfig, compare

    def sleeper(s):
        return lambda: time.sleep(s)

    cfg = GainConfig(burst_s=0.004, min_pairs=6, step=3, max_pairs=30, max_s=3.0)
    g = compare(sleeper(0.0004), sleeper(0.0008), cfg)
    assert g.verdict == "loss" and g.n_pairs == cfg.min_pairs and 0.4 < g.speedup < 0.65, g
    spin = lambda: sum(range(2000))  # noqa: E731
    # equal runners: "no measurable gain" at least twice in three tries. One try is not a fair test on a
    # shared machine: in one full suite run foreign work on the other core made one such A/A run read as
    # a "loss" (0 of 60 alone); a rule biased either way fails all three.
    verdicts = [compare(spin, spin, cfg).verdict for _ in range(3)]
    assert verdicts.count(NO_GAIN) >= 2, verdicts


def test_the_policy_search_takes_only_groups_with_a_measurable_gain(tmp_path):
    """A group whose gain is positive but inside the noise ("no measurable gain") is never chosen."""
    from hwnas.exporting.mixed import GroupCost, layer_groups, search_policy

    nodes = ["/first_conv/conv/Conv"] + [f"/blocks.{i}/conv/Conv" for i in range(3)] + ["/classifier/linear/Gemm"]
    groups = layer_groups(nodes)
    built = {}

    def build(policy, path):
        built[str(path)] = [g.name for g in groups if all(policy.precision_for(n) == "int8" for n in g.layers)]
        return path

    def latency(path):  # each INT8 group saves 0.01 ms
        return 1.0 - 0.01 * len(built[str(path)])

    def cost(g):
        if g.name == "block01":
            return GroupCost(g.name, g.pattern, 1, 0.0, 0.01, (0.005, 0.015), "gain")
        return GroupCost(g.name, g.pattern, 1, 9.0 if g.name == "stem" else 0.0, 0.01, (-0.02, 0.04),
                         "no measurable gain")

    costs = [cost(g) for g in groups]
    policy, trials, _ = search_policy(groups, costs, 0.5, build, lambda p: 90.0 - 9.0 * ("stem" in built[str(p)]),
                                      latency, 90.0, 1.0, tmp_path)
    mixed = next(t for t in trials if t.label == "mixed")
    assert mixed.int8_groups == ["block01"]  # the only measurable gain, though every group's gain_ms is +0.01
