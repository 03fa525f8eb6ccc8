"""The timing loop, written once for every runtime.

A backend supplies a *runner*: a zero-argument callable that runs one inference
on pre-set inputs and returns when the result is ready. Everything else —
warm-up, repetition until a count or a time budget, summary statistics, and the
interleaved reference measurement that cancels machine drift — lives here.

Why interleave: on a shared machine the same model's median moves 5–15 % within
minutes, but the drift is common to everything running at that moment. Timing
the model and a fixed reference model in alternating short bursts and keeping
the median of the per-burst ratios gives a figure that repeats within a few
percent (see the README's measurement notes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hwnas.types import LatencyStats, ReferenceRatio

Runner = Callable[[], None]


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to run.

    ``warmup``: runs discarded first (at least ``warmup_s`` seconds of them);
    ``runs``: timed runs wanted, stopped early once ``budget_s`` is spent but never
    below ``min_runs``; ``bursts``/``burst_s``: interleaved measurement, each burst
    about ``burst_s`` seconds of model runs followed by as long of reference runs.
    """

    warmup: int = 10
    warmup_s: float = 0.05
    runs: int = 100
    min_runs: int = 10
    budget_s: float = 2.0
    bursts: int = 6
    burst_s: float = 0.05
    min_burst_runs: int = 5

    @classmethod
    def quick(cls) -> TimingConfig:
        """For block tables and tests: fewer runs, same statistics."""
        return cls(warmup=5, warmup_s=0.02, runs=40, min_runs=8, budget_s=0.5, bursts=4, burst_s=0.02,
                   min_burst_runs=3)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TimingConfig:
        """The inverse of :meth:`to_dict` (a profile's or a board's record); unknown keys are ignored."""
        from dataclasses import fields

        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def time_runs(run: Runner, n: int) -> list[float]:
    """Milliseconds of ``n`` back-to-back runs."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        run()
        out.append((clock() - t0) / 1e6)
    return out


def warm_up(run: Runner, cfg: TimingConfig) -> tuple[int, float]:
    """Run until ``cfg.warmup`` runs and ``cfg.warmup_s`` seconds are done.

    Returns (runs done, median ms of the second half of them): a latency estimate
    used to size bursts and to pick a reference.
    """
    samples: list[float] = []
    t_end = time.perf_counter() + cfg.warmup_s
    while len(samples) < cfg.warmup or time.perf_counter() < t_end:
        samples += time_runs(run, 1)
        if len(samples) >= 10_000:
            break
    return len(samples), float(np.median(samples[len(samples) // 2:]))


def burst_runs(est_ms: float, burst_s: float, min_runs: int) -> int:
    """Runs in a burst of about ``burst_s`` seconds of a model taking ``est_ms`` (at least ``min_runs``)."""
    return max(min_runs, int(burst_s * 1e3 / max(est_ms, 1e-3)))


def time_runner(run: Runner, cfg: TimingConfig = TimingConfig()) -> LatencyStats:
    """Plain timing: warm up, then ``cfg.runs`` runs or until ``cfg.budget_s`` (≥ ``cfg.min_runs``)."""
    n_warm, _ = warm_up(run, cfg)
    samples: list[float] = []
    t_end = time.perf_counter() + cfg.budget_s
    while len(samples) < cfg.runs:
        samples += time_runs(run, 1)
        if len(samples) >= cfg.min_runs and time.perf_counter() > t_end:
            break
    return LatencyStats.from_samples(samples, n_warm)


def time_interleaved(run: Runner, ref: Runner, cfg: TimingConfig = TimingConfig(),
                     ref_name: str = "reference") -> tuple[LatencyStats, ReferenceRatio, LatencyStats]:
    """Time ``run`` and ``ref`` in alternating bursts.

    Returns the model's raw statistics over all bursts, the reference ratio, and the
    reference's own statistics (so a profile can record how fast the machine was).
    """
    n_warm, est = warm_up(run, cfg)
    _, est_ref = warm_up(ref, cfg)
    k_model = burst_runs(est, cfg.burst_s, cfg.min_burst_runs)
    k_ref = burst_runs(est_ref, cfg.burst_s, cfg.min_burst_runs)
    model_s: list[float] = []
    ref_s: list[float] = []
    ratios: list[float] = []
    for b in range(cfg.bursts):
        # alternate which goes first so a slow start of a burst hits both equally
        if b % 2 == 0:
            m, r = time_runs(run, k_model), time_runs(ref, k_ref)
        else:
            r, m = time_runs(ref, k_ref), time_runs(run, k_model)
        model_s += m
        ref_s += r
        ratios.append(float(np.median(m) / np.median(r)))
    a = np.asarray(ratios)
    med = float(np.median(a))
    spread = float((np.percentile(a, 90) - np.percentile(a, 10)) / med) if med > 0 else float("inf")
    ref_stats = LatencyStats.from_samples(ref_s, 0)
    ratio = ReferenceRatio(ratio=med, ref_median_ms=ref_stats.median_ms, ratio_spread=spread,
                           n_bursts=cfg.bursts, reference=ref_name)
    return LatencyStats.from_samples(model_s, n_warm), ratio, ref_stats
