"""Pricing (subnet, per-block precision) pairs: INT8 blocks from two block tables, and the conversions
at tensor boundaries fitted on subnets measured end to end in both precisions."""

import numpy as np
import pytest

from hwnas.latency_models.features import pixels, shape_class
from hwnas.latency_models.precision import MIN_EDGE_ROWS, PrecisionDelta, _elements
from hwnas.supernet.spaces import get_space
from hwnas.types.quant_arch import QuantArch

SPACE, R = "fmnist-mbv3", 28


def _tables(archs, fp32_us=10.0, int8_us=13.0):
    """Block tables where every layer takes ``fp32_us`` in FP32 and ``int8_us`` alone in INT8."""
    sp = get_space(SPACE)
    f, q = {}, {}
    for a in archs:
        for lyr in sp.layers(a):
            f[shape_class(lyr)] = [(pixels(lyr), fp32_us / 1e3)]
            q[shape_class(lyr)] = [(pixels(lyr), int8_us / 1e3)]
    return f, q


def _archs(n, seed=0):
    sp = get_space(SPACE)
    rng = np.random.default_rng(seed)
    return [sp.sample(rng, [R]) for _ in range(n)]


def test_isolated_block_costs_what_it_cost_alone_and_runs_save_conversions():
    a = get_space(SPACE).max_arch(R)
    f, q = _tables([a])
    d = PrecisionDelta(f, q, edge=(0.002, 1e-6))
    n = get_space(SPACE).n_slots
    layers = get_space(SPACE).layers(a)
    blocks = [i for i, lyr in enumerate(layers) if lyr.kind == "mbconv" and lyr.index >= 1]
    one = QuantArch(a, tuple(i == 3 for i in range(n)))
    assert d.deltas(one) == pytest.approx(0.003)  # 13 − 10 µs, the conversions it paid alone and pays here
    two = QuantArch(a, tuple(i in (3, 4) for i in range(n)))
    shared = layers[blocks[3]]  # the tensor between slot 3 and slot 4 stays INT8
    assert d.deltas(two) == pytest.approx(0.006 - 2 * (0.002 + 1e-6 * _elements(shared)))
    none = PrecisionDelta(f, q)  # conversions not priced: each block as measured alone
    assert none.deltas(two) == pytest.approx(0.006) and none.deltas(QuantArch.fp32(a)) == 0.0


def test_conversion_costs_are_recovered_from_end_to_end_rows():
    """Rows made by the pricing's own arithmetic give back its two parameters; too few rows price none."""
    archs = _archs(10)
    f, q = _tables(archs)
    truth = PrecisionDelta(f, q, edge=(0.0015, 4e-7))
    sp = get_space(SPACE)
    fp32 = [1.0 + 0.01 * i for i in range(len(archs))]
    # all-INT8 (stem and head too): every layer's alone change, less two conversions per inner tensor
    int8 = [y + sum(0.003 for _ in sp.layers(a)) - 2 * sum(truth.conversion_ms(_elements(lyr)) for lyr in sp.layers(a)[:-1])
            for y, a in zip(fp32, archs)]
    d = PrecisionDelta(f, q)
    d.fit_edges(archs, fp32, int8)
    assert d.edge == pytest.approx((0.0015, 4e-7), rel=1e-6) and d.edge_fit["rows"] == 10
    back = PrecisionDelta.from_dict(d.to_dict())
    assert back.edge == d.edge and back.edge_fit == d.edge_fit
    few = PrecisionDelta(f, q)
    few.fit_edges(archs[:MIN_EDGE_ROWS - 1], fp32[:MIN_EDGE_ROWS - 1], int8[:MIN_EDGE_ROWS - 1])
    assert few.edge == (0.0, 0.0) and "not priced" in few.edge_fit["note"]


def test_profiles_of_two_hosts_do_not_price_conversions(tmp_path):
    """End-to-end rows of two hosts differ by more than conversions: the pricing falls back and says so."""
    import hwnas.pipeline.jobs as jobs
    from hwnas.profiles import DeviceProfile

    profs = {}
    for prec in ("fp32", "int8"):
        jobs.profile(space=(SPACE,), out=tmp_path / prec, precision=prec, samples=MIN_EDGE_ROWS, reference_set=1,
                     repeats=0, resolutions=(R,), ops=True, quick=True, energy=False, kernel_times=False)
        profs[prec] = DeviceProfile.open(tmp_path / prec)
    d = PrecisionDelta.from_profiles(profs["fp32"], profs["int8"], SPACE)
    assert d.edge_fit["rows"] == MIN_EDGE_ROWS + 1  # the samples and the reference subnet, measured in both
    assert min(d.edge) >= 0.0
    other = DeviceProfile.open(tmp_path / "int8")
    other.meta["host"] = {**other.meta["host"], "boot_id": "another-boot"}
    d2 = PrecisionDelta.from_profiles(profs["fp32"], other, SPACE)
    assert d2.edge == (0.0, 0.0) and "different hosts" in d2.edge_fit["note"]


