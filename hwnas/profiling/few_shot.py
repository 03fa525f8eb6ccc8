"""Few-shot profiling: a device never profiled, from at most ~20 measurements and other devices' profiles.

The fixed reference subnets are the same archs on every device, so a handful of them measured on a
new device says how its latency landscape relates to the source devices'. The measurements go into
a new profile of the device (kind ``reference``, then ``active``) and a
:class:`~hwnas.latency_models.transfer.TransferModel` from the source profiles' models is fitted on
them and stored as the profile's latency model — it predicts like any other stored model.

Without a target error, the first ``n`` reference subnets are measured. With ``target_error``
(a leave-one-out MAPE, e.g. 0.05), measuring starts with five of them and continues with the subnet
the model is least sure of — where the source devices, each mapped onto the target by its own
factor, disagree most (with one source: the predicted latency farthest from every measured one) —
until the leave-one-out error meets the target or ``n`` subnets are measured.

"Meets the target" is judged on an upper bound, not on the estimate: the leave-one-out error of a
form chosen by that same leave-one-out is optimistic, and from a handful of points it is mostly
luck — on an AMX Xeon (OpenVINO BF16, 7 sources) five points claimed 3.0 % and 100 held-out subnets
measured 5.9 %. So measuring stops only once at least ``MIN_STOP`` subnets are in (fewer cannot back
a 90 % conformal interval either) and the one-sided 90 % upper bound (Student t) of the mean error is
under the target (:func:`target_reached`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Device
from hwnas.errors import ConfigError
from hwnas.profiles import DeviceProfile
from hwnas.types import ArchConfig, Say

START = 5
MIN_STOP = 10
POOL = 200


def error_upper_bound(log_errors) -> float:
    """One-sided 90 % upper bound (Student t) of the mean relative error, from out-of-sample
    |log(pred/true)|."""
    from hwnas.exporting.gains import t_quantile

    e = np.asarray(log_errors, dtype=float)
    if len(e) < 2:
        return float("inf")
    return float(np.expm1(e.mean() + t_quantile(0.9, len(e) - 1) * e.std(ddof=1) / np.sqrt(len(e))))


def target_reached(log_errors, target: float, n_min: int = MIN_STOP) -> bool:
    """Enough measurements (``n_min``), and the error's upper bound is within ``target``."""
    return len(log_errors) >= n_min and error_upper_bound(log_errors) <= target


def least_sure(sources, measured: list[ArchConfig], y: np.ndarray, pool: list[ArchConfig]) -> ArchConfig:
    """The pool arch whose predicted latency the sources agree on least, once each is scaled onto the
    target by its own factor fitted on ``measured`` (one source: the farthest from every measured arch)."""
    lp_pool = np.log(np.stack([m.predict(pool) for m in sources], axis=1))
    lp_meas = np.log(np.stack([m.predict(measured) for m in sources], axis=1))
    if len(sources) > 1:
        shift = (np.log(y)[:, None] - lp_meas).mean(0)
        score = (lp_pool + shift).std(1)
    else:
        score = np.abs(lp_pool[:, 0][:, None] - lp_meas[:, 0][None, :]).min(1)
    return pool[int(np.argmax(score))]


def few_shot_profile(prof: DeviceProfile, device: Device, space: str, sources: Sequence[str | os.PathLike],
                     build_model: Callable[[ArchConfig, Path], Any], n: int = 20, target_error: float | None = None,
                     seed: int = 0, say: Say | None = None) -> dict[str, Any]:
    """Measure at most ``n`` subnets of ``space`` on ``device`` into ``prof`` and store the transfer model."""
    from hwnas.latency_models.transfer import TransferModel, source_model
    from hwnas.profiling.profiler import measure_archs
    from hwnas.profiling.sampling import reference_archs, stratified_archs

    if not sources:
        raise ConfigError("--few-shot needs source profiles of other devices: --from PROFILE (repeatable).")
    if n < 3:
        raise ConfigError(f"--few-shot needs at least 3 measurements, got {n}.")
    if target_error is not None and not 0 < target_error < 1:
        raise ConfigError(f"--target-error is a relative error (MAPE) between 0 and 1, e.g. 0.05; got {target_error}.")
    say = say or (lambda msg: None)
    paths = [str(Path(s)) for s in sources]
    models = [source_model(s, space) for s in paths]
    refs = reference_archs(space, max(n, START))
    pool = refs[START:] + stratified_archs(space, POOL, seed, exclude=refs)
    todo = refs[:n] if target_error is None else refs[:min(START, n)]
    done: list[ArchConfig] = []
    y = np.zeros(0)
    history = []
    while todo:
        rows = measure_archs(prof, todo, build_model, device, kind="reference" if not done else "active",
                             kernel_times=False)
        done += todo
        y = np.concatenate([y, [r.latency_ms for r in rows]])
        model = TransferModel(sources=paths).fit(done, y, prof, space=space)
        err, upper = model.metrics_["mape"], error_upper_bound(model.interval_)
        met = target_error is None or target_reached(model.interval_, target_error, min(MIN_STOP, n))
        history.append({"n": len(done), "loo_mape": err, "loo_mape_upper90": upper,
                        "loo_within_10": model.metrics_["within_10"]})
        # a progress line: what decides the stop first (a narrow terminal cuts the rest)
        say(f"few-shot {space}: {len(done)} measured, error {err:.1%} (≤ {upper:.1%} at 90 %), "
            f"{model.metrics_['within_10']:.0%} within ±10 % ({model.describe()})")
        if met or len(done) >= n:
            break
        known = {a.key() for a in done}
        todo = [least_sure(models, done, y, [a for a in pool if a.key() not in known])]
    prof.save_model(model)
    with prof.writing("few-shot settings"):
        prof.register_space(space, {"few_shot": len(done), "sources": paths,
                                    "reference_archs": [a.to_str() for a in refs]})
    return {"measured": len(done), "history": history, "model": model.describe(), "metrics": model.metrics_,
            "target_met": met}
