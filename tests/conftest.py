"""Shared fixtures. Tests use real runtimes on small models; nothing is mocked."""

from __future__ import annotations

import importlib.util
import os

import pytest


STRICT = os.environ.get("HWNAS_STRICT", "") not in ("", "0")
"""``HWNAS_STRICT=1`` (the README's test command, so CI): a test whose data or runtime is missing
fails instead of skipping, so a green run proves the accuracy, INT8 and runtime tests ran. Only
the GPU tier still skips (no CI machine has one)."""


def pytest_collection_modifyitems(config, items):
    """Skip tier-marked tests with a clear reason where their requirement is absent (fail in strict mode)."""
    from hwnas.datasets.fashion_mnist import available as fmnist_available

    reasons = {
        "openvino": None if importlib.util.find_spec("openvino") else "openvino not installed (pip install 'hwnas[openvino]')",
        "tvm": None if importlib.util.find_spec("tvm") else "apache-tvm not installed (pip install 'hwnas[tvm]')",
        "data": None if fmnist_available() else
        "Fashion-MNIST files absent (apt-get install -y dataset-fashion-mnist, or set HWNAS_FMNIST_DIR)",
    }
    gpu_reason = None
    try:
        import torch

        if not torch.cuda.is_available():
            gpu_reason = "no NVIDIA GPU on this machine"
    except ImportError:
        gpu_reason = "torch missing"
    reasons["gpu"] = gpu_reason
    for item in items:
        for mark, why in reasons.items():
            if why and item.get_closest_marker(mark):
                if STRICT and mark != "gpu":
                    item.add_marker(pytest.mark.strict_missing(reason=why))
                else:
                    item.add_marker(pytest.mark.skip(reason=why))


def pytest_runtest_setup(item):
    m = item.get_closest_marker("strict_missing")
    if m is not None:
        pytest.fail(f"HWNAS_STRICT=1 and this test cannot run: {m.kwargs['reason']}", pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path_factory.getbasetemp() / "hwnas-cache"))


def structured_images(n: int, channels: int, resolution: int, seed: int = 0):
    """uint8 images with structure at every scale (a coarse random field plus fine noise): unlike
    i.i.d. noise, their globally pooled features differ from image to image, so a network's
    outputs depend on which image it is given."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=g)
    x = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.randn(n, channels, resolution, resolution, generator=g)
    return (x.clamp(0, 1) * 255).to(torch.uint8).numpy().astype(np.uint8)


def structured_split(n: int, channels: int, resolution: int, seed: int = 0):
    import numpy as np

    from hwnas.datasets.images import ImageSet

    return ImageSet(structured_images(n, channels, resolution, seed), np.zeros(n, dtype=np.int64),
                    (0.5,) * channels, (0.25,) * channels, "structured")


def structured_inputs(n: int, channels: int, resolution: int, seed: int = 0):
    """float32 network inputs (normalised) of :func:`structured_images`."""
    return structured_split(n, channels, resolution, seed).inputs(resolution)


def assert_input_dependent(outputs, min_ratio: float = 0.2):
    """Outputs for different inputs (rows) differ by at least ``min_ratio`` of their scale."""
    import numpy as np

    y = np.asarray(outputs, dtype=np.float64)
    spread, scale = float(y.std(0).mean()), float(np.abs(y).mean())
    assert spread >= min_ratio * scale, f"outputs barely depend on the input (spread {spread:.3g}, scale {scale:.3g})"
    return spread


def assert_agree(out, ref, rel: float = 1e-3):
    """``out`` matches ``ref`` (rows = different inputs) within ``rel`` of how much ``ref`` varies across
    inputs — a bar an export that ignored its input (error ~ that variation) cannot pass."""
    import numpy as np

    spread = assert_input_dependent(ref)
    err = float(np.abs(np.asarray(out, dtype=np.float64) - np.asarray(ref, dtype=np.float64)).max())
    assert err <= rel * spread, f"max difference {err:.3g} > {rel} x input spread {spread:.3g}"


def randomize_(net, seed: int = 0, arch=None):
    """Give a fresh network 'trained-looking' values: random weights and kernel-transform matrices,
    and BN statistics that normalise its activations — computed on :func:`structured_images` for
    ``arch`` when given (the subnet a test extracts), random otherwise — so outputs depend on the
    input and numeric comparisons are not vacuous."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("_matrix"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g) + (1.0 if name.endswith("bn.weight") else 0.0))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    if arch is not None:
        from hwnas.supernet.evaluate import recalibrate_bn

        recalibrate_bn(net, structured_split(64, net.space.in_channels, arch.r, seed), arch, n_images=64, batch_size=32)
    return net.eval()


@pytest.fixture
def cpu_threads():
    return int(os.environ.get("HWNAS_TEST_THREADS", "1"))


def random_folder(root, classes=("a", "b", "c"), n=4, seed=2):
    """A tiny ImageNet-layout folder (``train/``, ``val/``) of random RGB PNGs, one per seed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for s in ("train", "val"):
        for c in classes:
            (root / s / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(root / s / c / f"{i}.png")
    return root

