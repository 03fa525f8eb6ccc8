import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_agree, randomize_, structured_inputs
from hwnas.errors import ArchError
from hwnas.supernet.elastic import ElasticMBV3
from hwnas.supernet.extract import extract
from hwnas.supernet.spaces import get_space

DATA = Path(__file__).parent / "data" / "ofa"


@pytest.fixture(scope="module")
def ofa_net():
    return randomize_(ElasticMBV3("ofa-mbv3-w1.0"), seed=1)


def _archs(sp, n_random, resolutions, seed=0):
    rng = np.random.default_rng(seed)
    out = [sp.min_arch(resolutions[0]), sp.max_arch(resolutions[-1])]
    out += [sp.sample(rng, resolutions) for _ in range(n_random)]
    return out


@pytest.mark.parametrize("space", ["fmnist-mbv3", "tiny-mbv3"])
def test_extract_equals_supernet(space):
    sp = get_space(space)
    net = randomize_(ElasticMBV3(sp), seed=2)
    for a in _archs(sp, 6, sp.resolutions):
        randomize_(net, seed=2, arch=a)  # BN statistics that normalise this subnet: input-dependent outputs
        x = torch.from_numpy(structured_inputs(4, sp.in_channels, a.r, seed=a.r))
        with torch.no_grad():
            y_super, y_static = net(x, a), extract(net, a)(x)
        assert_agree(y_static.numpy(), y_super.numpy(), 1e-4)


def test_extract_equals_supernet_ofa_w10(ofa_net):
    sp = ofa_net.space
    for a in _archs(sp, 3, [128, 160, 176]):
        randomize_(ofa_net, seed=1, arch=a)
        x = torch.from_numpy(structured_inputs(3, 3, a.r, seed=0))
        with torch.no_grad():
            y_super, y_static = ofa_net(x, a), extract(ofa_net, a)(x)
        assert_agree(y_static.numpy(), y_super.numpy(), 1e-4)


def test_extracted_weights_are_copies(ofa_net):
    a = ofa_net.space.min_arch(128)
    sub = extract(ofa_net, a)
    before = ofa_net.first_conv.conv.weight.clone()
    with torch.no_grad():
        sub.first_conv.conv.weight.add_(1.0)
    assert torch.equal(ofa_net.first_conv.conv.weight, before)


def test_kernel_transform_is_not_a_centre_crop(ofa_net):
    dw = ofa_net.blocks[3].conv.depth_conv.conv
    w7 = dw.conv.weight[:8]
    k5 = dw.active_filter(8, 5)
    k3 = dw.active_filter(8, 3)
    assert k5.shape == (8, 1, 5, 5) and k3.shape == (8, 1, 3, 3)
    assert not torch.allclose(k5, w7[:, :, 1:6, 1:6])
    # k=3 goes through both matrices: 7 -> 5 (transformed) -> 3
    m75, m53 = dw.get_parameter("7to5_matrix"), dw.get_parameter("5to3_matrix")
    v5 = torch.nn.functional.linear(w7[:, :, 1:6, 1:6].reshape(-1, 25), m75).reshape(8, 1, 5, 5)
    v3 = torch.nn.functional.linear(v5[:, :, 1:4, 1:4].reshape(-1, 9), m53).reshape(8, 1, 3, 3)
    assert torch.allclose(k5, v5) and torch.allclose(k3, v3)


@pytest.mark.parametrize("w", ["1.0", "1.2"])
def test_supernet_state_dict_has_ofa_layout(w):
    ref = json.loads((DATA / f"ofa_mbv3_w{w}_keys.json").read_text())
    sd = ElasticMBV3(f"ofa-mbv3-w{w}").state_dict()
    assert list(sd) == list(ref)
    assert {k: list(v.shape) for k, v in sd.items()} == ref


@pytest.mark.parametrize("which", ["min", "max"])
def test_static_subnet_has_ofa_layout(which, ofa_net):
    ref = json.loads((DATA / f"subnet_{which}_keys.json").read_text())
    sp = ofa_net.space
    sub = extract(ofa_net, sp.min_arch() if which == "min" else sp.max_arch())
    sd = sub.state_dict()
    assert list(sd) == list(ref)
    assert {k: list(v.shape) for k, v in sd.items()} == ref


def test_active_arch_on_instance_and_wrong_space():
    sp = get_space("tiny-mbv3")
    net = randomize_(ElasticMBV3(sp))
    a = sp.min_arch(16)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net.set_active(a)(x), net(x, a))
    with pytest.raises(ArchError, match="this super-network is 'tiny-mbv3'"):
        net(x, get_space("fmnist-mbv3").min_arch())
