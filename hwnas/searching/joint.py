"""Joint architecture × per-block precision search (APQ, SimQ-NAS), verified on the device.

The genome is a :class:`~hwnas.types.quant_arch.QuantArch`: the subnet's genes plus one INT8/FP32
bit per block slot. :func:`evolve` is a regularised evolution under a hard latency budget (OFA's
search: rejection-sampled population, mutation of arch genes and precision bits, crossover),
scored by predictors given as callables over pairs: ``accuracy(pairs) -> top-1 %`` (the
quantization-aware predictor) and ``latency(pairs) -> ms`` (FP32 model + per-precision block
tables). :func:`verify` is the closed loop: the best predicted pairs are measured on the device
end to end (quantized under their policy), the latency model is rescaled to what was measured,
pairs over budget are dropped and the next ones measured, until ``top_k`` measured pairs meet the
budget or ``max_measurements`` is spent. Searching with every bit held FP32 (``precision=False``)
is the same search over FP32 subnets — the baseline "search FP32, then quantize".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hwnas.errors import BudgetError
from hwnas.types.quant_arch import QuantArch

PairFn = Callable[[Sequence[QuantArch]], np.ndarray]


@dataclass(frozen=True)
class Evolution:
    population: int = 60
    generations: int = 20
    parents: float = 0.25
    mutate_prob: float = 0.1
    bit_flip_prob: float = 0.15
    seed: int = 0


def _sample(space, rng, resolutions, precision: bool) -> QuantArch:
    """A random subnet; with ``precision``, its bits all FP32, all INT8 or drawn per block (a third each).
    The uniform pairs are the fast ones where every change of precision inside the graph costs
    (measured on OpenVINO: ~11 µs a change on a 0.2 ms subnet, ``benchmarks/pair_latency.py``); bits
    drawn per block almost never give them."""
    a = space.sample(rng, resolutions)
    if not precision:
        return QuantArch.fp32(a)
    mode = rng.integers(3)
    return QuantArch(a, (mode == 1,) * space.n_slots if mode < 2 else tuple(rng.random(space.n_slots) < 0.5))


def _mutate(space, q: QuantArch, rng, ev: Evolution, resolutions, precision: bool) -> QuantArch:
    a = space.mutate(q.arch, rng, ev.mutate_prob)
    if a.r not in resolutions:
        a = space.arch(a.ks, a.e, a.d, int(rng.choice(list(resolutions))))
    bits = tuple((b != (rng.random() < ev.bit_flip_prob)) if precision else False for b in q.int8)
    return QuantArch(a, bits)


def _cross(space, p: QuantArch, q: QuantArch, rng) -> QuantArch:
    g1, g2 = space.to_genome(p.arch), space.to_genome(q.arch)
    g = np.where(rng.random(len(g1)) < 0.5, g1, g2)
    bits = tuple(bool(x) for x in np.where(rng.random(len(p.int8)) < 0.5, p.int8, q.int8))
    return QuantArch(space.from_genome(g), bits)


def evolve(space_name: str, accuracy: PairFn, latency: PairFn, budget_ms: float, ev: Evolution = Evolution(),
           resolutions: Sequence[int] | None = None, precision: bool = True) -> list[tuple[QuantArch, float, float]]:
    """Every distinct pair met, under the predicted budget, as ``(pair, accuracy, latency)`` best first."""
    from hwnas.supernet.spaces import get_space

    sp = get_space(space_name)
    res = list(resolutions or sp.resolutions)
    rng = np.random.default_rng(ev.seed)
    seen: dict[str, tuple[QuantArch, float, float]] = {}

    def score(pairs):
        new = [p for p in {p.key(): p for p in pairs}.values() if p.key() not in seen]
        if new:
            for p, a, t in zip(new, accuracy(new), latency(new)):
                seen[p.key()] = (p, float(a), float(t))
        return [seen[p.key()] for p in pairs]

    def feasible(make, n, tries=50):
        out = []
        for _ in range(n * tries):
            p, _, t = score([make()])[0]
            if t <= budget_ms:
                out.append(p)
            if len(out) == n:
                break
        return out

    pop = feasible(lambda: _sample(sp, rng, res, precision), ev.population)
    if not pop:
        raise BudgetError(f"No sampled subnet meets {budget_ms:g} ms predicted: raise the latency budget.")
    n_par = max(2, int(ev.parents * ev.population))
    for _ in range(ev.generations):
        ranked = sorted(score(pop), key=lambda x: -x[1])[:n_par]
        par = [p for p, _, _ in ranked]
        half = (ev.population - n_par) // 2
        kids = feasible(lambda: _mutate(sp, par[rng.integers(len(par))], rng, ev, res, precision), half, 10)
        kids += feasible(lambda: _cross(sp, par[rng.integers(len(par))], par[rng.integers(len(par))], rng),
                         ev.population - n_par - len(kids), 10)
        pop = par + kids
    return sorted((x for x in seen.values() if x[2] <= budget_ms), key=lambda x: -x[1])


@dataclass
class Verified:
    pair: QuantArch
    predicted_top1: float
    predicted_ms: float
    measured_ms: float
    meets_budget: bool
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"pair": self.pair.to_dict(), "pair_str": self.pair.to_str(), "predicted_top1": self.predicted_top1,
                "predicted_ms": self.predicted_ms, "measured_ms": self.measured_ms,
                "meets_budget": self.meets_budget, **self.extra}


def verify(ranked: list[tuple[QuantArch, float, float]], measure: Callable[[QuantArch], float], budget_ms: float,
           top_k: int = 3, max_measurements: int = 12, rescore: Callable[[list, list], PairFn] | None = None,
           say: Callable[[str], None] | None = None) -> list[Verified]:
    """The closed loop over ranked pairs: measure best-predicted first; after each measurement the
    remaining pairs are re-priced by ``rescore(measured pairs, measured ms)`` and those predicted over
    budget skipped. Returns every measured pair, those meeting the budget first (best predicted first)."""
    say = say or (lambda m: None)
    todo, done = list(ranked), []
    while todo and len(done) < max_measurements and sum(v.meets_budget for v in done) < top_k:
        p, acc, pred = todo.pop(0)
        ms = float(measure(p))
        done.append(Verified(p, acc, pred, ms, ms <= budget_ms))
        say(f"measured {p.to_str()}: {ms:.4f} ms (predicted {pred:.4f}) — "
            f"{'meets' if ms <= budget_ms else 'over'} {budget_ms:g} ms")
        if rescore is not None and todo:
            lat = rescore([v.pair for v in done], [v.measured_ms for v in done])
            new = lat([q for q, _, _ in todo])
            todo = [(q, a, float(t)) for (q, a, _), t in zip(todo, new) if t <= budget_ms]
    return sorted(done, key=lambda v: (not v.meets_budget, -v.predicted_top1))
