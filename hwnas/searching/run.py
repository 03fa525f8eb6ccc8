"""The one search entry point, in the shape of pymoo's ``minimize``: a problem (what), an algorithm
(how), a termination (when) and, optionally, a device evaluator that measures the winners.

    front = search(SearchProblem("fmnist-mbv3", (accuracy, latency), {"latency_ms": 0.15}),
                   NSGA2(pop_size=60, seed=0), Termination(generations=40), evaluator=DeviceCheck(...))

Without an evaluator the front is built on predictions alone; with one, the closed loop
(:mod:`hwnas.searching.closed_loop`) re-measures candidates on the device and repairs the
predictors until the chosen subnet meets every budget *as measured*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from hwnas.errors import ConfigError
from hwnas.searching.algorithms import Termination, nsga2, ofa_evolution, random_search
from hwnas.searching.front import build_front
from hwnas.searching.objectives import Constraint, Objective
from hwnas.searching.problem import ArchProblem
from hwnas.types import ArchConfig, ParetoFront

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SearchProblem:
    """What to search: ``objectives`` (the first maximised one is the quality the search ranks by,
    e.g. ``accuracy_top1``), ``budgets`` (minimised objective name → upper bound), and the
    resolutions allowed (default: all of the space's)."""

    space: str
    objectives: tuple[Objective, ...]
    budgets: dict[str, float] = field(default_factory=dict)
    resolutions: tuple[int, ...] | None = None
    limits: dict[str, Callable] = field(default_factory=dict)
    """Budget name → the function a budget is judged on, where it is not the objective's own value
    (e.g. the upper bound of a prediction interval: ``--confidence``)."""

    def __post_init__(self) -> None:
        names = [o.name for o in self.objectives]
        missing = [b for b in self.budgets if b not in names]
        if missing:
            raise ConfigError(f"Budgets on {missing} need objectives of those names (objectives: {names}).")
        if not any(o.direction == "max" for o in self.objectives):
            raise ConfigError("A search needs one maximised objective (e.g. accuracy_top1) to rank candidates by.")

    @property
    def quality(self) -> Objective:
        return next(o for o in self.objectives if o.direction == "max")

    def with_objectives(self, objectives: Sequence[Objective], limits: dict[str, Callable] | None = None
                        ) -> SearchProblem:
        return replace(self, objectives=tuple(objectives), limits=self.limits if limits is None else limits)

    def arch_problem(self) -> ArchProblem:
        """The pymoo problem: objectives plus one constraint per budget."""
        by = {o.name: o for o in self.objectives}
        cons = [Constraint(n, self.limits.get(n, by[n].fn), b) for n, b in self.budgets.items()]
        return ArchProblem(self.space, list(self.objectives), cons,
                           None if self.resolutions is None else list(self.resolutions))


@dataclass(frozen=True)
class NSGA2:
    """pymoo's NSGA-II with the space-respecting operators (multi-objective)."""

    pop_size: int = 50
    seed: int = 0

    def run(self, problem: ArchProblem, termination: Termination, initial: list[ArchConfig] | None = None,
            round_: int = 0) -> list[ArchConfig]:
        return nsga2(problem, termination, self.pop_size, self.seed + round_, initial)


@dataclass(frozen=True)
class RandomSearch:
    """Distinct uniform samples (``termination.evaluations`` of them): the baseline every search must beat."""

    seed: int = 0

    def run(self, problem: ArchProblem, termination: Termination, initial=None, round_: int = 0) -> list[ArchConfig]:
        return random_search(problem, _evaluations(termination, "RandomSearch"), self.seed + round_)


@dataclass(frozen=True)
class OFAEvolution:
    """Once-for-All's constrained single-objective evolution, maximising the problem's quality objective."""

    seed: int = 0
    population: int = 100

    def run(self, problem: ArchProblem, termination: Termination, initial=None, round_: int = 0) -> list[ArchConfig]:
        q = next(i for i, o in enumerate(problem.objectives) if o.direction == "max")
        return ofa_evolution(problem, _evaluations(termination, "OFAEvolution"), q, self.seed + round_,
                             self.population)


def _evaluations(t: Termination, name: str) -> int:
    if t.evaluations is None:
        raise ConfigError(f"{name} runs for a number of evaluations: pass Termination(evaluations=N).")
    return t.evaluations


def search(problem: SearchProblem, algorithm, termination: Termination, evaluator=None,
           progress: Progress | None = None) -> ParetoFront:
    """The Pareto front of ``problem`` found by ``algorithm`` within ``termination``; with an
    ``evaluator`` (:class:`~hwnas.searching.closed_loop.DeviceCheck`) candidates are verified on the device."""
    if evaluator is None:
        pr = problem.arch_problem()
        return build_front(pr, algorithm.run(pr, termination))
    from hwnas.searching.closed_loop import closed_loop

    return closed_loop(problem, algorithm, termination, evaluator, progress)
