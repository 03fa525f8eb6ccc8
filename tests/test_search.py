"""The search: operators, NSGA-II and baselines, fronts, reproducibility and the closed loop on a real device."""

import numpy as np
import pytest

from hwnas.errors import BudgetError
from hwnas.searching.algorithms import Termination, nsga2, ofa_evolution, random_search
from hwnas.searching.front import build_front, hypervolume, non_dominated, plot_front
from hwnas.searching.objectives import Objective, budget, macs, params
from hwnas.searching.problem import ArchCrossover, ArchDuplicates, ArchMutation, ArchProblem, ArchSampling
from hwnas.supernet.spaces import get_space
from hwnas.types import ParetoFront

SP = get_space("fmnist-mbv3")


def capacity():
    # a maximised analytic objective standing in for accuracy in these mechanics tests
    return Objective("params_m", params(SP).fn, "max")


def test_operators_yield_valid_distinct_subnets():
    pr = ArchProblem(SP, [capacity(), macs(SP)], resolutions=[24, 28])
    rs = np.random.default_rng(0)
    X = ArchSampling()._do(pr, 40, random_state=rs)
    archs = [pr.decode(x) for x in X]
    assert len({a.key() for a in archs}) == 40 and {a.r for a in archs} <= {24, 28}
    kids = ArchCrossover()._do(pr, np.stack([X[:20], X[20:]]), random_state=rs)
    assert kids.shape == (2, 20, pr.n_var)
    assert np.all((kids[0] == X[:20]) | (kids[0] == X[20:]))
    mut = ArchMutation(gene_prob=0.5)._do(pr, X, random_state=rs)
    assert (mut != X).any() and np.all(mut >= pr.xl) and np.all(mut <= pr.xu)
    for x in np.vstack([kids[0], mut]):
        pr.decode(x)  # every genome within bounds is a valid subnet


def test_duplicates_are_detected_by_arch_key():
    from pymoo.core.population import Population

    pr = ArchProblem(SP, [capacity()])
    a = SP.min_arch()
    g1 = pr.encode(a)
    g2 = g1.copy()
    g2[2] = 2  # kernel of an inactive slot (stage 1 has depth 1): same subnet
    assert pr.decode(g2) == a
    pop = Population.new("X", np.array([g1, g2, pr.encode(SP.max_arch())]))
    dup = ArchDuplicates(pr)._do(pop, None, np.full(3, False))
    assert dup.tolist() == [False, True, False]


def _problem(limit=8.0):
    m = macs(SP)
    return ArchProblem(SP, [capacity(), m], [budget(m, limit)])


def test_nsga2_front_is_feasible_non_dominated_and_seeded():
    pr = _problem()
    front = build_front(pr, nsga2(pr, Termination(evaluations=600), pop_size=40, seed=3))
    assert pr.n_evals >= 600 and front.candidates and front.best == 0
    F = np.array([[-c.objectives["params_m"], c.objectives["macs_m"]] for c in front.candidates])
    assert len(non_dominated(F)) == len(F)
    assert all(c.feasible and c.objectives["macs_m"] <= 8.0 for c in front.candidates)
    again = _problem()
    front2 = build_front(again, nsga2(again, Termination(evaluations=600), pop_size=40, seed=3))
    assert [c.arch.key() for c in front.candidates] == [c.arch.key() for c in front2.candidates]
    other = _problem()
    front3 = build_front(other, nsga2(other, Termination(evaluations=600), pop_size=40, seed=4))
    assert [c.arch.key() for c in front3.candidates] != [c.arch.key() for c in front.candidates]


def test_baselines_and_hypervolume(tmp_path):
    ref = {"params_m": 0.0, "macs_m": 8.0}
    fr = build_front(p := _problem(), random_search(p, 300, seed=0))
    fo = build_front(q := _problem(), ofa_evolution(q, 300, seed=0))
    assert p.n_evals == 300 and 300 <= q.n_evals < 400
    assert hypervolume(fr, ref) > 0 and hypervolume(fo, ref) > 0
    # OFA's evolution maximises the first objective under the budget: its best is at least random's
    assert max(c.objectives["params_m"] for c in fo.candidates) >= max(c.objectives["params_m"] for c in fr.candidates)
    png = plot_front(fr, "macs_m", "params_m", tmp_path / "front.png", budgets={"macs_m": 8.0})
    assert png.stat().st_size > 5000
    fr.save(tmp_path / "front.json")
    assert ParetoFront.load(tmp_path) == fr


def test_unreachable_budget_reports_the_range():
    pr = _problem(limit=0.5)  # below the smallest subnet
    front = build_front(pr, random_search(pr, 100, seed=0))
    assert front.best is None and not any(c.feasible for c in front.candidates)
    with pytest.raises(BudgetError, match="lowest on this front"):
        front.select(macs_m=0.5)


def test_ten_thousand_predictor_evaluations_are_batched():
    calls = []

    def fn(archs):
        calls.append(len(archs))
        return np.array([SP.macs(a) for a in archs], dtype=float)

    pr = ArchProblem(SP, [capacity(), Objective("m", fn)])
    random_search(pr, 2000, seed=0)
    assert sum(calls) == pr.n_evals == 2000 and len(calls) == 1
