"""The closed loop: search on predictions, re-measure the winners on the device, repair, resume.

Round by round:

1. the algorithm on the current predictors (warm-started from the previous round's front);
   subnets already measured use their *measured* figures instead of predictions;
2. the top-``k`` candidates that meet every budget as predicted, by the quality objective, and
   are not yet measured, are measured on the device (``DeviceCheck.measure``: export + run on the
   real runtime — the caller stores the rows);
3. if the best candidate has been measured and meets every budget, stop. Otherwise, when a
   measurement broke a budget or missed its prediction by more than ``tolerance``,
   ``DeviceCheck.refit`` returns predictors refitted with the new measurements, and the search resumes.

A budget is judged only on a measured figure: a candidate whose budgeted metric came back
unmeasured is "not measured", never "met", and a budget on a metric the device check cannot
measure is refused before the search starts. It stops when the chosen subnet meets every budget
as measured, or when ``max_measurements`` are spent (then it reports the best measured subnet
that meets them, if any).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hwnas.errors import ConfigError
from hwnas.searching.algorithms import Termination
from hwnas.searching.front import build_front
from hwnas.searching.objectives import Objective, from_predictor
from hwnas.searching.problem import ArchProblem
from hwnas.types import ArchConfig, Candidate, ParetoFront

Measured = dict[str, "float | None"]
MeasureFn = Callable[[list[ArchConfig]], list[Measured]]
RefitFn = Callable[[list[ArchConfig], list[Measured]], "dict[str, object] | None"]


@dataclass
class DeviceCheck:
    """How the closed loop reaches the device: ``measure(archs)`` returns, per arch, the figures of
    ``metrics`` (None where not measured); ``refit(archs, measured)`` returns refitted predictors
    by objective name (or None to keep them); ``unmeasurable`` says why a metric cannot be measured."""

    measure: MeasureFn
    metrics: tuple[str, ...]
    refit: RefitFn | None = None
    top_k: int = 3
    max_measurements: int = 12
    max_rounds: int = 6
    tolerance: float = 0.10
    unmeasurable: dict[str, str] = field(default_factory=dict)
    uncertain: Callable[[list[ArchConfig]], "np.ndarray"] | None = None
    """Which candidates' prediction intervals cross a budget: measured too, beyond the top ``k``."""


def meets(m: Measured, budgets: dict[str, float]) -> bool:
    """Every budget met *as measured*; an unmeasured budgeted metric never counts as met."""
    return all(m.get(n) is not None and m[n] <= b for n, b in budgets.items())


def status(m: Measured, budgets: dict[str, float]) -> str:
    if any(m.get(n) is None for n in budgets):
        return "not measured"
    return "met" if meets(m, budgets) else "over budget"


def closed_loop(problem, algorithm, termination: Termination, check: DeviceCheck, progress=None) -> ParetoFront:
    """Search ``problem`` (a :class:`~hwnas.searching.run.SearchProblem`) with measured verification."""
    _refuse_unmeasurable(problem.budgets, check)
    quality = problem.quality
    measured: dict[str, Measured] = {}
    checks: list[dict] = []
    rounds: list[dict] = []
    initial: list[ArchConfig] | None = None
    objectives = list(problem.objectives)
    for rnd in range(check.max_rounds):
        limits = {n: _measured_first(Objective(n, fn), measured).fn for n, fn in problem.limits.items()}
        pr = problem.with_objectives([_measured_first(o, measured) if o.name in check.metrics else o
                                      for o in objectives], limits).arch_problem()
        front = build_front(pr, algorithm.run(pr, termination, initial, rnd))
        todo, info = _next_to_measure(front, quality, measured, check, pr, rnd)
        rounds.append(info)
        if not todo:
            break
        results = check.measure(todo)
        refit = _record(todo, results, objectives, problem.budgets, measured, checks, rnd, check.tolerance)
        rounds[-1]["measured"] = len(todo)
        if progress is not None:
            progress(f"round {rnd + 1}: {pr.n_evals} subnets evaluated, measured {len(todo)}, "
                     f"{sum(r['status'] == 'met' for r in checks[-len(todo):])} meet the budget as measured")
        if refit and check.refit is not None:
            new = check.refit(todo, results) or {}
            objectives = [from_predictor(o.name, new[o.name]) if o.name in new else o for o in objectives]
        initial = [c.arch for c in front.candidates]
    return _finish(front, pr, measured, problem.budgets, quality, rounds, checks)


