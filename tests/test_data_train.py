"""Fashion-MNIST loading, super-network training/resume and BN recalibration (real data, tiny space)."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hwnas.errors import CheckpointError, ConfigError, DataError
from hwnas.datasets import preprocess
from hwnas.datasets.fashion_mnist import FashionMNIST, default_dir as fmnist_dir


def load_fmnist_split(split, root=None):
    return FashionMNIST(root).split(split)

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def fmnist():
    return load_fmnist_split("train"), load_fmnist_split("val"), load_fmnist_split("test")


def test_splits(fmnist):
    train, val, test = fmnist
    assert (len(train), len(val), len(test)) == (55_000, 5_000, 10_000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == np.uint8
    assert set(np.unique(test.labels)) == set(range(10))
    full = load_fmnist_split("train-full")
    # val is a fixed, disjoint part of the training set
    keys = lambda s: {hash(im.tobytes()) for im in s.images[:2000]}  # noqa: E731
    assert not keys(val) & {hash(im.tobytes()) for im in train.images}
    assert np.array_equal(load_fmnist_split("val").labels, val.labels)
    assert len(full) == 60_000


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        load_fmnist_split("train", tmp_path)
    src = fmnist_dir()
    for f in src.iterdir():
        raw = gzip.open(f).read()
        if "train-images" in f.name:
            raw = raw[: len(raw) // 2]
        with gzip.open(tmp_path / f.name, "wb") as fh:
            fh.write(raw)
    with pytest.raises(DataError, match="truncated"):
        load_fmnist_split("train", tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable gzip"):
        load_fmnist_split("test", tmp_path)


def test_preprocess(fmnist):
    x = preprocess(fmnist[0].images[:8], 20, fmnist[0].mean, fmnist[0].std)
    assert x.shape == (8, 1, 20, 20)
    full = preprocess(fmnist[0].images[:2000], 28, fmnist[0].mean, fmnist[0].std)
    assert abs(float(full.mean())) < 0.05 and abs(float(full.std()) - 1) < 0.05
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = preprocess(fmnist[0].images[:8], 28, (0.5,), (0.5,), train=True, generator=g1)
    b = preprocess(fmnist[0].images[:8], 28, (0.5,), (0.5,), train=True, generator=g2)
    assert torch.equal(a, b)


def _cfg(**kw):
    from hwnas.supernet.train import TrainConfig

    base = dict(space="tiny-mbv3", epochs=2, batch_size=128, lr=0.1, train_limit=1024, seed=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_train_resume_and_config_checks(tmp_path, fmnist):
    from hwnas.supernet import load_supernet
    from hwnas.supernet.train import train_supernet

    train, val, _ = fmnist
    small_val = val.subset(np.arange(500))
    out = tmp_path / "run"
    seen = []
    w = train_supernet(_cfg(epochs=1), train, small_val, out, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1] and w.is_file()
    with pytest.raises(ConfigError, match="--resume"):
        train_supernet(_cfg(epochs=2), train, small_val, out)
    with pytest.raises(ConfigError, match="lr was 0.1 now 0.05"):
        train_supernet(_cfg(epochs=2, lr=0.05), train, small_val, out, resume=True)
    seen.clear()
    train_supernet(_cfg(epochs=2), train, small_val, out, resume=True, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [2]  # continued, did not restart
    log = json.loads((out / "train_log.json").read_text())
    assert [r["epoch"] for r in log["history"]] == [1, 2]
    assert log["history"][-1]["val_top1_max"] > 30  # it learned something in 16 steps
    net, source = load_supernet("tiny-mbv3", out / "supernet.safetensors")
    assert "supernet.safetensors" in source
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    with pytest.raises(CheckpointError, match="does not fit space 'fmnist-mbv3'"):
        load_supernet("fmnist-mbv3", out / "supernet.safetensors")
    with pytest.raises(ConfigError, match="Nothing to resume"):
        train_supernet(_cfg(), train, small_val, tmp_path / "empty", resume=True)


def test_kill_minus_nine_loses_at_most_the_epoch_in_flight(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hwnas.cli", "train-supernet", "--space", "tiny-mbv3", "--epochs", "30",
           "--batch-size", "128", "--train-limit", "512", "--threads", "1", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "last.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    st = torch.load(out / "last.pt", weights_only=True)
    done = int(st["epoch"])
    assert done >= 1
    r = subprocess.run(cmd[:-2] + ["--epochs", str(done + 1), "--out", str(out), "--resume"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(out.glob("*.tmp"))  # a temp file the kill may have left behind is cleaned up on resume
    log = json.loads((out / "train_log.json").read_text())
    assert [h["epoch"] for h in log["history"]] == list(range(1, done + 2))


def test_bn_recalibration_matches_on_supernet_and_static(fmnist):
    from conftest import randomize_
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.supernet.evaluate import recalibrate_bn
    from hwnas.supernet.extract import extract

    train = fmnist[0]
    net = randomize_(ElasticMBV3("tiny-mbv3"))
    a = net.space.sample(np.random.default_rng(3), [20])
    static = extract(net, a)
    recalibrate_bn(static, train, a, n_images=400, batch_size=100)
    recalibrate_bn(net, train, a, n_images=400, batch_size=100)
    again = extract(net, a)
    for (k, v1), v2 in zip(static.state_dict().items(), again.state_dict().values()):
        if "running" in k:
            assert torch.allclose(v1, v2, atol=1e-5), k
    # the statistics are the batch-size-weighted mean of per-batch biased statistics
    stem_bn = static.first_conv.bn
    from hwnas.supernet.evaluate import calibration_indices

    idx = calibration_indices(len(train), 400)
    g = torch.Generator().manual_seed(937162211)
    means, vars_ = [], []
    conv = static.first_conv.conv
    for b in range(4):
        x = preprocess(train.images[idx[b * 100:(b + 1) * 100]], a.r, train.mean, train.std, train=True, generator=g)
        with torch.no_grad():
            y = conv(x)
        means.append(y.mean((0, 2, 3)))
        vars_.append(y.var((0, 2, 3), unbiased=False))
    assert torch.allclose(stem_bn.running_mean, torch.stack(means).mean(0), atol=1e-5)
    assert torch.allclose(stem_bn.running_var, torch.stack(vars_).mean(0), atol=1e-5)
