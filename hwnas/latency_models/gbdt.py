"""A small gradient-boosted-trees regressor (LightGBM) with text (not pickle) serialisation.

Fitted on ``log(y)`` so relative errors count equally across the latency range; leaves hold
linear models (``linear_tree``) so predictions vary smoothly with size features instead of in
steps, which matters with a hundred training samples. ``to_string``/``from_string`` use
LightGBM's own model text format. Deterministic (fixed seed, one thread).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Gbdt:
    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 8,
                 min_child_samples: int = 5, linear_tree: bool = True, log_target: bool = True, seed: int = 0) -> None:
        self.params = dict(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                           min_child_samples=min_child_samples, linear_tree=linear_tree, seed=seed)
        self.log_target = log_target
        self.booster = None
        self.constant: float | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> Gbdt:
        import lightgbm as lgb

        t = np.log(y) if self.log_target else np.asarray(y, dtype=np.float64)
        if len(t) < 2 * self.params["min_child_samples"] or np.ptp(t) == 0:
            self.constant = float(np.mean(t))  # too little variety to split: the mean is the best guess
            return self
        p = self.params
        params = {"objective": "regression", "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"],
                  "min_data_in_leaf": p["min_child_samples"], "linear_tree": p["linear_tree"], "linear_lambda": 1e-3,
                  "seed": p["seed"], "deterministic": True, "num_threads": 1, "verbosity": -1,
                  "feature_pre_filter": False, "min_data_in_bin": 1}
        ds = lgb.Dataset(np.asarray(x, dtype=np.float64), t, params={"verbosity": -1, "min_data_in_bin": 1,
                                                                    "feature_pre_filter": False})
        self.booster = lgb.train(params, ds, num_boost_round=p["n_estimators"])
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            t = np.full(len(x), self.constant)
        else:
            t = self.booster.predict(np.asarray(x, dtype=np.float64), num_threads=1)
        return np.exp(t) if self.log_target else t

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "log_target": self.log_target, "constant": self.constant,
                "booster": None if self.booster is None else self.booster.model_to_string()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Gbdt:
        g = cls(**d["params"], log_target=d["log_target"])
        g.constant = d["constant"]
        if d["booster"] is not None:
            import lightgbm as lgb

            g.booster = lgb.Booster(model_str=d["booster"])
        return g