def _refuse_unmeasurable(budgets: dict[str, float], check: DeviceCheck) -> None:
    for n in budgets:
        if n not in check.metrics:
            why = check.unmeasurable.get(n, "the device check does not measure it")
            raise ConfigError(f"A {n} budget cannot be judged as measured here ({why}). Drop the budget, or search "
                              "without the closed loop (--no-closed-loop) to rank on predictions alone.")


def _measured_first(o: Objective, measured: dict[str, Measured]) -> Objective:
    def fn(archs):
        out = np.asarray(o(archs), dtype=float).copy()
        for i, a in enumerate(archs):
            v = measured.get(a.key(), {}).get(o.name)
            if v is not None:
                out[i] = v
        return out

    return Objective(o.name, fn, o.direction)


def _next_to_measure(front: ParetoFront, quality: Objective, measured, check: DeviceCheck, pr: ArchProblem,
                     rnd: int) -> tuple[list[ArchConfig], dict]:
    feas = sorted((c for c in front.candidates if c.feasible), key=lambda c: -c.objectives[quality.name])
    info = {"round": rnd + 1, "evaluated": pr.n_evals, "front": len(front.candidates), "feasible": len(feas)}
    if not feas:
        return [], info
    top = feas[0]
    if top.arch.key() in measured and meets(measured[top.arch.key()], front.budgets):
        return [], {**info, "stop": "best candidate meets the budget as measured"}
    if len(measured) >= check.max_measurements:
        return [], {**info, "stop": "measurement budget spent"}
    room = check.max_measurements - len(measured)
    fresh = [c.arch for c in feas if c.arch.key() not in measured]
    todo = fresh[:min(check.top_k, room)]
    if check.uncertain is not None and len(todo) < room:  # candidates whose interval crosses the budget
        rest = fresh[len(todo):]
        crossing = [a for a, u in zip(rest, check.uncertain(rest) if rest else []) if u]
        todo += crossing[:room - len(todo)]
        info["crossing_budget"] = len(crossing)
    return todo, (info if todo else {**info, "stop": "every feasible candidate measured"})


def _record(todo, results, objectives, budgets, measured, checks, rnd, tolerance) -> bool:
    """Store measurements and predicted-vs-measured checks; True when the predictors need a refit."""
    preds = {o.name: o for o in objectives}
    needs_refit = False
    for a, m in zip(todo, results):
        measured[a.key()] = dict(m)
        row = {"arch": a.to_str(), "round": rnd + 1}
        for n, v in m.items():
            if n in preds and v is not None:
                p = float(preds[n]([a])[0])
                err = (v - p) / max(p, 1e-12)
                row.update({f"{n}_predicted": p, f"{n}_measured": v, f"{n}_error": err})
                needs_refit |= abs(err) > tolerance
        row["status"] = status(m, budgets)
        row["meets_budget"] = row["status"] == "met"
        needs_refit |= not row["meets_budget"]
        checks.append(row)
    return needs_refit


def _finish(front: ParetoFront, problem: ArchProblem, measured, budgets, quality: Objective, rounds,
            checks) -> ParetoFront:
    """Attach measurements; keep every measured subnet (also those that fell off the front), and
    choose the most accurate one that meets every budget as measured."""
    on_front = {c.arch.key() for c in front.candidates}
    extra = list({a.key(): a for a in (ArchConfig.parse(r["arch"]) for r in checks)
                  if a.key() not in on_front}.values())
    pool = list(front.candidates)
    if extra:
        f, _ = problem.evaluate_archs(extra)
        pool += [Candidate(a, {o.name: float(f[j, i]) for i, o in enumerate(problem.objectives)}, True)
                 for j, a in enumerate(extra)]
    at_measure = {ArchConfig.parse(r["arch"]).key(): {k[: -len("_predicted")]: v for k, v in r.items()
                                                       if k.endswith("_predicted")} for r in checks}
    cands: list[Candidate] = []
    for c in pool:
        m = measured.get(c.arch.key())
        # objectives keep the *predictions* (the search itself used the measured figures once known)
        objs = {**c.objectives, **at_measure.get(c.arch.key(), {})}
        cands.append(replace(c, objectives=objs, measured=None if m is None else {k: v for k, v in m.items()
                                                                                 if v is not None},
                             feasible=c.feasible if m is None else meets(m, budgets)))
    ok = [i for i, c in enumerate(cands) if c.measured is not None and c.feasible]
    best = max(ok, key=lambda i: cands[i].objectives[quality.name]) if ok else None
    meta = {**front.meta, "closed_loop": {"rounds": rounds, "checks": checks, "met": best is not None}}
    return replace(front, candidates=tuple(cands), best=best, meta=meta)


__all__: Sequence[str] = ["DeviceCheck", "closed_loop", "meets", "status"]
