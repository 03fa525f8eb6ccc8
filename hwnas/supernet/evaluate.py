"""Subnet evaluation: BN recalibration, then top-1 accuracy.

A subnet's BatchNorm running statistics in a super-network were accumulated over
many different subnets, so they are wrong for any one of them. As Once-for-All
does, :func:`recalibrate_bn` runs ~2,000 training images (train-mode
augmentation, fixed subset) through the subnet, normalises each batch with its
own mean and *biased* variance, and writes the batch-size-weighted average of
those per-batch statistics into the running stats (no momentum, no n/(n-1)).
It works on the elastic super-network (the first ``C`` entries of each BN are
written) and on a static subnet alike.

Accuracy is counted against the labels that come with each batch, so a split that leaves
undecodable files out (an image folder with ``on_bad_image="skip"``) is scored on what it
actually fed the network. Evaluation batches shrink with the resolution (about 2.6 M input
pixels per batch: 500 images up to 71 px, 51 at 224 px) to bound the activations' memory.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.datasets.base import Split
from hwnas.types import ArchConfig

CALIB_IMAGES = 2000
CALIB_BATCH = 200
CALIB_SEED = 937162211
EVAL_PIXELS = 2_560_000  # input pixels per evaluation batch (500 images of 71x71)


def eval_batch_size(resolution: int) -> int:
    """Images per evaluation batch at ``resolution`` px: 500 for small inputs, fewer for large."""
    return max(1, min(500, EVAL_PIXELS // (resolution * resolution)))


@contextmanager
def _batch_stat_bns(model: nn.Module, sums: dict):
    """Patch every BatchNorm (plain, or the super-network's sliced DynamicBN) to normalise
    with batch statistics and record them against the underlying ``BatchNorm2d``."""
    from hwnas.supernet.elastic import DynamicBN

    originals = {}
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, DynamicBN)):
            bn = m.bn if isinstance(m, DynamicBN) else m
            originals[m] = m.forward

            def fwd(x, bn=bn):
                c = x.shape[1]
                mean = x.mean((0, 2, 3))
                var = x.var((0, 2, 3), unbiased=False)
                acc = sums.setdefault(bn, [torch.zeros(c), torch.zeros(c), 0, c])
                acc[0] += mean.detach() * x.shape[0]
                acc[1] += var.detach() * x.shape[0]
                acc[2] += x.shape[0]
                return F.batch_norm(x, mean, var, bn.weight[:c], bn.bias[:c], False, 0.0, bn.eps)

            m.forward = fwd
    try:
        yield
    finally:
        for m in originals:
            del m.forward  # drop the instance attribute; the class method is back


def calibration_indices(n_available: int, n: int = CALIB_IMAGES, seed: int = CALIB_SEED) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n_available)[: min(n, n_available)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data: Split, arch: ArchConfig, n_images: int = CALIB_IMAGES,
                   batch_size: int = CALIB_BATCH, seed: int = CALIB_SEED,
                   progress: Callable[[int, int], None] | None = None) -> None:
    """Reset the running statistics of ``model`` (super-network or static subnet) for ``arch``
    from ``n_images`` training images of ``data`` (a fixed subset drawn by ``seed``, through the
    dataset's training augmentation, as OFA's ``set_running_statistics`` does)."""
    from hwnas.supernet.elastic import ElasticMBV3

    idx = calibration_indices(len(data), n_images, seed)
    sums: dict = {}
    was_training = model.training
    model.eval()
    with _batch_stat_bns(model, sums):
        for x, _ in data.batches(arch.r, batch_size, train=True, seed=seed, indices=idx, progress=progress):
            x = torch.from_numpy(x)
            if isinstance(model, ElasticMBV3):
                model(x, arch)
            else:
                model(x)
    for m, (s_mean, s_var, n, c) in sums.items():
        m.running_mean[:c] = s_mean / n
        m.running_var[:c] = s_var / n
    model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, data: Split, arch: ArchConfig, batch_size: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, labels)`` over ``data`` in eval mode (labels as the split yielded them)."""
    from hwnas.supernet.elastic import ElasticMBV3

    model.eval()
    outs, labels = [], []
    for x, y in data.batches(arch.r, batch_size or eval_batch_size(arch.r), progress=progress):
        x = torch.from_numpy(x)
        outs.append((model(x, arch) if isinstance(model, ElasticMBV3) else model(x)).numpy())
        labels.append(y)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(outs), np.concatenate(labels)


def predict_logits(model: nn.Module, data: Split, arch: ArchConfig, batch_size: int | None = None) -> np.ndarray:
    """Logits over every image of ``data``, in order."""
    return predict(model, data, arch, batch_size)[0]


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(1) == labels).mean() * 100.0)


def evaluate_subnet(supernet, arch: ArchConfig, calib: Split, data: Split,
                    n_calib: int = CALIB_IMAGES) -> float:
    """Extract ``arch``, recalibrate its BN on ``calib`` and return top-1 (%) on ``data``.

    The super-network is not modified (the static copy is recalibrated).
    """
    from hwnas.supernet.extract import extract

    net = extract(supernet, arch)
    recalibrate_bn(net, calib, arch, n_calib)
    return top1(*predict(net, data, arch))  # the labels yielded: a folder may skip undecodable files


def evaluate_candidates(front, supernet, calib: Split, data: Split, n: int = 3, progress=None):
    """The front with its first ``n`` recommended candidates (the best, then the measured ones) evaluated
    on the super-network (BN recalibrated on ``calib``, top-1 on ``data``) as ``measured['accuracy_top1']``."""
    from dataclasses import replace

    order = ([front.best] if front.best is not None else []) + [
        i for i, c in enumerate(front.candidates) if c.measured is not None and i != front.best]
    cands = list(front.candidates)
    for i in order[:n]:
        a = evaluate_subnet(supernet, cands[i].arch, calib, data)
        cands[i] = replace(cands[i], measured={**(cands[i].measured or {}), "accuracy_top1": a})
        if progress is not None:
            pred = cands[i].objectives.get("accuracy_top1")
            progress(f"{cands[i].arch.to_str()}: {a:.2f} % on the super-network"
                     + (f" (predicted {pred:.2f} %)" if pred is not None else ""))
    return replace(front, candidates=tuple(cands))
