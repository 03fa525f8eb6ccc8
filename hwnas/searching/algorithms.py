"""How to search (algorithms) and when to stop (termination), kept apart from the problem.

* :func:`nsga2` — pymoo's NSGA-II with the space-respecting operators; multi-objective.
* :func:`random_search` — distinct uniform samples; the baseline every search must beat.
* :func:`ofa_evolution` — Once-for-All's constrained single-objective evolution (population
  100, 25 % parents, half of each generation by mutation with gene probability 0.1, half by
  crossover; infeasible children are redrawn a bounded number of times, never in an endless
  loop).

All take a seed and count *distinct subnets evaluated* (``problem.n_evals``) so equal budgets
mean equal work. Each returns the list of evaluated archs; :mod:`hwnas.searching.front` turns
them into a Pareto front.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hwnas.searching.problem import ArchCrossover, ArchDuplicates, ArchMutation, ArchProblem, ArchSampling
from hwnas.types import ArchConfig


@dataclass(frozen=True)
class Termination:
    """Stop at whichever comes first: ``generations``, ``evaluations`` (distinct subnets) or ``seconds``."""

    generations: int | None = None
    evaluations: int | None = None
    seconds: float | None = None

    def done(self, gen: int, n_evals: int, t0: float) -> bool:
        return ((self.generations is not None and gen >= self.generations)
                or (self.evaluations is not None and n_evals >= self.evaluations)
                or (self.seconds is not None and time.perf_counter() - t0 >= self.seconds))


def nsga2(problem: ArchProblem, termination: Termination, pop_size: int = 50, seed: int = 0,
          initial: list[ArchConfig] | None = None, progress=None) -> list[ArchConfig]:
    """Run NSGA-II (ask/tell) and return every arch it evaluated.

    ``initial`` warm-starts the population (e.g. the last population of an interrupted or
    refitted search); it is topped up with random samples.
    """
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.population import Population
    from pymoo.termination.max_gen import MaximumGenerationTermination

    sampling = ArchSampling()
    if initial:
        rs = np.random.default_rng([seed, 1])
        X = [problem.encode(a) for a in initial][:pop_size]
        if len(X) < pop_size:
            X += list(sampling._do(problem, pop_size - len(X), random_state=rs))
        sampling = Population.new("X", np.array(X, dtype=int))
    algo = NSGA2(pop_size=pop_size, sampling=sampling, crossover=ArchCrossover(), mutation=ArchMutation(),
                 eliminate_duplicates=ArchDuplicates(problem))
    algo.setup(problem, termination=MaximumGenerationTermination(10**9), seed=seed, verbose=False)
    t0, gen, seen = time.perf_counter(), 0, {}
    while not termination.done(gen, problem.n_evals, t0):
        pop = algo.ask()
        if len(pop) == 0:
            break
        algo.evaluator.eval(problem, pop)
        algo.tell(infills=pop)
        for ind in pop:
            a = problem.decode(ind.X)
            seen.setdefault(a.key(), a)
        gen += 1
        if progress is not None:
            progress(gen, problem.n_evals)
    return list(seen.values())


def random_search(problem: ArchProblem, n_evals: int, seed: int = 0) -> list[ArchConfig]:
    """``n_evals`` distinct uniform subnets, evaluated in one batch."""
    X = ArchSampling()._do(problem, n_evals, random_state=np.random.default_rng(seed))
    archs = list({a.key(): a for a in (problem.decode(x) for x in X)}.values())
    problem.evaluate_archs(archs)
    return archs


def ofa_evolution(problem: ArchProblem, n_evals: int, objective: int = 0, seed: int = 0,
                  population: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                  gene_prob: float = 0.1, max_tries: int = 50) -> list[ArchConfig]:
    """OFA's regularised evolution maximising objective ``objective`` under the problem's constraints."""
    rng = np.random.default_rng(seed)
    obj = problem.objectives[objective]
    sign = 1.0 if obj.direction == "max" else -1.0

    def feasible_sample(make) -> ArchConfig | None:
        for _ in range(max_tries):
            a = make()
            _, g = problem.evaluate_archs([a])
            if not problem.constraints or all(g[0, i] <= c.upper for i, c in enumerate(problem.constraints)):
                return a
        return None

    def score(archs: list[ArchConfig]) -> np.ndarray:
        f, _ = problem.evaluate_archs(archs)
        return sign * f[:, objective]

    def random_arch() -> ArchConfig:
        return problem.decode(np.array([rng.integers(lo, hi + 1) for lo, hi in zip(problem.xl, problem.xu)]))

    pop = [a for a in (feasible_sample(random_arch) for _ in range(population)) if a is not None]
    if not pop:
        return []  # no feasible subnet found; the caller reports the reachable range
    seen = {a.key(): a for a in pop}
    n_parents = max(2, int(round(population * parent_ratio)))
    n_mut = int(round(population * mutation_ratio))
    while problem.n_evals < n_evals:
        before = problem.n_evals
        parents = [pop[i] for i in np.argsort(-score(pop))[:n_parents]]
        children = []
        for _ in range(n_mut):
            p = parents[rng.integers(len(parents))]
            c = feasible_sample(lambda p=p: problem.decode(_mutate(problem, problem.encode(p), gene_prob, rng)))
            if c is not None:
                children.append(c)
        for _ in range(population - n_mut):
            i, j = rng.choice(len(parents), 2, replace=False)
            gi, gj = problem.encode(parents[i]), problem.encode(parents[j])
            c = feasible_sample(lambda gi=gi, gj=gj: problem.decode(np.where(rng.random(len(gi)) < 0.5, gi, gj)))
            if c is not None:
                children.append(c)
        pop = parents + children
        for a in pop:
            seen.setdefault(a.key(), a)
        if problem.n_evals == before:  # the space is exhausted under the constraint
            break
    return list(seen.values())


def _mutate(problem: ArchProblem, g: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    g = g.copy()
    for i, (lo, hi) in enumerate(zip(problem.xl, problem.xu)):
        if rng.random() < p:
            g[i] = rng.integers(lo, hi + 1)
    return g
