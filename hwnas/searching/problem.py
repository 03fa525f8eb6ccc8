"""The search problem (what) and the space-respecting operators, in pymoo's terms.

Decision variables are a subnet's genome (:meth:`SearchSpace.to_genome`): one integer per
gene — the index of the kernel / expand ratio per slot, the depth per stage and the
resolution — so every integer vector within bounds is a valid subnet. Sampling, crossover
and mutation go through the space (``from_genome`` / ``to_genome``); duplicates are
eliminated by ``ArchConfig.key()``, so two genomes that differ only in inactive slots count
as one subnet. Evaluations are batched and cached by arch key; ``n_evals`` counts distinct
subnets evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling

from hwnas.searching.objectives import Constraint, Objective
from hwnas.supernet.spaces import SearchSpace, get_space
from hwnas.types import ArchConfig


class ArchProblem(Problem):
    """Minimise the objectives (maximised ones negated) subject to ``constraint(x) <= upper``."""

    def __init__(self, space: SearchSpace | str, objectives: Sequence[Objective],
                 constraints: Sequence[Constraint] = (), resolutions: Sequence[int] | None = None) -> None:
        self.space = get_space(space)
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        if not self.objectives:
            from hwnas.errors import ConfigError

            raise ConfigError("A search problem needs at least one objective.")
        ch = self.space.gene_choices
        xu = np.array([len(c) - 1 for c in ch])
        xl = np.zeros(len(ch), dtype=int)
        self.resolution_idx = None
        if resolutions is not None:
            bad = [r for r in resolutions if r not in self.space.resolutions]
            if bad:
                from hwnas.errors import ConfigError

                raise ConfigError(f"Resolutions {bad} are not in space '{self.space.name}' "
                                  f"(allowed {list(self.space.resolutions)}).")
            self.resolution_idx = sorted(self.space.resolutions.index(r) for r in resolutions)
            xl[-1], xu[-1] = 0, len(self.resolution_idx) - 1
        super().__init__(n_var=len(ch), n_obj=len(self.objectives), n_ieq_constr=len(self.constraints),
                         xl=xl, xu=xu, vtype=int)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- genome <-> arch ---------------------------------------------------------
    def decode(self, x: np.ndarray) -> ArchConfig:
        g = np.asarray(x, dtype=int).copy()
        if self.resolution_idx is not None:
            g[-1] = self.resolution_idx[int(g[-1])]
        return self.space.from_genome(g)

    def encode(self, arch: ArchConfig) -> np.ndarray:
        g = self.space.to_genome(arch)
        if self.resolution_idx is not None:
            g[-1] = self.resolution_idx.index(int(g[-1]))
        return g

    @property
    def n_evals(self) -> int:
        return len(self._cache)

    # -- evaluation ----------------------------------------------------------------
    def evaluate_archs(self, archs: Sequence[ArchConfig]) -> tuple[np.ndarray, np.ndarray]:
        """(objective values in natural units, constraint values) for each arch, cached by key."""
        todo = {a.key(): a for a in archs if a.key() not in self._cache}
        if todo:
            batch = list(todo.values())
            f = np.stack([o(batch) for o in self.objectives], axis=1)
            g = (np.stack([c.fn(batch) for c in self.constraints], axis=1) if self.constraints
                 else np.zeros((len(batch), 0)))
            for i, k in enumerate(todo):
                self._cache[k] = (f[i], np.asarray(g[i], dtype=float))
        f = np.stack([self._cache[a.key()][0] for a in archs])
        g = np.stack([self._cache[a.key()][1] for a in archs]) if self.constraints else np.zeros((len(archs), 0))
        return f, g

    def _evaluate(self, X, out, *args, **kwargs):
        archs = [self.decode(x) for x in X]
        f, g = self.evaluate_archs(archs)
        out["F"] = np.stack([o.minimised(f[:, i]) for i, o in enumerate(self.objectives)], axis=1)
        if self.constraints:
            out["G"] = np.stack([c.violation(g[:, i]) for i, c in enumerate(self.constraints)], axis=1)


class ArchSampling(Sampling):
    """Uniform over every gene (through the space), without duplicate subnets where possible."""

    def _do(self, problem: ArchProblem, n_samples, *args, random_state=None, **kwargs):
        out, seen = [], set()
        for _ in range(n_samples * 20):
            x = np.array([random_state.integers(lo, hi + 1) for lo, hi in zip(problem.xl, problem.xu)])
            k = problem.decode(x).key()
            if k not in seen:
                seen.add(k)
                out.append(x)
            if len(out) == n_samples:
                break
        while len(out) < n_samples:  # a space smaller than the population
            out.append(out[len(out) % max(1, len(seen))])
        return np.array(out, dtype=int)


class ArchCrossover(Crossover):
    """Uniform crossover per gene (each gene is an independent choice, so every child is valid)."""

    def __init__(self, prob: float = 0.9) -> None:
        super().__init__(2, 2, prob=prob)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        mask = random_state.random((n_matings, n_var)) < 0.5
        a, b = X[0].copy(), X[1].copy()
        c1 = np.where(mask, a, b)
        c2 = np.where(mask, b, a)
        return np.stack([c1, c2]).astype(int)


class ArchMutation(Mutation):
    """Redraw each gene with probability ``gene_prob`` (default 1/n_genes ×2), within its choices."""

    def __init__(self, gene_prob: float | None = None) -> None:
        super().__init__(prob=1.0)
        self.gene_prob = gene_prob

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        p = self.gene_prob if self.gene_prob is not None else min(0.5, 2.0 / problem.n_var)
        X = X.copy()
        redraw = random_state.random(X.shape) < p
        fresh = np.stack([random_state.integers(lo, hi + 1, size=len(X)) for lo, hi in zip(problem.xl, problem.xu)],
                         axis=1)
        X[redraw] = fresh[redraw]
        return X.astype(int)


class ArchDuplicates(DuplicateElimination):
    """Individuals are duplicates when their archs share a key (inactive slots ignored)."""

    def __init__(self, problem: ArchProblem) -> None:
        super().__init__()
        self.problem = problem

    def _keys(self, pop) -> list[str]:
        return [self.problem.decode(ind.X).key() for ind in pop]

    def _do(self, pop, other, is_duplicate):
        keys = self._keys(pop)
        seen = set() if other is None else set(self._keys(other))
        for i, k in enumerate(keys):
            if k in seen:
                is_duplicate[i] = True
            elif other is None:
                seen.add(k)
        return is_duplicate
