"""Latency (and energy / memory) predictors fitted on a device profile.

Registered models (``LATENCY_MODELS.list()``): ``flops``, ``lut``, ``kernel``, ``e2e``,
``hybrid``; all follow :class:`~hwnas.latency_models.base.LatencyModel`'s scikit-learn-style
contract. They are fitted on, and predict, the profile's *normalised* figures (for latency:
reference ratio × the profile's canonical reference latency, in ms — see
:mod:`hwnas.profiles.schema`), so rows measured in later sessions stay comparable.

    model = fit_latency_model(prof, "hybrid", target="latency_ms")  # stores nothing
    prof.save_model(model)
    model = load_latency_model(prof)          # best stored model for the target
    model.predict(archs)                      # ms

This package never imports a device backend: it reads profiles only.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any

from hwnas.errors import ConfigError, NoFittedModelError, ProfileError
from hwnas.registry import Registry

LATENCY_MODELS: Registry[Any] = Registry("latency model")

_MODELS = {
    "flops": ("hwnas.latency_models.simple", "FlopsModel", "latency proportional to MACs (baseline)"),
    "lut": ("hwnas.latency_models.simple", "LutModel", "additive block table, as Once-for-All (baseline)"),
    "kernel": ("hwnas.latency_models.kernel", "KernelModel", "sum of the runtime's fused kernels (nn-Meter style)"),
    "e2e": ("hwnas.latency_models.learned", "E2EModel", "gradient-boosted trees on the arch + analytic features"),
    "hybrid": ("hwnas.latency_models.learned", "HybridModel", "table sum x learned residual"),
    "transfer": ("hwnas.latency_models.transfer", "TransferModel",
                 "few-shot: other devices' predictions mapped onto this one from a few measurements"),
}
PREFERENCE = ("hybrid", "kernel", "e2e", "lut", "flops")
"""Default choice when a profile stores several models and none has recorded metrics."""
EXCLUDED_KINDS = ("repeat", "holdout")
"""End-to-end rows never used to fit: re-measurements and held-out evaluation rows."""


def _factory(module: str, cls: str):
    def make(**params):
        klass = getattr(importlib.import_module(module), cls)
        bad = sorted(set(params) - set(klass._param_names()))
        if bad:
            raise ConfigError(f"Model '{klass.name}' has no hyper-parameter {', '.join(bad)}; "
                              f"it has {klass._param_names() or 'none'}.")
        return klass(**params)

    return make


for _name, (_mod, _cls, _desc) in _MODELS.items():
    LATENCY_MODELS.register(_name, _factory(_mod, _cls), _desc, module=_mod, cls=_cls)


def training_data(prof, space: str | None = None, target: str = "latency_ms",
                  kinds_excluded: Sequence[str] = EXCLUDED_KINDS):
    """(space, archs, y, rows) of the profile's end-to-end rows usable for fitting ``target``."""
    import numpy as np

    from hwnas.types import ArchConfig

    space = resolve_space(prof, space)
    col = prof.check_target(target, space)
    df = prof.models_df(space)
    df = df[(df["repeat"] == 0) & ~df["kind"].isin(list(kinds_excluded)) & df[col].notna()].reset_index(drop=True)
    archs = [ArchConfig.parse(a) for a in df["arch"]]
    return space, archs, df[col].to_numpy(dtype=np.float64), df


def resolve_space(prof, space: str | None) -> str:
    if space is None:
        if len(prof.spaces) != 1:
            raise ProfileError(f"Profile '{prof.root}' holds spaces {prof.spaces}: name one with --space.")
        return prof.spaces[0]
    prof.check_space(space)
    return space


def fit_latency_model(prof, name: str, target: str = "latency_ms", space: str | None = None, **params: Any):
    """Fit model ``name`` on the profile's end-to-end rows (not ``repeat``/``holdout`` ones); stores nothing."""
    space, archs, y, _ = training_data(prof, space, target)
    model = LATENCY_MODELS.create(name, **params)
    return model.fit(archs, y, prof, target=canonical_target(target), space=space)


def canonical_target(target: str) -> str:
    """The profile column a target name stands for (``memory_mb`` → ``peak_memory_mb``)."""
    from hwnas.profiles.schema import TARGETS

    if target not in TARGETS:
        raise ProfileError(f"Unknown target '{target}'; choose one of {', '.join(TARGETS)}.")
    return TARGETS[target]


