"""How good is a predictor? Metrics on rows never used to fit, beside the device's own floor.

Protocol: if the profile holds ``holdout`` rows (end-to-end samples measured only for
evaluation), models are fitted on the fitting rows and scored on those; otherwise each model is
scored by k-fold cross-validation (every row predicted by a model fitted without it). Either
way no scored row was used to fit the model that scored it. Metrics: RMSE (target unit), MAPE,
share within ±5 % / ±10 %, Kendall τ and Spearman ρ. The floor is the profile's repeatability
(the same arch re-measured, same estimator): a predictor cannot be expected to agree with a
measurement more closely than the measurement agrees with itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ProfileError


def score(y_true, y_pred) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    rel = np.abs(p - y) / y
    tau = kendalltau(y, p).statistic if len(y) > 1 else float("nan")
    rho = spearmanr(y, p).statistic if len(y) > 1 else float("nan")
    return {"n": int(len(y)), "rmse": float(np.sqrt(np.mean((p - y) ** 2))), "mape": float(np.mean(rel)),
            "within_5": float(np.mean(rel <= 0.05)), "within_10": float(np.mean(rel <= 0.10)),
            "kendall_tau": float(tau), "spearman": float(rho), "max_rel_err": float(rel.max()) if len(y) else 0.0}


def holdout_data(prof, space: str, target: str):
    """(archs, y) of the profile's ``holdout`` rows for ``target`` (possibly empty)."""
    from hwnas.types import ArchConfig

    col = prof.check_target(target, space)
    df = prof.models_df(space, kinds=["holdout"])
    df = df[(df["repeat"] == 0) & df[col].notna()]
    return [ArchConfig.parse(a) for a in df["arch"]], df[col].to_numpy(dtype=float)


def cross_val_predict(prof, name: str, archs, y, target: str, space: str, folds: int = 5, seed: int = 0,
                      **params: Any) -> np.ndarray:
    """Out-of-fold predictions: each row predicted by the model fitted on the other folds."""
    from hwnas.latency_models import LATENCY_MODELS

    idx = np.random.default_rng(seed).permutation(len(archs))
    pred = np.zeros(len(archs))
    for f in range(folds):
        test = idx[f::folds]
        train = np.setdiff1d(idx, test)
        m = LATENCY_MODELS.create(name, **params).fit([archs[i] for i in train], y[train], prof, target, space)
        pred[test] = m.predict([archs[i] for i in test])
    return pred


def evaluate_models(prof, names: Sequence[str], target: str = "latency_ms", space: str | None = None,
                    folds: int = 5, params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Score each model in ``names`` (see the module doc); returns protocol, floor and per-model
    metrics with predictions."""
    from hwnas.latency_models import LATENCY_MODELS, canonical_target, training_data
    from hwnas.profiles.quality import repeatability

    target = canonical_target(target)
    space, archs, y, _ = training_data(prof, space, target)
    h_archs, h_y = holdout_data(prof, space, target)
    protocol = (f"fit on {len(archs)} rows, scored on {len(h_archs)} held-out rows" if len(h_archs)
                else f"{folds}-fold cross-validation over {len(archs)} rows")
    out: dict[str, Any] = {"space": space, "target": target, "protocol": protocol,
                           "floor": repeatability(prof, space) if target == "latency_ms" else {}, "models": {}}
    for name in names:
        LATENCY_MODELS.entry(name)
        p = (params or {}).get(name, {})
        t0 = time.perf_counter()
        try:
            if len(h_archs):
                model = LATENCY_MODELS.create(name, **p).fit(archs, y, prof, target, space)
                fit_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                pred = model.predict(h_archs)
                per_arch_us = (time.perf_counter() - t1) / len(h_archs) * 1e6
                truth, scored = h_y, h_archs
            else:
                if len(archs) < folds:
                    raise ProfileError(f"Cross-validation needs at least {folds} rows, the profile has {len(archs)}.")
                pred = cross_val_predict(prof, name, archs, y, target, space, folds, **p)
                fit_s, per_arch_us, truth, scored = (time.perf_counter() - t0) / folds, float("nan"), y, archs
        except (ProfileError, ValueError) as exc:
            out["models"][name] = {"error": str(exc)}
            continue
        out["models"][name] = {**score(truth, pred), "fit_s": fit_s, "predict_us_per_arch": per_arch_us,
                               "measured": truth.tolist(), "predicted": np.asarray(pred).tolist(),
                               "archs": [a.to_str() for a in scored]}
    return out


def plot_predictions(result: dict[str, Any], out_dir) -> list[str]:
    """One predicted-vs-measured PNG per scored model in ``result`` (from :func:`evaluate_models`)."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unit = "ms" if result["target"].endswith("_ms") else result["target"].rsplit("_", 1)[-1]
    paths = []
    for name, r in result["models"].items():
        if "error" in r:
            continue
        y, p = np.asarray(r["measured"]), np.asarray(r["predicted"])
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
        lo, hi = min(y.min(), p.min()) * 0.9, max(y.max(), p.max()) * 1.1
        xs = np.linspace(lo, hi, 10)
        ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.9", label="±10 %")
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.scatter(y, p, s=10, alpha=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"measured {result['target']} ({unit}, normalised)")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{name}: {r['within_10']:.0%} within ±10 %, τ={r['kendall_tau']:.3f}", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{result['space']}_{result['target']}_{name}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(str(path))
    return paths
