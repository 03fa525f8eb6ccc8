"""What a profile measures: stratified end-to-end samples, the fixed reference set, the block list."""

import numpy as np

from hwnas.profiling.sampling import default_op_resolutions, op_layers, reference_archs, stratified_archs
from hwnas.supernet.spaces import get_space


def test_reference_set_never_changes():
    # the same archs on every device and in every hwnas version: profiles stay comparable
    assert reference_archs("tiny-mbv3", 3)[0].to_str() == "tiny-mbv3/r28_k5e3_k3e3-k5e3"
    assert reference_archs("ofa-mbv3-w1.0", 1)[0].to_str() == (
        "ofa-mbv3-w1.0/r208_k7e4-k7e3-k5e6_k7e3-k7e4-k5e4_k3e3-k5e6-k3e4_k5e6-k7e3-k5e4_k3e3-k5e4-k7e3-k7e3")
    assert reference_archs("ofa-mbv3-w1.0", 20) == reference_archs("ofa-mbv3-w1.0", 20)


def test_stratified_samples_cover_sizes_and_resolutions():
    sp = get_space("ofa-mbv3-w1.0")
    archs = stratified_archs(sp.name, 100, seed=0)
    assert len({a.key() for a in archs}) == 100
    counts = np.bincount([sp.resolutions.index(a.r) for a in archs], minlength=len(sp.resolutions))
    assert counts.min() >= 3 and counts.max() <= 5  # every resolution, evenly
    macs = np.array([sp.macs(a) for a in archs], dtype=float)
    rng = np.random.default_rng(0)
    uniform = np.array([sp.macs(sp.sample(rng)) for _ in range(100)], dtype=float)
    spread = lambda x: np.percentile(x, 95) / np.percentile(x, 5)  # noqa: E731
    assert spread(macs) > 1.2 * spread(uniform)  # reaches further into small and large subnets
    assert stratified_archs(sp.name, 30, seed=0) == archs[:30]  # more samples on resume only add archs
    assert stratified_archs(sp.name, 30, seed=1) != archs[:30]


def test_block_list_is_deduplicated_and_coarse_for_large_spaces():
    assert default_op_resolutions("ofa-mbv3-w1.0") == [128, 144, 160, 176, 192, 208, 224]
    assert default_op_resolutions("fmnist-mbv3") == [20, 24, 28, 32]
    layers = op_layers("ofa-mbv3-w1.0", [128, 224])
    keys = [layer.key() for layer in layers]
    assert len(keys) == len(set(keys))
    assert {layer.kind for layer in layers} == {"stem", "mbconv", "final_expand", "pool", "feature_mix", "classifier"}
