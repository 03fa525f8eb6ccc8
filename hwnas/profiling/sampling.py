"""What a profile measures: the block/op list of a space and its end-to-end sample archs.

* :func:`op_layers` — every distinct layer the space can produce at the given resolutions
  (``SearchSpace.all_layers``), deduplicated by the Once-for-All lookup-table key (shapes,
  kernel, stride, expand width, SE, activation, shortcut).
* :func:`stratified_archs` — N subnets spread over resolution and size. Uniform sampling piles
  up in the middle of the size range; here sample ``i`` gets a resolution from a cycle through a
  seeded permutation of the space's resolutions and a size level ``u_i`` from the golden-ratio
  sequence, and every gene is drawn from a distribution centred on ``u_i`` of its choices. Any
  prefix of the sequence is itself well spread, so raising N on resume only adds archs.
* :func:`reference_archs` — the fixed reference set: the same archs for every device (fixed
  seed), so a new device can later be characterised from a few measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.supernet.spaces import LayerSpec, get_space
from hwnas.types import ArchConfig

GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
REFERENCE_SEED = 20240607
"""Seed of the fixed reference set: never change it (it would change every profile's reference archs)."""
HOLDOUT_SEED_OFFSET = 7919
"""Held-out evaluation subnets use ``seed + HOLDOUT_SEED_OFFSET``: another stream than the fitting samples."""


def default_op_resolutions(space: str) -> list[int]:
    """Resolutions at which the block table is measured.

    Spaces with many resolutions are profiled on a coarser grid (every 16 px for OFA's 128..224
    step 4) and the table interpolates between grid points by output pixels; small spaces are
    profiled at every resolution.
    """
    res = list(get_space(space).resolutions)
    if len(res) <= 8:
        return res
    lo, hi = res[0], res[-1]
    grid = [r for r in res if (r - lo) % 16 == 0]
    return grid if grid[-1] == hi else grid + [hi]


def op_layers(space: str, resolutions: Sequence[int]) -> list[LayerSpec]:
    """Distinct layers (by ``LayerSpec.key()``) of every subnet of ``space`` at ``resolutions``
    (stem, every MBConv configuration at every stage position, head ops)."""
    return get_space(space).all_layers(list(resolutions))


def _biased_index(rng: np.random.Generator, n: int, u: float, sigma: float = 0.35) -> int:
    if n == 1:
        return 0
    pos = np.arange(n) / (n - 1)
    w = np.exp(-0.5 * ((pos - u) / sigma) ** 2)
    return int(rng.choice(n, p=w / w.sum()))


def stratified_arch(space: str, i: int, seed: int) -> ArchConfig:
    """Sample ``i`` of the stratified sequence of ``space`` for ``seed`` (see the module doc)."""
    sp = get_space(space)
    perm = np.random.default_rng([seed, 0]).permutation(len(sp.resolutions))
    r_idx = int(perm[i % len(perm)])
    u = float((0.5 + i * GOLDEN) % 1.0)
    rng = np.random.default_rng([seed, 1, i])
    genome = [_biased_index(rng, len(c), u) for c in sp.gene_choices]
    genome[-1] = r_idx
    return sp.from_genome(genome)


def stratified_archs(space: str, n: int, seed: int = 0, exclude: Sequence[ArchConfig] = ()) -> list[ArchConfig]:
    """The first ``n`` distinct archs of the stratified sequence (skipping duplicates and ``exclude``)."""
    seen = {a.key() for a in exclude}
    out: list[ArchConfig] = []
    i = 0
    while len(out) < n and i < 50 * n + 100:
        a = stratified_arch(space, i, seed)
        i += 1
        if a.key() not in seen:
            seen.add(a.key())
            out.append(a)
    return out


def reference_archs(space: str, n: int = 20) -> list[ArchConfig]:
    """The fixed reference set of ``space``: same archs for every device and every hwnas run."""
    return stratified_archs(space, n, REFERENCE_SEED)


def holdout_archs(space: str, n: int, seed: int = 0, exclude: Sequence[ArchConfig] = ()) -> list[ArchConfig]:
    """Held-out evaluation subnets: stratified like the samples, from another seed, never in ``exclude``."""
    return stratified_archs(space, n, seed + HOLDOUT_SEED_OFFSET, exclude)
