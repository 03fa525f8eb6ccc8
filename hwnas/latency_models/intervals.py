"""Prediction intervals for every latency model: split-conformal on relative errors.

A model's out-of-sample relative errors — out-of-fold predictions from cross-validation, or
leave-one-out for the few-shot transfer — are kept as sorted absolute log ratios
``|log(predicted / measured)|``. For a nominal coverage ``c`` the interval is
``predicted × exp(±q)`` with ``q`` the ``ceil((n + 1) c)``-th smallest of the ``n`` errors (the
finite-sample conformal quantile: on exchangeable rows it covers at least ``c``); with too few
errors for that rank the interval is unbounded, never falsely tight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def log_errors(y_true: Sequence[float], y_pred: Sequence[float]) -> list[float]:
    """Sorted |log(pred / true)| of out-of-sample predictions (the state an interval needs)."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ok = (y > 0) & (p > 0) & np.isfinite(y) & np.isfinite(p)
    return sorted(float(round(v, 6)) for v in np.abs(np.log(p[ok] / y[ok])))


def conformal_quantile(errors: Sequence[float], coverage: float) -> float:
    """The finite-sample conformal quantile of ``errors`` for ``coverage`` (inf when too few)."""
    if not 0 < coverage < 1:
        from hwnas.errors import ConfigError

        raise ConfigError(f"coverage must be between 0 and 1, got {coverage}.")
    n = len(errors)
    k = math.ceil((n + 1) * coverage)
    return math.inf if k > n or n == 0 else float(sorted(errors)[k - 1])


def bounds(pred: np.ndarray, errors: Sequence[float], coverage: float) -> tuple[np.ndarray, np.ndarray]:
    q = conformal_quantile(errors, coverage)
    return pred * math.exp(-q) if math.isfinite(q) else np.zeros_like(pred), pred * math.exp(q)


def coverage_of(y_true, lo, hi) -> float:
    y = np.asarray(y_true, dtype=float)
    return float(np.mean((y >= np.asarray(lo)) & (y <= np.asarray(hi))))
