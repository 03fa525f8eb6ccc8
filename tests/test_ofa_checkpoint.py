"""Official OFA checkpoint import, tested on state dicts in the released files' exact layout."""

import json
from pathlib import Path

import pytest
import torch

from hwnas.errors import CheckpointError
from hwnas.supernet import load_supernet
from hwnas.supernet.elastic import ElasticMBV3

DATA = Path(__file__).parent / "data" / "ofa"


def released_state(w: str, seed: int = 0, n_classes: int | None = None) -> dict:
    """Random values in the exact key order/shapes of ofa_mbv3_d234_e346_k357_w{w} (mobile_inverted_conv)."""
    layout = json.loads((DATA / f"ofa_mbv3_w{w}_keys_checkpoint_layout.json").read_text())
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
            continue
        if n_classes is not None and k.startswith("classifier."):
            shape = [n_classes] + shape[1:]
        out[k] = torch.randn(shape, generator=g) if "running_var" not in k else torch.rand(shape, generator=g) + 0.5
    return out


@pytest.mark.parametrize("w", ["1.0", "1.2"])
def test_released_layout_loads_every_value(tmp_path, w):
    state = released_state(w)
    assert any(".mobile_inverted_conv." in k for k in state)
    path = tmp_path / f"ofa_mbv3_d234_e346_k357_w{w}"  # extension-less, like the released files
    torch.save({"state_dict": state, "epoch": 120, "best_acc": 76.0}, path)
    net, source = load_supernet(f"ofa-mbv3-w{w}", path)
    own = net.state_dict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(own[k.replace(".mobile_inverted_conv.", ".conv.")], v), k
    assert str(path) in source


def test_prefix_static_names_and_bare_dict(tmp_path):
    state = released_state("1.0", seed=3)
    renamed = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue  # absent counters are tolerated
        k = "module." + k.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")
        renamed[k.replace(".linear.linear.", ".linear.")] = v
    torch.save(renamed, tmp_path / "ckpt.pth")
    net, _ = load_supernet("ofa-mbv3-w1.0", tmp_path / "ckpt.pth")
    assert torch.equal(net.blocks[5].conv.depth_conv.conv.conv.weight,
                       state["blocks.5.mobile_inverted_conv.depth_conv.conv.conv.weight"])


def test_other_class_count_loads_all_but_classifier(tmp_path):
    torch.save({"state_dict": released_state("1.0", n_classes=10)}, tmp_path / "c10")
    net, source = load_supernet("ofa-mbv3-w1.0", tmp_path / "c10")
    assert "10 classes" in source and "classifier" in source
    assert net.classifier.linear.weight.shape == (1000, 1280)


def test_wrong_width_fails_listing_mismatches_and_leaves_net_untouched(tmp_path):
    torch.save({"state_dict": released_state("1.2")}, tmp_path / "w12")
    with pytest.raises(CheckpointError, match=r"shape mismatches \(first: first_conv.conv.weight: file \(24, 3, 3, 3\)"):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "w12")
    from hwnas.supernet.ofa_checkpoint import load_state_into

    net = ElasticMBV3("ofa-mbv3-w1.0")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad = released_state("1.0")
    bad["blocks.99.mobile_inverted_conv.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \(first: blocks.99.conv.extra.weight\)"):
        load_state_into(net, bad)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_missing_keys_and_corrupt_files(tmp_path):
    state = released_state("1.0")
    del state["blocks.3.mobile_inverted_conv.point_linear.bn.bn.weight"]
    torch.save(state, tmp_path / "missing")
    with pytest.raises(CheckpointError, match="1 keys missing"):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "missing")
    (tmp_path / "corrupt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "corrupt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "nope")
    # a truncated real checkpoint
    torch.save(released_state("1.0"), tmp_path / "full")
    data = (tmp_path / "full").read_bytes()
    (tmp_path / "trunc").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "trunc")


class Evil:
    """Any arbitrary object: a weights-only load must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"state_dict": {"x": Evil()}}, tmp_path / "evil")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_supernet("ofa-mbv3-w1.0", tmp_path / "evil")
