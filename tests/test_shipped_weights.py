"""The super-networks shipped with hwnas load by name and reproduce their model cards."""

import json

import pytest

from hwnas.supernet import SHIPPED_DIR, load_supernet, shipped_weights
from hwnas.types import ArchConfig

CARDS = sorted(SHIPPED_DIR.glob("*.model_card.json"))


def test_every_shipped_weight_file_has_a_card():
    weights = sorted(SHIPPED_DIR.glob("*.safetensors"))
    assert weights, "no shipped weights"
    assert {w.name.removesuffix(".safetensors") for w in weights} == \
        {c.name.removesuffix(".model_card.json") for c in CARDS}
    for c in CARDS:
        card = json.loads(c.read_text())
        for key in ("command", "config", "epochs_done", "data", "hardware", "train_time_s", "evaluation"):
            assert key in card, f"{c.name} lacks {key}"


@pytest.mark.data
@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.name)
def test_shipped_weights_reproduce_their_card(card_path):
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import evaluate_subnet

    card = json.loads(card_path.read_text())
    space = card["space"]
    assert shipped_weights(space) is not None
    net, source = load_supernet(space)
    assert "safetensors" in source
    train, test = get_dataset("fashion-mnist").splits("train", "test")
    for name in ("smallest", "largest"):
        row = card["evaluation"]["subnets"][name]
        acc = evaluate_subnet(net, ArchConfig.parse(row["arch"]), train, test)
        assert acc == pytest.approx(row["test_top1"], abs=0.05), name
