import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import ArchError, UnknownNameError
from hwnas.supernet.spaces import get_space, list_spaces, make_divisible
from hwnas.types import ArchConfig

DATA = Path(__file__).parent / "data" / "ofa"


def test_import_hwnas_is_light():
    code = ("import sys, hwnas, hwnas.types, hwnas.supernet.spaces, hwnas.registry, hwnas.errors, hwnas.cli;"
            "bad=[m for m in ('torch','onnxruntime','openvino','tvm','tensorrt','onnx','sklearn','pandas') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import hwnas pulled in heavy modules: {out}"


def test_registry_lists_spaces():
    assert {"ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "fmnist-mbv3", "tiny-mbv3"} <= set(list_spaces())
    with pytest.raises(UnknownNameError, match=r"Did you mean 'ofa-mbv3-w1\.\d'\? Available: fmnist-mbv3"):
        get_space("ofa-mbv3-w1")


@pytest.mark.parametrize("w", ["1.0", "1.2"])
@pytest.mark.parametrize("r", [160, 176, 192, 208, 224])
def test_macs_match_ofa_reference(w, r):
    ref = json.loads((DATA / "reference_numbers.json").read_text())
    sp = get_space(f"ofa-mbv3-w{w}")
    for name, arch in (("min", sp.min_arch(r)), ("max", sp.max_arch(r))):
        expect = ref[f"w{w}_{name}_r{r}"]["MFLOPs(OFA count_flops_given_config)"]
        assert sp.macs(arch) / 1e6 == pytest.approx(expect, abs=1e-3)


def test_params_match_ofa_reference():
    for w, mn, mx in (("1.0", 3_410_792, 7_664_760), ("1.2", 4_602_456, 10_701_632)):
        sp = get_space(f"ofa-mbv3-w{w}")
        assert sp.params(sp.min_arch()) == mn
        assert sp.params(sp.max_arch()) == mx


def test_space_shapes_follow_ofa():
    sp = get_space("ofa-mbv3-w1.0")
    assert [s.width for s in sp.stages] == [24, 40, 80, 112, 160]
    assert sp.resolutions == tuple(range(128, 225, 4))
    assert get_space("ofa-mbv3-w1.2").resolutions[0] == 160
    assert [s.width for s in get_space("ofa-mbv3-w1.2").stages] == [32, 48, 96, 136, 192]
    assert make_divisible(18) == 24  # OFA bumps a >10 % round-down
    table = json.loads((DATA / "ofa_mbv3_w1.0_block_table.json").read_text())
    layers = [layer for layer in sp.layers(sp.max_arch(224)) if layer.kind == "mbconv"]
    for layer, row in zip(layers, table["blocks"]):
        assert (layer.in_ch, layer.out_ch, layer.stride, layer.act, layer.se, layer.shortcut) == (
            row["in_ch"], row["out_ch"], row["stride"], row["act"], row["se"], row["identity_shortcut"])
        if "mid_by_e" in row:
            assert layer.mid_ch == row["mid_by_e"]["6"]
    hw = [layer.out_hw for layer in sp.layers(sp.max_arch(176)) if layer.kind == "mbconv"]
    assert sorted(set(hw), reverse=True) == [88, 44, 22, 11, 6]


def test_lut_keys_follow_ofa_format():
    sp = get_space("ofa-mbv3-w1.2")
    keys = [layer.key() for layer in sp.layers(sp.min_arch(224))]
    assert keys[1] == ("expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1"
                       "-idskip:1-se:0-hs:0")
    assert keys[-1] == "Logits-input:1x1x1536-output:1000"
    assert keys[-3] == "AvgPool2D-input:7x7x1152-output:1x1x1152"


def test_validation_names_the_slot():
    sp = get_space("ofa-mbv3-w1.0")
    ks = [3] * 20
    ks[5] = 9
    with pytest.raises(ArchError, match=r"kernel of slot 5 \(stage 2, block 2\) is 9; allowed \[3, 5, 7\]"):
        ArchConfig("ofa-mbv3-w1.0", tuple(ks), (3,) * 20, (4,) * 5, 224)
    with pytest.raises(ArchError, match="needs 20 kernel sizes"):
        ArchConfig("ofa-mbv3-w1.0", (3,) * 19, (3,) * 20, (4,) * 5, 224)
    with pytest.raises(ArchError, match="depth of stage 3 is 5"):
        ArchConfig("ofa-mbv3-w1.0", (3,) * 20, (3,) * 20, (4, 4, 5, 4, 4), 224)
    with pytest.raises(ArchError, match="resolution 225 is not allowed"):
        ArchConfig("ofa-mbv3-w1.0", (3,) * 20, (3,) * 20, (4,) * 5, 225)
    with pytest.raises(ArchError, match="expand ratio of slot 0"):
        ArchConfig("ofa-mbv3-w1.0", (3,) * 20, (5,) + (3,) * 19, (4,) * 5, 224)
    # an inactive slot may carry anything valid; it is normalised away
    a = ArchConfig("ofa-mbv3-w1.0", (3, 3, 7, 7) + (3,) * 16, (3, 3, 6, 6) + (3,) * 16, (2, 4, 4, 4, 4), 224)
    b = ArchConfig("ofa-mbv3-w1.0", (3,) * 20, (3,) * 20, (2, 4, 4, 4, 4), 224)
    assert a == b and a.key() == b.key()


def test_key_and_string_round_trip():
    for name in list_spaces():
        sp = get_space(name)
        rng = np.random.default_rng(1)
        for _ in range(20):
            a = sp.sample(rng)
            assert ArchConfig.parse(a.to_str()) == a
            assert ArchConfig.from_dict(a.to_dict()) == a
            assert ArchConfig.parse(json.dumps(a.to_dict())) == a
            assert sp.from_genome(sp.to_genome(a)) == a
    a = get_space("tiny-mbv3").max_arch()
    assert a.key() == "547886f3eccaf35b"  # stable across runs and machines
    assert a.to_str() == "tiny-mbv3/r28_k5e3-k5e3_k5e3-k5e3"


def test_parse_errors_are_clear():
    with pytest.raises(ArchError, match="names no space"):
        ArchConfig.parse("r224_k3e3")
    with pytest.raises(ArchError, match="4 stages"):
        ArchConfig.parse("fmnist-mbv3/r28_k3e3")
    with pytest.raises(ArchError, match=r"k<kernel>e<expand>"):
        ArchConfig.parse("tiny-mbv3/r28_k3_k3e2")
    with pytest.raises(ArchError, match="at most 2"):
        ArchConfig.parse("tiny-mbv3/r28_k3e2-k3e2-k3e2_k3e2")


def test_ofa_dict_forms():
    d = json.loads((DATA / "arch_encoding_examples.json").read_text())["example_arch"]
    a = ArchConfig.from_dict(d, "ofa-mbv3-w1.2")
    assert a.r == 176 and a.d == (2, 3, 4, 2, 3)
    b = ArchConfig.from_dict({"ks": 3, "e": 3, "d": 2, "image_size": 160}, "ofa-mbv3-w1.0")
    assert b == get_space("ofa-mbv3-w1.0").min_arch(160)


def test_encoding_matches_ofa_nas_encoder_layout():
    """OFA's MobileNetArchEncoder: [r one-hot | ks one-hot 20x3 | e one-hot 20x3], inactive slots zero."""
    ex = json.loads((DATA / "arch_encoding_examples.json").read_text())
    sp = get_space("ofa-mbv3-w1.2")
    a = ArchConfig.from_dict({**ex["example_arch"], "r": [160]}, "ofa-mbv3-w1.2")
    x = sp.encode([a])[0]
    assert x.shape == (sp.encoding_dim,)
    nr = len(sp.resolutions)
    assert np.flatnonzero(x[:nr]).tolist() == [sp.resolutions.index(160)]
    n_res_example = 4  # the example used image_size_list=[128,160,192,224]
    expected = [i - n_res_example for i in ex["nas_feature_nonzero_idx(image_size=160)"] if i >= n_res_example]
    assert (np.flatnonzero(x[nr:])).tolist() == expected
    assert sp.encoding_dim - nr + n_res_example == ex["nas_encoder(image_size_list=[128,160,192,224])_n_dim"]


def test_sampling_mutation_crossover_stay_valid_and_seeded():
    sp = get_space("fmnist-mbv3")
    a1 = [sp.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a1[0] == a1[1] == a1[2]
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(200)]
    assert len({a.key() for a in archs}) > 190
    assert {a.r for a in archs} == set(sp.resolutions)
    m = [sp.mutate(archs[0], rng, 0.5) for _ in range(20)]
    assert any(x != archs[0] for x in m)
    c = sp.crossover(archs[0], archs[1], rng)
    ga, gb, gc = sp.to_genome(archs[0]), sp.to_genome(archs[1]), sp.to_genome(c)
    assert all(x in (p, q) for x, p, q in zip(gc, ga, gb))
    assert sp.mutate(archs[0], rng, 0.0) == archs[0]


def test_fmnist_space_spans_a_wide_range():
    sp = get_space("fmnist-mbv3")
    assert sp.macs(sp.max_arch()) / sp.macs(sp.min_arch()) > 8
    assert sp.layers(sp.max_arch(28))[0].out_hw == 14


def test_all_layers_covers_every_subnet_layer():
    sp = get_space("fmnist-mbv3")
    keys = {layer.key() for layer in sp.all_layers([20, 28])}
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = sp.sample(rng, [20, 28])
        assert {layer.key() for layer in sp.layers(a)} <= keys
    assert len(keys) == len(sp.all_layers([20, 28]))  # deduplicated
