"""The ``LatencyModel`` contract (scikit-learn conventions) and its JSON file format.

* ``__init__`` stores hyper-parameters only (``get_params``/``set_params`` see them);
* ``fit(archs, y, profile=None) -> self`` learns from end-to-end samples of one space (``y``
  in the profile's normalised scale, e.g. ``latency_ms``); models built from the block table
  or from recorded kernel graphs read them from ``profile``;
* learned state lives in attributes ending in ``_``; before ``fit``, ``predict`` raises
  :class:`~hwnas.errors.NotFittedError`;
* ``predict(archs) -> np.ndarray`` of the target's unit (milliseconds for latency);
* ``to_json()`` / :func:`model_from_json`: plain JSON (boosters in LightGBM's own text format,
  embedded as a string) with a schema version checked on load — never pickle.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import ConfigError, NotFittedError, ProfileError
from hwnas.types import ArchConfig

FORMAT = "hwnas-latency-model"
MODEL_SCHEMA_VERSION = 1


class LatencyModel:
    """Base class: subclasses set ``name``, ``targets``, ``min_samples`` and implement
    ``_fit``, ``_predict``, ``_state`` and ``_set_state``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    targets: ClassVar[tuple[str, ...]] = ("latency_ms",)
    min_samples: ClassVar[int] = 1
    needs_profile: ClassVar[bool] = False

    # ------------------------------------------------------------------ sklearn-style params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> LatencyModel:
        for k, v in params.items():
            if k not in self._param_names():
                raise ConfigError(f"{type(self).__name__} has no hyper-parameter '{k}'; "
                                  f"it has {self._param_names()}.")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ------------------------------------------------------------------ fit / predict
    def fit(self, archs: Sequence[ArchConfig], y, profile=None, target: str = "latency_ms",
            space: str | None = None) -> LatencyModel:
        """Learn from ``archs`` and their measured ``y``; ``space`` names the space when ``archs``
        is empty (models built only from the block table)."""
        from hwnas.profiles.schema import TARGETS

        archs = list(archs)
        y = np.asarray(y, dtype=np.float64)
        target = TARGETS.get(target, target)
        if target not in self.targets:
            raise ConfigError(f"Model '{self.name}' cannot predict '{target}'; it predicts {', '.join(self.targets)}.")
        if len(archs) != len(y):
            raise ConfigError(f"fit got {len(archs)} archs but {len(y)} targets.")
        spaces = {a.space for a in archs} or ({space} if space else set())
        if len(spaces) > 1 or (space is not None and spaces != {space}):
            raise ConfigError(f"fit got archs of several spaces {sorted(spaces)}: fit one model per space.")
        if len(archs) < self.min_samples:
            sp = next(iter(spaces), "?")
            raise ProfileError(f"Model '{self.name}' needs at least {self.min_samples} end-to-end samples of space "
                               f"'{sp}' with '{target}', got {len(archs)}. Measure more with: hwnas profile "
                               f"--space {sp} --samples {max(100, self.min_samples)} --out PROFILE")
        if not spaces:
            raise ConfigError("fit got no archs: pass space=... to fit from the block table alone.")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ConfigError(f"fit targets must be finite and positive ({int((~np.isfinite(y)).sum())} not finite).")
        if self.needs_profile and profile is None:
            raise ConfigError(f"Model '{self.name}' is built from a device profile: pass profile=...")
        self.space_ = next(iter(spaces))
        self.target_ = target
        self._fit(archs, y, profile)
        self.n_samples_ = len(archs)
        self.device_id_ = getattr(profile, "device_id", None)
        return self

    def predict(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        self._check_fitted()
        archs = list(archs)
        bad = sorted({a.space for a in archs if a.space != self.space_})
        if bad:
            raise ConfigError(f"Model '{self.name}' was fitted on space '{self.space_}', not {bad}. Fit one for that "
                              f"space: hwnas fit PROFILE --space {bad[0]} --model {self.name}")
        if not archs:
            return np.zeros(0)
        return np.asarray(self._predict(archs), dtype=np.float64)

    def predict_interval(self, archs: Sequence[ArchConfig], coverage: float = 0.9
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, low, high)``: a conformal interval from the model's out-of-sample errors
        (``interval_``, set when it was scored — see :mod:`hwnas.latency_models.intervals`)."""
        from hwnas.latency_models.intervals import bounds

        pred = self.predict(archs)
        errors = getattr(self, "interval_", None)
        if errors is None:
            raise NotFittedError(f"Model '{self.name}' has no out-of-sample errors to build intervals from: fit it "
                                 "with fit_and_score (as 'hwnas fit' does) or calibrate it on the device.")
        lo, hi = bounds(pred, errors, coverage)
        return pred, lo, hi

    def _check_fitted(self) -> None:
        if not hasattr(self, "space_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(...) or load a fitted one.")

    def _fit(self, archs: list[ArchConfig], y: np.ndarray, profile) -> None:
        raise NotImplementedError

    def _predict(self, archs: list[ArchConfig]) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict[str, Any]:
        from hwnas.types import utc_now

        self._check_fitted()
        return {"format": FORMAT, "schema_version": MODEL_SCHEMA_VERSION, "name": self.name,
                "space": self.space_, "target": self.target_, "params": self.get_params(),
                "n_samples": self.n_samples_, "device_id": self.device_id_,
                "fitted": utc_now(),
                "metrics": getattr(self, "metrics_", None), "interval": getattr(self, "interval_", None),
                "state": self._state()}


def model_from_json(data: dict[str, Any], source: str = "model file") -> LatencyModel:
    """Rebuild a fitted model from :meth:`LatencyModel.to_json` output (schema version checked)."""
    from hwnas.latency_models import LATENCY_MODELS

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{source} is not a hwnas latency model (format {data.get('format') if isinstance(data, dict) else None!r}).")
    v = data.get("schema_version")
    if not isinstance(v, int) or v > MODEL_SCHEMA_VERSION:
        raise ConfigError(f"{source} has schema version {v}, newer than this hwnas reads ({MODEL_SCHEMA_VERSION}): "
                          "upgrade hwnas.")
    if v < MODEL_SCHEMA_VERSION:
        raise ConfigError(f"{source} has the old schema version {v} (this hwnas reads {MODEL_SCHEMA_VERSION}): "
                          f"refit it with: hwnas fit PROFILE --model {data.get('name')}")
    model = LATENCY_MODELS.create(data["name"], **data.get("params", {}))
    model.space_, model.target_ = data["space"], data["target"]
    model.n_samples_, model.device_id_ = data.get("n_samples", 0), data.get("device_id")
    if data.get("metrics") is not None:
        model.metrics_ = data["metrics"]
    if data.get("interval") is not None:
        model.interval_ = [float(v) for v in data["interval"]]
    model._set_state(data["state"])
    return model
