"""Active sampling (nn-Meter's adaptive sampling): measure more where the model is worst.

Each round scores the model by cross-validation on the profile's fitting rows, takes the rows
it predicts worst, proposes new subnets next to them (mutations at the same resolution), and
has them measured by the injected ``measure(archs)`` callable (e.g. a partial of
:func:`hwnas.profiles.measure_archs` with ``kind="active"``); the new rows join the profile and
the next round refits. It stops when the cross-validated share within ±10 % reaches the goal,
the time budget is spent, or the round limit is reached. This module never touches a device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.types import ArchConfig


def propose_near(worst: Sequence[ArchConfig], known: set[str], n: int, rng: np.random.Generator,
                 prob: float = 0.15) -> list[ArchConfig]:
    """``n`` new archs (keys not in ``known``), each a mutation of one of ``worst`` at its resolution."""
    from hwnas.supernet.spaces import get_space

    out: list[ArchConfig] = []
    tries = 0
    while len(out) < n and tries < 200 * max(n, 1):
        base = worst[len(out) % len(worst)]
        sp = get_space(base.space)
        cand = sp.mutate(base, rng, prob)
        cand = ArchConfig(cand.space, cand.ks, cand.e, cand.d, base.r)
        tries += 1
        if cand.key() not in known:
            known.add(cand.key())
            out.append(cand)
    return out


def active_sampling(prof, model: str, measure: Callable[[list[ArchConfig]], Any], goal_within_10: float = 0.95,
                    budget_s: float = 600.0, batch: int = 10, max_rounds: int = 10, target: str = "latency_ms",
                    space: str | None = None, folds: int = 5, seed: int = 0,
                    progress: Callable[[str], None] | None = None, **params: Any) -> list[dict[str, Any]]:
    """Run rounds of score → propose → measure (see the module doc); returns one record per round."""
    from hwnas.latency_models import training_data
    from hwnas.latency_models.metrics import cross_val_predict, score

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []
    for rnd in range(max_rounds + 1):
        space, archs, y, _ = training_data(prof, space, target)
        pred = cross_val_predict(prof, model, archs, y, target, space, folds, seed, **params)
        s = score(y, pred)
        rec = {"round": rnd, "n_samples": len(archs), "within_10": s["within_10"], "within_5": s["within_5"],
               "mape": s["mape"], "elapsed_s": time.perf_counter() - t0, "measured": 0}
        history.append(rec)
        if progress:
            progress(f"round {rnd}: {len(archs)} samples, cross-validated {s['within_10']:.1%} within ±10 %, "
                     f"MAPE {s['mape']:.1%}")
        if s["within_10"] >= goal_within_10 or rnd == max_rounds or time.perf_counter() - t0 >= budget_s:
            break
        rel = np.abs(pred - y) / y
        worst = [archs[i] for i in np.argsort(-rel)[:batch]]
        new = propose_near(worst, {a.key() for a in archs} | set(prof.models_df(space)["arch_key"]), batch, rng)
        measure(new)
        rec["measured"] = len(new)
        prof._invalidate()
    return history
