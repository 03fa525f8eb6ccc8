"""Searching a mixed-precision policy: the lowest latency under an accuracy-drop budget.

Items are *layer groups* — the stem, each MBConv block (its 2–4 convolutions quantized
together, so no Q/DQ pair sits inside a block) and the head — expressed as name patterns
in the policy. For each group, measured on the target device:

* sensitivity: accuracy drop (points) when only that group is INT8;
* gain: latency saved (ms) when only that group is INT8 — negative where Q/DQ conversions
  cost more than the INT8 kernel saves (common for depthwise, SE and h-swish layers on CPUs).
  With a ``gain`` function (:func:`hwnas.exporting.gains.paired_gain`) it is measured in
  context, interleaved against the FP32 model until its confidence interval excludes zero, or
  declared "no measurable gain"; only groups with a measurable gain are chosen.

Search (a greedy knapsack, defended by its verification step): take groups with positive
gain in order of gain per point of sensitivity while the summed sensitivity fits the budget;
then *measure* that policy end to end, and while its real drop exceeds the budget revert
the most sensitive INT8 group (NNCF's accuracy-control idea). All-INT8 and FP32 are
measured too. When all-INT8 is faster but breaks the budget, a top-down pass reverts the most
sensitive groups from all-INT8 one at a time (runtimes such as OpenVINO gain only once whole
chains run in INT8, so no single group shows a gain on its own). The fastest policy whose
measured drop fits the budget wins. Every candidate tried is recorded with its measured
accuracy and latency.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hwnas.errors import BudgetError
from hwnas.types import PrecisionPolicy, Rule

EvalFn = Callable[[Path], float]  # model path → accuracy (%)
LatencyFn = Callable[[Path], float]  # model path → latency (ms)
BuildFn = Callable[[PrecisionPolicy, Path], Path]  # policy, out path → quantized model path


@dataclass(frozen=True)
class Group:
    name: str
    pattern: str
    layers: tuple[str, ...]


@dataclass(frozen=True)
class GroupCost:
    group: str
    pattern: str
    n_layers: int
    sensitivity_pts: float
    gain_ms: float
    gain_ci_ms: tuple[float, float] | None = None
    verdict: str = "gain"  # gains.py's verdict; a plain latency difference is taken as it is

    @property
    def useful(self) -> bool:
        """A measurable latency gain (positive, its interval above zero where one was measured)."""
        return self.gain_ms > 0 and self.verdict == "gain"


def layer_groups(nodes: Sequence[str]) -> list[Group]:
    """Group exported node names into the stem (``/first_conv/...``), one group per block
    (``/blocks.N/...``: its convolutions, activations, SE and residual add) and the head (the rest)."""
    groups: dict[str, list[str]] = {}
    for n in nodes:
        m = re.match(r"^/blocks\.(\d+)/", n)
        key = f"block{int(m.group(1)):02d}" if m else ("stem" if n.startswith("/first_conv/") else "head")
        groups.setdefault(key, []).append(n)
    out = []
    for key, names in sorted(groups.items()):
        if key.startswith("block"):
            pattern = rf"/blocks\.{int(key[5:])}/.*"
        elif key == "stem":
            pattern = r"/first_conv/.*"
        else:  # the head's nodes by name; OpenVINO appends suffixes such as "/WithoutBiases"
            pattern = "(" + "|".join(re.escape(x) for x in names) + ")(/.*)?"
        out.append(Group(key, pattern, tuple(names)))
    return out


def only(groups: Sequence[Group], int8: Sequence[str], other: str = "fp32") -> PrecisionPolicy:
    """INT8 for the named groups, ``other`` (a float precision) elsewhere; every group named: all INT8."""
    sel = [g for g in groups if g.name in set(int8)]
    if len(sel) == len(groups):
        return PrecisionPolicy("int8", (), {"int8_groups": [g.name for g in sel]}, other)
    return PrecisionPolicy(other, tuple(Rule(g.pattern, "int8") for g in sel), {"int8_groups": [g.name for g in sel]},
                           other)


@dataclass
class Trial:
    label: str
    int8_groups: list[str]
    accuracy: float
    latency_ms: float


GainFn = Callable[[Path], "object"]  # candidate path → hwnas.exporting.gains.Gain against the float model


def group_costs(groups: Sequence[Group], build: BuildFn, evaluate: EvalFn, latency: LatencyFn,
                fp32_acc: float, fp32_ms: float, workdir: Path, progress=None, gain: GainFn | None = None,
                other: str = "fp32") -> list[GroupCost]:
    """Sensitivity and gain of each group alone in INT8 (``other`` elsewhere). With ``gain``, the gain is
    the paired in-context measurement against the float model and carries its interval and verdict."""
    costs = []
    for i, g in enumerate(groups):
        path = build(only(groups, [g.name], other), workdir / f"only-{g.name}")  # the quantizer's own format
        acc = evaluate(path)
        if gain is not None:
            m = gain(path)
            c = GroupCost(g.name, g.pattern, len(g.layers), fp32_acc - acc, m.gain_ms, tuple(m.gain_ci_ms), m.verdict)
        else:
            c = GroupCost(g.name, g.pattern, len(g.layers), fp32_acc - acc, fp32_ms - latency(path))
        costs.append(c)
        if progress is not None:
            ci = f" (CI {c.gain_ci_ms[0]:+.4f}..{c.gain_ci_ms[1]:+.4f}: {c.verdict})" if c.gain_ci_ms else ""
            progress(f"sensitivity {i + 1}/{len(groups)} {g.name}: drop {c.sensitivity_pts:+.2f} pts, "
                     f"gain {c.gain_ms:+.4f} ms{ci}")
    return costs


def search_policy(groups: Sequence[Group], costs: Sequence[GroupCost], budget_pts: float, build: BuildFn,
                  evaluate: EvalFn, latency: LatencyFn, fp32_acc: float, fp32_ms: float, workdir: Path,
                  max_reverts: int = 8, progress=None, other: str = "fp32") -> tuple[PrecisionPolicy, list[Trial], Path]:
    """Return (chosen policy, every measured trial, the chosen quantized model's path).

    Raises :class:`BudgetError` with the best reachable drop when not even one group can be
    quantized within the budget and FP32 is the only answer — callers may then ship FP32.
    """
    trials: list[Trial] = [Trial(other, [], fp32_acc, fp32_ms)]
    paths: dict[str, Path] = {}

    def run(label: str, names: list[str]) -> Trial:
        p = build(only(groups, names, other), workdir / label)  # the quantizer's own format (what is deployed)
        t = Trial(label, sorted(names), evaluate(p), latency(p))
        trials.append(t)
        paths[label] = p
        if progress is not None:
            progress(f"{label}: {len(names)}/{len(groups)} groups INT8, top-1 {t.accuracy:.2f} %, {t.latency_ms:.4f} ms")
        return t

    all8 = run("all-int8", [g.name for g in groups])
    useful = [c for c in costs if c.useful]
    useful.sort(key=lambda c: -c.gain_ms / max(c.sensitivity_pts, 0.01))
    chosen, spent = [], 0.0
    for c in useful:
        if spent + max(c.sensitivity_pts, 0.0) <= budget_pts:
            chosen.append(c.group)
            spent += max(c.sensitivity_pts, 0.0)
    sens = {c.group: c.sensitivity_pts for c in costs}
    if chosen:
        t = run("mixed", chosen)
        reverts = 0
        while fp32_acc - t.accuracy > budget_pts and chosen and reverts < max_reverts:
            worst = max(chosen, key=lambda n: sens[n])
            chosen = [n for n in chosen if n != worst]
            reverts += 1
            if chosen:
                t = run(f"mixed-r{reverts}", chosen)
    # top-down, as NNCF's accuracy-aware quantization does: when all-INT8 is faster but breaks the
    # budget (e.g. a runtime that only gains once whole chains are INT8, so no single group gains),
    # revert the most sensitive groups one by one until the budget holds
    if fp32_acc - all8.accuracy > budget_pts and all8.latency_ms < fp32_ms:
        keep = [g.name for g in groups]
        tried = {tuple(t.int8_groups) for t in trials}
        for k, worst in enumerate(sorted(keep, key=lambda n: -sens[n])[:max_reverts], 1):
            keep = [n for n in keep if n != worst]
            if not keep:
                break
            if tuple(sorted(keep)) in tried:
                continue
            t = run(f"all-int8-r{k}", keep)
            if fp32_acc - t.accuracy <= budget_pts:
                break
    ok = [t for t in trials if fp32_acc - t.accuracy <= budget_pts]
    best = min(ok, key=lambda t: t.latency_ms)
    faster = [t for t in trials[1:] if t.latency_ms < fp32_ms]
    if best.label == other and faster:  # (if no INT8 policy is faster, FP32 is simply the right answer)
        raise BudgetError(f"No faster INT8 policy meets an accuracy-drop budget of {budget_pts:g} pts; the smallest "
                          f"measured drop of a faster policy is {min(fp32_acc - t.accuracy for t in faster):.2f} pts. "
                          "Raise --max-accuracy-drop or export --precision fp32.")
    policy = PrecisionPolicy.uniform(other) if best.label == other else only(groups, best.int8_groups, other)
    policy = PrecisionPolicy(policy.default, policy.rules, {
        **policy.notes, "search": "greedy knapsack over layer groups + measured verification",
        "budget_pts": budget_pts, "costs": [asdict(c) for c in costs],
        "trials": [asdict(t) for t in trials], "chosen": best.label}, policy.fallback)
    return policy, trials, paths.get(best.label, Path())
