"""The closed loop: search on predictions, re-measure the winners on the device, repair, resume.

Round by round:

1. NSGA-II on the current predictors (warm-started from the previous round's front);
   subnets already measured use their *measured* figures instead of predictions.
2. The top-``k`` candidates that meet every budget as predicted, by the first (maximised)
   objective, and are not yet measured, are measured on the device (``measure`` is
   injected: export + run on the real runtime, appended to the profile by the caller).
3. If the best candidate of the front has been measured and meets every budget, stop.
   Otherwise, when a measurement broke a budget or missed its prediction by more than the
   model's error ``tolerance``, ``refit`` (injected) returns predictors refitted with the new
   measurements, and the search resumes.

It stops when the chosen subnet meets the budget *as measured*, or when ``max_measurements``
are spent (then it reports the best measured subnet that meets the budget, if any).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hwnas.searching.algorithms import Termination, nsga2
from hwnas.searching.front import build_front
from hwnas.searching.objectives import Constraint, Objective
from hwnas.searching.problem import ArchProblem
from hwnas.types import ArchConfig, Candidate, ParetoFront

MeasureFn = Callable[[list[ArchConfig]], list[dict[str, float]]]
RefitFn = Callable[[list[ArchConfig], list[dict[str, float]]], dict[str, object]]


@dataclass
class LoopReport:
    front: ParetoFront
    met: bool
    rounds: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # predicted vs measured per re-measured subnet


def closed_loop(space, accuracy: Objective, predictors: dict[str, object], budgets: dict[str, float],
                measure: MeasureFn, refit: RefitFn | None = None, extra_objectives: Sequence[Objective] = (),
                termination: Termination = Termination(generations=30), pop_size: int = 50, top_k: int = 3,
                max_measurements: int = 12, max_rounds: int = 6, tolerance: float = 0.10, seed: int = 0,
                resolutions: Sequence[int] | None = None, progress: Callable[[str], None] | None = None
                ) -> LoopReport:
    """Search under ``budgets`` (objective name → upper bound) with measured verification.

    ``predictors`` maps a minimised objective name (``latency_ms``, ``memory_mb``, ...) to an
    object with ``predict(archs)``; ``measure(archs)`` returns, per arch, the measured figures
    under the same names; ``refit(archs, measured)`` returns updated predictors (or None to
    keep them).
    """
    measured: dict[str, dict[str, float]] = {}
    checks: list[dict] = []
    rounds: list[dict] = []
    initial: list[ArchConfig] | None = None
    preds = dict(predictors)
    front: ParetoFront | None = None
    for rnd in range(max_rounds):
        objs = [accuracy] + [_objective(name, p, measured) for name, p in preds.items()] + list(extra_objectives)
        by_name = {o.name: o for o in objs}
        cons = [Constraint(n, by_name[n].fn, b) for n, b in budgets.items() if n in by_name]
        problem = ArchProblem(space, objs, cons, resolutions)
        evaluated = nsga2(problem, termination, pop_size, seed + rnd, initial)
        front = build_front(problem, evaluated)
        feas = [c for c in front.candidates if c.feasible]
        order = sorted(feas, key=lambda c: -c.objectives[accuracy.name] if accuracy.direction == "max"
                       else c.objectives[accuracy.name])
        info = {"round": rnd + 1, "evaluated": problem.n_evals, "front": len(front.candidates),
                "feasible": len(feas)}
        if not order:
            rounds.append(info)
            break
        top = order[0]
        if top.arch.key() in measured and _meets(measured[top.arch.key()], budgets):
            rounds.append({**info, "stop": "best candidate meets the budget as measured"})
            break
        if len(measured) >= max_measurements:
            rounds.append({**info, "stop": "measurement budget spent"})
            break
        todo = [c.arch for c in order if c.arch.key() not in measured][: min(top_k, max_measurements - len(measured))]
        if not todo:
            rounds.append({**info, "stop": "every feasible candidate measured"})
            break
        results = measure(todo)
        needs_refit = False
        for a, m in zip(todo, results):
            measured[a.key()] = dict(m)
            pred = {n: float(np.asarray(p.predict([a]))[0]) for n, p in preds.items()}
            row = {"arch": a.to_str(), "round": rnd + 1}
            for n in m:
                if n in pred:
                    err = (m[n] - pred[n]) / max(pred[n], 1e-12)
                    row.update({f"{n}_predicted": pred[n], f"{n}_measured": m[n], f"{n}_error": err})
                    needs_refit |= abs(err) > tolerance
            row["meets_budget"] = _meets(m, budgets)
            needs_refit |= not row["meets_budget"]
            checks.append(row)
        info["measured"] = len(todo)
        rounds.append(info)
        if progress is not None:
            progress(f"round {rnd + 1}: {problem.n_evals} subnets evaluated, measured {len(todo)}, "
                     f"{sum(r['meets_budget'] for r in checks[-len(todo):])} meet the budget")
        if needs_refit and refit is not None:
            new = refit(todo, results)
            if new:
                preds.update(new)
        initial = [c.arch for c in front.candidates]
    assert front is not None
    return _finish(front, problem, measured, budgets, accuracy, rounds, checks)


def _objective(name: str, predictor, measured: dict[str, dict[str, float]]) -> Objective:
    def fn(archs):
        out = np.asarray(predictor.predict(list(archs)), dtype=float).copy()
        for i, a in enumerate(archs):
            m = measured.get(a.key())
            if m is not None and name in m:
                out[i] = m[name]
        return out

    return Objective(name, fn, "min")


def _meets(m: dict[str, float], budgets: dict[str, float]) -> bool:
    return all(m.get(n, -np.inf) <= b for n, b in budgets.items() if n in m)


def _finish(front: ParetoFront, problem: ArchProblem, measured, budgets, accuracy: Objective, rounds,
            checks) -> LoopReport:
    """Attach measurements; keep every measured subnet (also those that fell off the front),
    and choose the most accurate one that meets every budget as measured."""
    on_front = {c.arch.key() for c in front.candidates}
    extra = [ArchConfig.parse(r["arch"]) for r in checks]
    extra = list({a.key(): a for a in extra if a.key() not in on_front}.values())
    pool = list(front.candidates)
    if extra:
        f, g = problem.evaluate_archs(extra)
        for j, a in enumerate(extra):
            objs = {o.name: float(f[j, i]) for i, o in enumerate(problem.objectives)}
            pool.append(Candidate(a, objs, True))
    predicted_at_measure = {ArchConfig.parse(r["arch"]).key(): {k[: -len("_predicted")]: v for k, v in r.items()
                                                                 if k.endswith("_predicted")} for r in checks}
    cands: list[Candidate] = []
    for c in pool:
        m = measured.get(c.arch.key())
        # objectives keep the *predictions* (the search itself used the measured figures once known)
        objs = {**c.objectives, **predicted_at_measure.get(c.arch.key(), {})}
        cands.append(replace(c, objectives=objs, measured=m, feasible=c.feasible if m is None else _meets(m, budgets)))
    sign = -1.0 if accuracy.direction == "max" else 1.0
    ok_measured = [i for i, c in enumerate(cands) if c.measured is not None and c.feasible]
    best = min(ok_measured, key=lambda i: sign * cands[i].objectives[accuracy.name]) if ok_measured else None
    met = best is not None
    meta = dict(front.meta)
    meta.update({"closed_loop": {"rounds": rounds, "checks": checks, "met": met}})
    return LoopReport(replace(front, candidates=tuple(cands), best=best, meta=meta), met, rounds, checks)
