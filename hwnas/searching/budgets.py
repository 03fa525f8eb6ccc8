"""Budgets against what a space can reach on a device, checked before any search runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.errors import BudgetError


def reachable_range(space: str, predictor, resolutions: Sequence[int], n: int = 2000,
                    seed: int = 0) -> tuple[float, float]:
    """Predicted (min, max) over the smallest/largest subnets and ``n`` random ones."""
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    rng = np.random.default_rng(seed)
    archs = [sp.min_arch(min(resolutions)), sp.max_arch(max(resolutions))]
    archs += [sp.sample(rng, resolutions) for _ in range(n)]
    p = np.asarray(predictor.predict(archs), dtype=float)
    return float(p.min()), float(p.max())


def check_reachable(space: str, predictors: dict, budgets: dict[str, float], resolutions: Sequence[int]) -> None:
    """Refuse a budget below the smallest subnet's predicted figure, with the reachable range."""
    for n, b in budgets.items():
        lo, hi = reachable_range(space, predictors[n], resolutions)
        if b < lo:
            raise BudgetError(f"The smallest subnet of '{space}' is predicted at {lo:.4g} {n.split('_')[-1]} on this "
                              f"device; budgets from {lo:.4g} to {hi:.4g} are reachable (asked: {b:g}).")
