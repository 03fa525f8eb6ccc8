"""Images in memory and the one preprocessing function every stage shares.

An :class:`ImageSet` holds uint8 images ``(N, C, H, W)`` with int64 labels and the per-channel
mean/std used to normalise them. :func:`preprocess` resizes to a subnet's resolution, augments
(training) and normalises; training, BN recalibration, evaluation and quantization calibration
all call it, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.datasets.base import Split


@dataclass(frozen=True)
class ImageSet(Split):
    """uint8 images ``(N, C, H, W)`` held in memory, with int64 labels; ``mean``/``std`` per channel
    for normalisation. Inputs are the images resized (bilinear, antialiased when shrinking) to the
    resolution and normalised; training adds a padded random crop and a horizontal flip."""

    images: np.ndarray
    labels: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray, name: str | None = None) -> ImageSet:
        return ImageSet(self.images[idx], self.labels[idx], self.mean, self.std, name or self.name)

    def batches(self, resolution: int, batch_size: int = 500, train: bool = False, seed: int | None = None,
                indices: np.ndarray | None = None,
                progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        gen = None
        if train:
            import torch

            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        for b in batches(len(idx), batch_size):
            sel = idx[b]
            x = preprocess(self.images[sel], resolution, self.mean, self.std, train=train, generator=gen)
            yield x.numpy(), self.labels[sel]
            if progress is not None:
                progress(int(b[-1]) + 1, len(idx))

    def preprocessing(self, resolution: int) -> dict[str, Any]:
        return {"resolution": resolution, "mean": list(self.mean), "std": list(self.std),
                "resize": "bilinear, antialiased when shrinking", "crop": None, "layout": "NCHW",
                "channels": int(self.images.shape[1])}


def preprocess(images, resolution: int, mean, std, train: bool = False, generator=None):
    """uint8 ``(N,C,H,W)`` (numpy or torch) → normalised float tensor at ``resolution``.

    Training adds a random 2-pixel-padded crop and a horizontal flip (per image).
    Resizing is bilinear with antialiasing, applied after augmentation.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
    if train:
        n, _, h, w = x.shape
        pad = 2
        xp = F.pad(x, (pad, pad, pad, pad))
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h)[None]).clamp_max(h + 2 * pad - 1)
        cols = (ox[:, None] + torch.arange(w)[None]).clamp_max(w + 2 * pad - 1)
        x = xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
               rows[:, None, :, None], cols[:, None, None, :]]
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < x.shape[-1])
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None, drop_last: bool = False):
    """Index batches over ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]
