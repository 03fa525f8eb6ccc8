"""Objectives and constraints: named batch functions over ArchConfigs.

The search knows nothing of profiles, devices or super-networks: an objective is a name, a
function ``archs -> values`` and a direction; a constraint is a name, a function and an upper
bound. Predictors from anywhere plug in through :func:`from_predictor` (anything with
``predict(archs) -> array``), analytic figures through :func:`macs` and :func:`params`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hwnas.errors import ConfigError
from hwnas.types import ArchConfig

BatchFn = Callable[[Sequence[ArchConfig]], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """``name`` carries the unit (``latency_ms``, ``accuracy_top1``); ``direction`` is ``min`` or ``max``."""

    name: str
    fn: BatchFn
    direction: str = "min"

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ConfigError(f"An objective's direction is 'min' or 'max', got {self.direction!r}.")

    def __call__(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        return np.asarray(self.fn(archs), dtype=float).reshape(len(archs))

    def minimised(self, values: np.ndarray) -> np.ndarray:
        """Values in the minimisation form pymoo uses."""
        return -values if self.direction == "max" else values


@dataclass(frozen=True)
class Constraint:
    """``fn(archs) <= upper`` must hold; ``name`` is usually an objective's name (a budget on it)."""

    name: str
    fn: BatchFn
    upper: float

    def violation(self, values: np.ndarray) -> np.ndarray:
        """pymoo's ``G <= 0`` form, relative to the bound so budgets of any unit weigh alike."""
        return (values - self.upper) / max(abs(self.upper), 1e-12)


def from_predictor(name: str, predictor, direction: str = "min") -> Objective:
    """An objective from a fitted predictor (``predict(archs) -> array``)."""
    return Objective(name, lambda archs: np.asarray(predictor.predict(list(archs)), dtype=float), direction)


def macs(space) -> Objective:
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    return Objective("macs_m", lambda archs: np.array([sp.macs(a) / 1e6 for a in archs]), "min")


def params(space) -> Objective:
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    return Objective("params_m", lambda archs: np.array([sp.params(a) / 1e6 for a in archs]), "min")


def budget(objective: Objective, upper: float) -> Constraint:
    """A budget on a minimised objective, e.g. ``budget(latency, 2.0)``."""
    if objective.direction != "min":
        raise ConfigError(f"A budget needs a minimised objective; '{objective.name}' is maximised.")
    return Constraint(objective.name, objective.fn, float(upper))


def upper_bound(predictor, confidence: float) -> BatchFn:
    """The one-sided ``confidence`` upper bound of a predictor with intervals (``predict_interval``):
    a budget judged on it is met with that confidence, as far as the intervals hold."""
    if not 0.5 < confidence < 1:
        raise ConfigError(f"--confidence must be between 0.5 and 1, got {confidence}.")
    coverage = 2 * confidence - 1  # a two-sided interval of this coverage has the wanted one-sided upper bound

    def fn(archs):
        return np.asarray(predictor.predict_interval(list(archs), coverage)[2], dtype=float)

    return fn
