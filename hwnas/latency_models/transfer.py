"""``transfer``: a device predicted from other devices' models and a few measurements of its own.

The few-shot idea of HELP and MAPLE-Edge, made small enough to fit from ≤ 20 measurements: the
*source* models (each fitted on a profile of another device, or of this device on another day)
already know how latency grows with the architecture; what differs on the target is how much,
layer kind by layer kind. So the target's ``log latency`` is a regularised linear map of the
sources' ``log predictions`` and a few analytic features. Three forms, chosen by leave-one-out
error on the target's own measurements (``form="auto"``):

* ``scale`` — one factor times the best source (what re-anchoring a profile on a new host needs);
* ``affine`` — ``log y = a + b log p`` with the best source (a power law: small and large subnets
  move differently, e.g. under BF16);
* ``ridge`` — every source's log prediction plus log MACs and resolution, ridge-regularised with
  the strength also chosen by leave-one-out.

The source models are embedded in the fitted JSON, so predicting needs no source profile. The
leave-one-out errors become the model's conformal intervals (:mod:`~hwnas.latency_models.intervals`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ConfigError, ProfileError
from hwnas.latency_models.base import LatencyModel

FORMS = ("auto", "scale", "affine", "ridge")
ALPHAS = (0.01, 0.1, 1.0, 10.0)


def source_model(source: str | os.PathLike, space: str, target: str = "latency_ms"):
    """The best stored model of a source profile (``PATH``, or ``PATH::model``); fitted in memory when the
    profile stores none for ``space``."""
    from hwnas.errors import NoFittedModelError
    from hwnas.latency_models import fit_latency_model, load_latency_model
    from hwnas.profiles import DeviceProfile

    path, _, name = str(source).partition("::")
    prof = DeviceProfile.open(path)
    try:
        return load_latency_model(prof, name or None, target=target, space=space)
    except NoFittedModelError:
        for candidate in ([name] if name else ["hybrid", "e2e"]):
            try:
                return fit_latency_model(prof, candidate, target=target, space=space)
            except ProfileError:
                continue
    raise ProfileError(f"Source profile '{path}' cannot predict {target} for space '{space}': profile it with "
                       f"'hwnas profile --space {space} --out {path}'.")


class TransferModel(LatencyModel):
    """``log y`` = a regularised linear map of source models' log predictions (see the module doc)."""

    name = "transfer"
    description = "few-shot: other devices' predictions mapped onto this one from a few measurements"
    targets = ("latency_ms", "peak_memory_mb", "energy_mj")
    min_samples = 3

    def __init__(self, sources: Sequence[str] = (), form: str = "auto", simplest_within_se: bool = False) -> None:
        self.sources = sources
        self.form = form
        # with ``form="auto"``: one factor unless a richer form beats it by more than one standard error
        # of its leave-one-out errors (calibration: re-anchoring one profile, where 20 points must not buy
        # a power law by luck — measured on two hosts, the auto choice lost 2.5-3 points within ±10 %)
        self.simplest_within_se = simplest_within_se

    # ------------------------------------------------------------------ features
    def _log_preds(self, archs) -> np.ndarray:
        return np.log(np.stack([np.maximum(m.predict(archs), 1e-9) for m in self.source_models_], axis=1))

    def _design(self, archs, form: str, best: int) -> np.ndarray:
        from hwnas.latency_models.features import arch_features

        lp = self._log_preds(archs)
        if form in ("scale", "affine"):
            return lp[:, [best]]
        f = arch_features(archs)
        return np.hstack([lp, np.log(f[:, [1]]), f[:, [0]] / 224.0])

    @staticmethod
    def _solve(x: np.ndarray, t: np.ndarray, form: str, alpha: float) -> np.ndarray:
        """Coefficients (intercept first) of ``t ≈ [1, x] @ coef``."""
        if form == "scale":
            return np.array([float(np.mean(t - x[:, 0])), 1.0])
        mu, sd = x.mean(0), x.std(0) + 1e-9
        z = (x - mu) / sd
        reg = alpha if form == "ridge" else 1e-6
        w = np.linalg.solve(z.T @ z + reg * np.eye(z.shape[1]), z.T @ (t - t.mean()))
        coef = w / sd
        return np.concatenate([[t.mean() - mu @ coef], coef])

    def _loo(self, x: np.ndarray, t: np.ndarray, form: str, alpha: float) -> np.ndarray:
        pred = np.empty(len(t))
        for i in range(len(t)):
            keep = np.arange(len(t)) != i
            c = self._solve(x[keep], t[keep], form, alpha)
            pred[i] = c[0] + x[i] @ c[1:]
        return pred

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, archs, y, profile) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"transfer form must be one of {', '.join(FORMS)}, got '{self.form}'.")
        if not getattr(self, "source_models_", None):
            if not self.sources:
                raise ConfigError("A transfer model needs source profiles: TransferModel(sources=[PATH, ...]).")
            self.source_models_ = [source_model(s, self.space_, self.target_) for s in self.sources]
        t = np.log(y)
        lp = self._log_preds(archs)
        best = int(np.argmin([np.mean(np.abs(self._loo(lp[:, [j]], t, "scale", 0.0) - t)) for j in range(lp.shape[1])]))
        forms = ["scale", "affine", "ridge"] if self.form == "auto" else [self.form]
        if len(t) < 5:  # too few points to tell forms apart: one factor
            forms = ["scale"] if self.form == "auto" else forms
        trials = []
        for form in forms:
            x = self._design(archs, form, best)
            for alpha in (ALPHAS if form == "ridge" else (0.0,)):
                oof = self._loo(x, t, form, alpha)
                trials.append((float(np.mean(np.abs(oof - t))), form, alpha, oof))
        err, form, alpha, oof = min(trials, key=lambda r: r[0])
        if self.simplest_within_se and trials[0][1] == "scale" and form != "scale":
            se = float(np.std(np.abs(trials[0][3] - t), ddof=1) / np.sqrt(len(t)))
            if trials[0][0] - err <= se:
                err, form, alpha, oof = trials[0]
        self.form_, self.alpha_, self.best_source_ = form, float(alpha), best
        self.coef_ = self._solve(self._design(archs, form, best), t, form, alpha)
        from hwnas.latency_models.intervals import log_errors
        from hwnas.latency_models.metrics import score

        loo = np.exp(oof)
        self.interval_ = log_errors(y, loo)
        self.metrics_ = {**score(y, loo), "protocol": f"leave-one-out over {len(y)} measurements"}
        self.choice_ = [{"form": f, "alpha": a, "loo_mean_abs_log_error": e} for e, f, a, _ in trials]

    def _predict(self, archs):
        x = self._design(archs, self.form_, self.best_source_)
        return np.exp(self.coef_[0] + x @ self.coef_[1:])

    def predict_interval(self, archs, coverage: float = 0.9):
        """Intervals that hold for subnets the calibration never saw: the leave-one-out error of the
        map and the source model's own out-of-sample error (its calibration subnets were among the
        source's training rows, so the map's error alone would be too tight), added in quadrature."""
        import math

        from hwnas.latency_models.intervals import conformal_quantile

        pred = self.predict(archs)
        q = conformal_quantile(self.interval_, coverage)
        src = getattr(self.source_models_[self.best_source_], "interval_", None)
        if src:
            q = math.sqrt(q**2 + conformal_quantile(src, coverage) ** 2)
        return pred, pred * math.exp(-q) if math.isfinite(q) else 0 * pred, pred * math.exp(q)

    @property
    def scale(self) -> float | None:
        """The factor of a ``scale`` transfer (target ms per source ms), else None."""
        return float(np.exp(self.coef_[0])) if getattr(self, "form_", None) == "scale" else None

    def describe(self) -> str:
        if self.form_ == "scale":
            return f"scale {self.scale:.3f}"
        if self.form_ == "affine":
            return f"power law: {np.exp(self.coef_[0]):.3f} x p^{self.coef_[1]:.3f}"
        return f"ridge over {len(self.source_models_)} source(s) + MACs and resolution (alpha {self.alpha_:g})"

    def _state(self) -> dict[str, Any]:
        return {"form": self.form_, "alpha": self.alpha_, "best_source": self.best_source_,
                "coef": self.coef_.tolist(), "choice": self.choice_,
                "sources": [m.to_json() for m in self.source_models_]}

    def _set_state(self, state: dict[str, Any]) -> None:
        from hwnas.latency_models.base import model_from_json

        self.form_, self.alpha_, self.best_source_ = state["form"], float(state["alpha"]), int(state["best_source"])
        self.coef_ = np.asarray(state["coef"], dtype=float)
        self.choice_ = state.get("choice", [])
        self.source_models_ = [model_from_json(d, "transfer source") for d in state["sources"]]


def from_models(models: Sequence[LatencyModel], form: str = "auto", simplest_within_se: bool = False) -> TransferModel:
    """An unfitted transfer model over already-loaded source models (e.g. the profile being calibrated)."""
    t = TransferModel(sources=(), form=form, simplest_within_se=simplest_within_se)
    t.source_models_ = list(models)
    spaces = {m.space_ for m in models}
    if len(spaces) != 1:
        raise ConfigError(f"Transfer sources predict different spaces {sorted(spaces)}.")
    return t


__all__ = ["TransferModel", "from_models", "source_model"]
