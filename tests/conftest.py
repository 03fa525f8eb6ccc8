"""Shared fixtures. Tests use real runtimes on small models; nothing is mocked."""

from __future__ import annotations

import importlib.util
import os

import pytest


def pytest_collection_modifyitems(config, items):
    """Skip tier-marked tests with a clear reason where their requirement is absent."""
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
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path_factory.getbasetemp() / "hwnas-cache"))


def randomize_(net, seed: int = 0):
    """Give a fresh network 'trained-looking' values: O(1) activations, non-trivial BN
    statistics and kernel-transform matrices, so numeric comparisons are not vacuous."""
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
    return net.eval()


@pytest.fixture
def cpu_threads():
    return int(os.environ.get("HWNAS_TEST_THREADS", "1"))
