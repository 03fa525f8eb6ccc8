"""Latency gains that are real, not noise: paired, interleaved A/B measurement with a stopping rule.

A gain of a candidate model B over a baseline A (e.g. one layer group in INT8 vs all FP32) is
measured *in context* — the whole model runs — and *interleaved*: short bursts of A and B
alternate (A B, then B A, ...), so the machine's drift hits both alike. Each pair of bursts gives
one paired difference of log-latencies ``d = ln median(A burst) − ln median(B burst)``; their mean
is the log speed-up. Pairs are added a few at a time until one of:

* **gain** / **loss** — the confidence interval of the mean paired difference excludes zero and
  the point estimate is at least ``min_gain`` (relative) away from it;
* **no measurable gain** — the interval lies inside ``±min_gain`` (the two are equivalent for
  practical purposes), or the cap (pairs or seconds) is hit first.

The interval is Student-t over the pairs. Looking again after every few pairs would inflate false
positives, so each look uses a Bonferroni share of ``1 − confidence`` over the planned looks: two
identical models come out "no measurable gain", not a gain found by chance.

Works across runtimes (the runners are plain callables), so "OpenVINO INT8 vs ORT FP32" is one
paired comparison in one process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwnas.devices.timing import TimingConfig, burst_runs, time_runs, warm_up

Runner = Callable[[], None]
NO_GAIN = "no measurable gain"


@dataclass(frozen=True)
class GainConfig:
    """``confidence`` of the interval (over all looks); ``min_gain``: smallest relative change worth
    calling a gain; bursts of about ``burst_s`` seconds (at least ``min_burst_runs`` runs); ``step``
    pairs per look, from ``min_pairs`` up to ``max_pairs`` or ``max_s`` seconds."""

    confidence: float = 0.95
    # two sessions of one and the same model can differ by a few per cent for good (weight placement,
    # arena layout): A/A runs measured 1.9 % (CI 0.7-3.2 %), 2.5 % (CI 2.1-2.9 %) and, inside the full
    # test run, 3.1 % (CI 2.3-3.8 %), so a smaller "gain" is not the model's: it would not survive
    # loading the deployed model again
    min_gain: float = 0.05
    burst_s: float = 0.05
    min_burst_runs: int = 3
    min_pairs: int = 10  # >= 1 s of bursts: a foreign process's transient on a shared host does not decide alone
    step: int = 3
    max_pairs: int = 45
    max_s: float = 10.0

    @classmethod
    def quick(cls) -> GainConfig:
        """For tests and the quickstart: shorter bursts and a lower cap, the same statistics."""
        return cls(burst_s=0.015, min_pairs=6, step=3, max_pairs=30, max_s=4.0)


@dataclass(frozen=True)
class Gain:
    """Baseline and candidate milliseconds (median over their bursts; the candidate's is the baseline's
    divided by the paired speed-up), the gain ``baseline − candidate`` (ms) with its interval, the
    speed-up ``baseline / candidate`` with its interval, pairs used and the verdict."""

    baseline_ms: float
    candidate_ms: float
    gain_ms: float
    gain_ci_ms: tuple[float, float]
    speedup: float
    speedup_ci: tuple[float, float]
    n_pairs: int
    seconds: float
    verdict: str

    @property
    def measurable(self) -> bool:
        return self.verdict != NO_GAIN

    @property
    def faster(self) -> bool:
        """A measurable gain (the candidate is faster)."""
        return self.verdict == "gain"

    def to_dict(self) -> dict:
        return {**asdict(self), "measurable": self.measurable}

    def describe(self) -> str:
        lo, hi = self.speedup_ci
        return f"{self.speedup:.2f}x (CI {lo:.2f}-{hi:.2f}, {self.n_pairs} pairs): {self.verdict}"


def _burst(run: Runner, k: int) -> float:
    return float(np.median(time_runs(run, k)))


def _runs_per_burst(run: Runner, cfg: GainConfig) -> int:
    _, est = warm_up(run, TimingConfig(warmup=8, warmup_s=0.0))  # the profiler's warm-up and burst sizing
    return burst_runs(est, cfg.burst_s, cfg.min_burst_runs)


def t_quantile(p: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, dof))


def compare(baseline: Runner, candidate: Runner, cfg: GainConfig = GainConfig()) -> Gain:
    """Paired interleaved comparison of ``candidate`` against ``baseline`` (see the module doc)."""
    ka, kb = _runs_per_burst(baseline, cfg), _runs_per_burst(candidate, cfg)
    looks = max(1, math.ceil((cfg.max_pairs - cfg.min_pairs) / cfg.step) + 1)
    alpha = (1.0 - cfg.confidence) / looks
    band = math.log1p(cfg.min_gain)
    a_ms: list[float] = []
    d: list[float] = []
    t0 = time.perf_counter()
    verdict = NO_GAIN
    while True:
        target = cfg.min_pairs if len(d) < cfg.min_pairs else len(d) + cfg.step
        while len(d) < target:
            if len(d) % 2 == 0:
                a, b = _burst(baseline, ka), _burst(candidate, kb)
            else:
                b, a = _burst(candidate, kb), _burst(baseline, ka)
            a_ms.append(a)
            d.append(math.log(a) - math.log(b))
        mean, half = _interval(d, alpha)
        lo, hi = mean - half, mean + half
        if (lo > 0 or hi < 0) and abs(mean) >= band:
            verdict = "gain" if mean > 0 else "loss"
            break
        if -band < lo and hi < band:
            break  # equivalent within min_gain
        if len(d) >= cfg.max_pairs or time.perf_counter() - t0 > cfg.max_s:
            break
    base = float(np.median(a_ms))
    # report the interval at the overall confidence (the stopping rule used the stricter per-look one)
    mean, half = _interval(d, 1.0 - cfg.confidence)
    s, s_lo, s_hi = math.exp(mean), math.exp(mean - half), math.exp(mean + half)
    return Gain(base, base / s, base - base / s, (base - base / s_lo, base - base / s_hi), s, (s_lo, s_hi), len(d),
                time.perf_counter() - t0, verdict)


def _interval(d: list[float], alpha: float) -> tuple[float, float]:
    x = np.asarray(d)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("inf")
    return float(x.mean()), t_quantile(1.0 - alpha / 2.0, len(x) - 1) * se


def paired_gain(baseline_device, baseline: str | Path, candidate_device, candidate: str | Path,
                cfg: GainConfig = GainConfig()) -> Gain:
    """Load both models (on their devices, which may differ) and :func:`compare` them."""
    a = baseline_device.load(Path(baseline))
    b = candidate_device.load(Path(candidate))
    try:
        return compare(a.run, b.run, cfg)
    finally:
        a.close()
        b.close()
