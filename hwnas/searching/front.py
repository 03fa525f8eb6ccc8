"""From evaluated archs to a Pareto front: non-dominated filtering, hypervolume, plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hwnas.searching.problem import ArchProblem
from hwnas.types import ArchConfig, Candidate, ParetoFront


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (all objectives minimised)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    if len(F) == 0:
        return np.array([], dtype=int)
    return NonDominatedSorting().do(F, only_non_dominated_front=True)


def build_front(problem: ArchProblem, archs: Sequence[ArchConfig], meta: dict | None = None) -> ParetoFront:
    """The Pareto front of ``archs``: feasible non-dominated subnets first (then, if none is
    feasible, the non-dominated infeasible ones so the user sees what is reachable)."""
    archs = list({a.key(): a for a in archs}.values())
    f, g = problem.evaluate_archs(archs)
    Fmin = np.stack([o.minimised(f[:, i]) for i, o in enumerate(problem.objectives)], axis=1)
    ok = np.array([all(g[j, i] <= c.upper for i, c in enumerate(problem.constraints)) for j in range(len(archs))])
    pool = np.flatnonzero(ok) if ok.any() else np.arange(len(archs))
    idx = pool[non_dominated(Fmin[pool])]
    idx = sorted(idx, key=lambda j: Fmin[j, 0])  # best first objective first
    cands = []
    for j in idx:
        objs = {o.name: float(f[j, i]) for i, o in enumerate(problem.objectives)}
        for i, c in enumerate(problem.constraints):
            objs.setdefault(c.name, float(g[j, i]))
        cands.append(Candidate(archs[j], objs, bool(ok[j])))
    best = 0 if cands and cands[0].feasible else None
    return ParetoFront(problem.space.name, tuple(cands), {o.name: o.direction for o in problem.objectives},
                       {c.name: c.upper for c in problem.constraints}, best, dict(meta or {}))


def hypervolume(front: ParetoFront, ref: dict[str, float], objectives: Sequence[str] | None = None) -> float:
    """Hypervolume of the feasible candidates w.r.t. ``ref`` (natural units; maximised
    objectives are negated internally). Larger is better."""
    from pymoo.indicators.hv import HV

    names = list(objectives or front.directions)
    pts = [[(-c.objectives[n] if front.directions[n] == "max" else c.objectives[n]) for n in names]
           for c in front.candidates if c.feasible]
    if not pts:
        return 0.0
    r = np.array([(-ref[n] if front.directions[n] == "max" else ref[n]) for n in names], dtype=float)
    return float(HV(ref_point=r)(np.array(pts, dtype=float)))


def plot_front(front: ParetoFront, x: str, y: str, path: str | Path, evaluated: dict | None = None,
               budgets: dict[str, float] | None = None, title: str = "") -> Path:
    """Scatter of the front in the (x, y) objective pair; all evaluated subnets in grey; budgets as lines;
    measured values (closed loop) as open markers joined to their predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    if evaluated:
        ax.scatter(evaluated[x], evaluated[y], s=6, c="0.8", label="evaluated")
    cs = [c for c in front.candidates if x in c.objectives and y in c.objectives]
    ax.scatter([c.objectives[x] for c in cs], [c.objectives[y] for c in cs], s=22, c="C0", label="Pareto front")
    for c in cs:
        if c.measured and x in c.measured:
            mx = c.measured.get(x, c.objectives[x])
            my = c.measured.get(y, c.objectives[y])
            ax.plot([c.objectives[x], mx], [c.objectives[y], my], c="C1", lw=0.8)
            ax.scatter([mx], [my], s=30, facecolors="none", edgecolors="C1")
    if any(c.measured for c in cs):
        ax.scatter([], [], s=30, facecolors="none", edgecolors="C1", label="measured on device")
    for name, b in (budgets or {}).items():
        if name == x:
            ax.axvline(b, ls="--", c="C3", lw=1, label=f"{name} budget")
        elif name == y:
            ax.axhline(b, ls="--", c="C3", lw=1, label=f"{name} budget")
    if front.best is not None:
        c = front.candidates[front.best]
        ax.scatter([c.objectives[x]], [c.objectives[y]], s=90, marker="*", c="C2", label="chosen", zorder=5)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{front.space}: {y} vs {x}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