def load_latency_model(prof, name: str | None = None, target: str = "latency_ms", space: str | None = None):
    """A fitted model stored in the profile; ``name=None``: the best stored one for the target
    (highest share within ±10 % in its recorded metrics, else by :data:`PREFERENCE`)."""
    from hwnas.latency_models.base import model_from_json

    space = resolve_space(prof, space)
    target = canonical_target(target)
    stored = {m["name"]: m for m in prof.list_models(space, target)}
    if not stored:
        raise NoFittedModelError(f"Profile '{prof.root}' stores no fitted '{target}' model for space '{space}': run "
                           f"'hwnas fit {prof.root} --model hybrid{'' if target == 'latency_ms' else ' --target ' + target}'.")
    if name is None:
        docs = {n: json.loads(open(m["path"]).read()) for n, m in stored.items()}
        scored = {n: d["metrics"]["within_10"] for n, d in docs.items() if (d.get("metrics") or {}).get("within_10") is not None}
        if scored:
            name = max(scored, key=lambda n: (scored[n], -PREFERENCE.index(n) if n in PREFERENCE else -99))
        else:
            name = next((n for n in PREFERENCE if n in stored), sorted(stored)[0])
        return model_from_json(docs[name], stored[name]["path"])
    if name not in stored:
        LATENCY_MODELS.entry(name)  # unknown name: "did you mean"
        raise ProfileError(f"Profile '{prof.root}' has no fitted '{name}' model for {space}/{target} (it has "
                           f"{sorted(stored)}): run 'hwnas fit {prof.root} --model {name}'.")
    path = stored[name]["path"]
    try:
        data = json.loads(open(path).read())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError(f"Cannot read fitted model '{path}' ({exc}): refit it with 'hwnas fit'.") from None
    return model_from_json(data, path)


def fit_and_score(prof, name: str, target: str = "latency_ms", space: str | None = None, folds: int = 5,
                  **params: Any):
    """Fit ``name`` on the profile's fitting rows, with ``metrics_`` and the conformal errors of its
    intervals (``interval_``) from ``folds``-fold cross-validation on those rows (none when there
    are too few); stores nothing."""
    from hwnas.latency_models.intervals import log_errors
    from hwnas.latency_models.metrics import cross_val_predict, score

    model = fit_latency_model(prof, name, target=target, space=space, **params)
    space, archs, y, _ = training_data(prof, model.space_, target)
    k = min(folds, len(archs))
    model.metrics_ = None
    if k >= 2:
        oof = cross_val_predict(prof, name, archs, y, target, space, k, **params)
        model.metrics_ = {**score(y, oof), "protocol": f"{k}-fold cross-validation on the fitting rows"}
        model.interval_ = log_errors(y, oof)
    return model


def predictor_for(prof, space: str, target: str = "latency_ms", model: str | None = None, on_fit=None):
    """The profile's stored predictor for ``target``; when none is stored, one is fitted (``model``,
    else hybrid, else e2e), stored in the profile and reported through ``on_fit(message)``."""
    try:
        return load_latency_model(prof, model, target=target, space=space)
    except NoFittedModelError:
        pass
    last: ProfileError | None = None
    for name in ([model] if model else ["hybrid", "e2e"]):
        try:
            m = fit_and_score(prof, name, target=target, space=space)
        except ProfileError as exc:
            last = exc
            continue
        if not prof.shipped:
            prof.save_model(m)
        if on_fit is not None:
            on_fit(f"fitted a '{name}' {target} model on the profile (none was stored)")
        return m
    raise last if last is not None else ProfileError(f"No model can be fitted for {space}/{target}.")


def predict_all(prof, archs, model: str | None = None) -> list[dict[str, Any]]:
    """Per arch, the prediction of every target the profile stores a model for (latency with
    ``model`` when given, else each target's best stored model), and which model gave it."""
    from hwnas.profiles.schema import TARGETS

    sp = archs[0].space
    prof.check_space(sp)
    stored = sorted({m["target"] for m in prof.list_models(sp)})
    if not stored:
        raise NoFittedModelError(f"Profile '{prof.root}' stores no fitted model for space '{sp}': run "
                                 f"'hwnas fit {prof.root}'.")
    rows: list[dict[str, Any]] = [{"arch": a.to_str(), "key": a.key(), "models": {}} for a in archs]
    for target in [t for t in TARGETS if t in stored]:
        m = load_latency_model(prof, model if target == "latency_ms" else None, target, sp)
        for r, v in zip(rows, m.predict(archs)):
            r[target] = float(v)
            r["models"][target] = m.name
    return rows