def test_the_head_follows_the_last_block_in_policy_and_price():
    """A float head after an INT8 last block is not a pair (OpenVINO runs it slower than all-FP32):
    the policy quantizes the head with the last block, reads back, and the price counts its layers."""
    from hwnas.errors import ArchError
    from hwnas.types import PrecisionPolicy, Rule
    from hwnas.types.quant_arch import HEAD, active_blocks

    sp = get_space(SPACE)
    a = sp.arch(3, 3, (2, 3, 1, 3), R)
    last = active_blocks(a)[-1][1]
    q = QuantArch(a, tuple(i == last for i in range(sp.n_slots)))
    inner = QuantArch(a, tuple(i == 0 for i in range(sp.n_slots)))
    assert q.int8_head and not inner.int8_head
    pol = q.policy()
    assert pol.precision_for("/classifier/linear/Gemm") == "int8" and pol.precision_for("/Flatten") == "int8"
    assert pol.precision_for("/first_conv/conv/Conv") == "fp32"
    assert inner.policy().precision_for("/feature_mix_layer/conv/Conv") == "fp32"
    assert QuantArch.from_policy(a, PrecisionPolicy.from_dict(pol.to_dict())) == q
    k = active_blocks(a)[-1][0]
    float_head = PrecisionPolicy("fp32", (Rule(rf"/blocks\.{k}/.*", "int8"),))
    with pytest.raises(ArchError, match="head follows its last block"):
        QuantArch.from_policy(a, float_head)
    with pytest.raises(ArchError, match="head follows its last block"):
        QuantArch.from_policy(a, PrecisionPolicy("fp32", (Rule(HEAD, "int8"),)))
    f, t = _tables([a])
    layers = sp.layers(a)
    n_head = len(layers) - 1 - max(i for i, lyr in enumerate(layers) if lyr.kind == "mbconv")
    assert n_head >= 4  # final expand, pool, feature mix, classifier
    d = PrecisionDelta(f, t, edge=(0.002, 0.0))
    # the last block and the head: every layer's alone change; one run of INT8 layers to the (float) output
    # saves the conversions between its layers
    assert d.deltas(q) == pytest.approx((1 + n_head) * 0.003 - 2 * n_head * 0.002)
    assert d.deltas(inner) == pytest.approx(0.003)


def test_the_closed_loop_prices_in_graph_changes_from_measured_pairs():
    """Pairs measured with a dearer change back to float inside the graph (20 µs more than a
    conversion, as OpenVINO shows) than the tables imply: the rescaled model recovers the extra cost of
    each direction and the scale, and predicts a new mixed pair."""
    from hwnas.latency_models import LATENCY_MODELS
    from hwnas.latency_models.precision import PrecisionLatency

    archs = _archs(12, seed=3)
    f, q = _tables(archs)
    fp32 = LATENCY_MODELS.create("flops").fit(archs, [0.1 + 0.001 * i for i in range(12)], None, space=SPACE)
    truth = PrecisionDelta(f, q, edge=(0.001, 0.0), change=(0.0, 0.02))
    prior = PrecisionLatency(fp32, PrecisionDelta(f, q, edge=(0.001, 0.0)))
    rng = np.random.default_rng(4)
    n = get_space(SPACE).n_slots
    pairs = [QuantArch(a, tuple(rng.random(n) < 0.5)) for a in archs[:8]] + [QuantArch.all_int8(archs[8])]
    measured = 1.1 * (fp32.predict([p.arch for p in pairs]) + np.array([truth.deltas(p) for p in pairs]))
    assert prior.delta.change == (0.0, 0.0)
    post = prior.rescaled(pairs, measured)
    assert post.scale == pytest.approx(1.1, rel=1e-6) and post.delta.change == pytest.approx((0.0, 0.02), abs=1e-9)
    assert post.delta.change_fit["pairs"] >= 3 and prior.delta.change == (0.0, 0.0)  # the prior is left as it was
    assert PrecisionDelta.from_dict(post.delta.to_dict()).change == post.delta.change
    new = QuantArch(archs[10], tuple(i % 3 == 0 for i in range(n)))
    want = 1.1 * (fp32.predict([new.arch])[0] + truth.deltas(new))
    assert post.predict([new])[0] == pytest.approx(want, rel=1e-6)
    assert abs(prior.predict([new])[0] * 1.1 - want) > 0.01  # the tables alone miss it
