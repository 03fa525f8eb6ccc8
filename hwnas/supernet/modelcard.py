"""The JSON model card written beside trained super-network weights.

It records how the weights were made (command, config, epochs, seed, data,
hardware, wall time) and what they achieve: test top-1 of the smallest, the
largest and a few fixed random subnets, each after BN recalibration.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np


def hardware_summary() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores{gpu}"


def write_model_card(weights: Path, command: str, data_dir=None, n_random: int = 5, seed: int = 0) -> Path:
    from safetensors import safe_open

    from hwnas.datasets import open_dataset
    from hwnas.supernet.derive import space_from_checkpoint
    from hwnas.supernet.evaluate import evaluate_subnet
    from hwnas.supernet.ofa_checkpoint import load_supernet
    from hwnas.supernet.spaces import get_space

    weights = Path(weights)
    with safe_open(str(weights), "pt") as fh:
        meta = dict(fh.metadata() or {})
    log = json.loads((weights.parent / "train_log.json").read_text())
    space = space_from_checkpoint(weights) or get_space(meta["space"])  # a derived space travels in the file
    net, _ = load_supernet(weights, space)
    ds = open_dataset(data_dir, space)  # a name, a folder, or the dataset the weights were trained on
    train, test = ds.splits("train", "test")
    rng = np.random.default_rng(seed)
    archs = {"smallest": space.min_arch(), "largest": space.max_arch()}
    archs.update({f"random{i}": space.sample(rng) for i in range(n_random)})
    results = {}
    for name, a in archs.items():
        results[name] = {
            "arch": a.to_str(),
            "macs_m": round(space.macs(a) / 1e6, 3),
            "params": space.params(a),
            "test_top1": round(evaluate_subnet(net, a, train, test), 2),
        }
    card = {
        "space": space.name,
        "weights": weights.name,
        "command": command,
        "config": json.loads(meta["config"]),
        "epochs_done": len(log["history"]),
        "data": {**ds.describe(), "train": len(train), "test": len(test)},
        "hardware": hardware_summary(),
        "train_time_s": log["history"][-1]["elapsed_s"] if log["history"] else 0.0,
        "history": log["history"],
        "init": {"checkpoint": json.loads(meta["config"]).get("init", ""), "notes": log.get("init_notes", [])},
        "evaluation": {"split": "test", "bn_recalibration": "2000 training images", "subnets": results},
    }
    path = weights.with_name("model_card.json")
    path.write_text(json.dumps(card, indent=1))
    return path
