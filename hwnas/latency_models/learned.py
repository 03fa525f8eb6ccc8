"""Learned predictors: ``e2e`` (trees on the arch) and ``hybrid`` (a table or kernel sum corrected
by a learned residual).

``e2e`` fits gradient-boosted trees on the one-hot arch encoding plus analytic features (MACs,
parameters, activation memory, blocks, SE blocks, depthwise work, depth per stage) and — for
latency, where the profile has a block table — the table sum, on the end-to-end samples alone.
It serves every target (latency, energy, memory).

``hybrid`` starts from a model of what the device does per layer (``base``: the ``lut`` sum or
the ``kernel`` sum) and learns what that misses — the ratio measured / base, in log space, as a
ridge regression on the same analytic features (or trees). The base carries the size and
resolution dependence; the residual carries what additive tables ignore (per-run overhead,
layout changes between layers, fusion across layer boundaries), which is smooth and low-
dimensional, so a hundred samples pin it down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.latency_models.base import LatencyModel
from hwnas.latency_models.features import arch_features, encoding
from hwnas.latency_models.gbdt import Gbdt


def _base_model(kind: str):
    from hwnas.latency_models.kernel import KernelModel
    from hwnas.latency_models.simple import LutModel

    if kind == "lut":
        return LutModel()
    if kind == "kernel":
        return KernelModel()
    raise ConfigError(f"hybrid base must be 'lut' or 'kernel', got '{kind}'.")


class E2EModel(LatencyModel):
    """Gradient-boosted trees on arch encoding + analytic features (+ the block-table sum)."""

    name = "e2e"
    description = "gradient-boosted trees on the arch encoding + analytic features (+ table sum)"
    targets = ("latency_ms", "energy_mj", "peak_memory_mb", "analytic_memory_mb")
    min_samples = 20

    def __init__(self, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 8,
                 min_child_samples: int = 5, use_table: bool = True) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.use_table = use_table

    def _features(self, archs) -> np.ndarray:
        x = np.hstack([arch_features(archs), encoding(archs)])
        if self.table_ is not None:
            x = np.hstack([self.table_.predict(archs)[:, None], x])
        return x

    def _fit(self, archs, y, profile) -> None:
        self.table_ = None
        if self.use_table and self.target_ == "latency_ms" and profile is not None and len(profile.ops_df(self.space_)):
            self.table_ = _base_model("lut").fit(archs, y, profile, space=self.space_)
        self.gbdt_ = Gbdt(self.n_estimators, self.learning_rate, self.num_leaves, self.min_child_samples)
        self.gbdt_.fit(self._features(archs), y)

    def _predict(self, archs):
        return self.gbdt_.predict(self._features(archs))

    def _state(self) -> dict[str, Any]:
        return {"gbdt": self.gbdt_.to_dict(), "table": None if self.table_ is None else self.table_.to_json()}

    def _set_state(self, state: dict[str, Any]) -> None:
        from hwnas.latency_models.base import model_from_json

        self.gbdt_ = Gbdt.from_dict(state["gbdt"])
        self.table_ = None if state["table"] is None else model_from_json(state["table"], "hybrid base")


class HybridModel(LatencyModel):
    """``base(arch) × exp(residual(arch))``: a per-layer model corrected by a learned residual."""

    name = "hybrid"
    description = "table (or kernel) sum x learned residual on analytic features"
    targets = ("latency_ms",)
    min_samples = 20
    needs_profile = True

    def __init__(self, base: str = "lut", residual: str = "ridge", alpha: float = 1.0) -> None:
        self.base = base
        self.residual = residual
        self.alpha = alpha

    def _features(self, archs, base_pred: np.ndarray) -> np.ndarray:
        f = arch_features(archs)
        return np.hstack([np.log(base_pred)[:, None], f, f[:, 1:2] / base_pred[:, None]])

    def _fit(self, archs, y, profile) -> None:
        if self.residual not in ("ridge", "gbdt"):
            raise ConfigError(f"hybrid residual must be 'ridge' or 'gbdt', got '{self.residual}'.")
        self.base_ = _base_model(self.base).fit(archs, y, profile, space=self.space_)
        b = self.base_.predict(archs)
        x, t = self._features(archs, b), np.log(y / b)
        if self.residual == "ridge":
            self.mu_, self.sd_ = x.mean(0), x.std(0) + 1e-12
            z = (x - self.mu_) / self.sd_
            a = z.T @ z + self.alpha * np.eye(z.shape[1])
            self.intercept_ = float(t.mean())
            self.coef_ = np.linalg.solve(a, z.T @ (t - self.intercept_))
        else:
            self.gbdt_ = Gbdt(300, 0.05, 4, 5, log_target=False).fit(x, t)

    def _predict(self, archs):
        b = self.base_.predict(archs)
        x = self._features(archs, b)
        if self.residual == "ridge":
            r = self.intercept_ + ((x - self.mu_) / self.sd_) @ self.coef_
        else:
            r = self.gbdt_.predict(x)
        return b * np.exp(r)

    def _state(self) -> dict[str, Any]:
        s: dict[str, Any] = {"base": self.base_.to_json()}
        if self.residual == "ridge":
            s.update(mu=self.mu_.tolist(), sd=self.sd_.tolist(), intercept=self.intercept_, coef=self.coef_.tolist())
        else:
            s["gbdt"] = self.gbdt_.to_dict()
        return s

    def _set_state(self, state: dict[str, Any]) -> None:
        from hwnas.latency_models.base import model_from_json

        self.base_ = model_from_json(state["base"], "hybrid base")
        if self.residual == "ridge":
            self.mu_, self.sd_ = np.asarray(state["mu"]), np.asarray(state["sd"])
            self.intercept_, self.coef_ = float(state["intercept"]), np.asarray(state["coef"])
        else:
            self.gbdt_ = Gbdt.from_dict(state["gbdt"])
