"""The runtime chosen by measurement: every installed runtime × precision policy, under the accuracy budget.

For each device (``--device auto``: every runtime installed here; or a comma list) and each float
inference precision its CPU has (FP32 everywhere; BF16 / FP16 on OpenVINO where the ISA has them):

* the float model as it is (uniform FP32 / BF16 / FP16);
* all layers INT8, the rest in that float precision (``int8``, ``int8+bf16``), where the runtime
  has a quantizer;
* a mixed policy searched per layer group on that device (:mod:`hwnas.exporting.mixed`), for
  the runtime's ``mixed_per_runtime`` fastest float precisions where all-INT8 is faster than the
  float model but over the budget (each search costs a minute or so).

Each candidate's accuracy is measured on the validation images through its runtime; its latency is
a paired, interleaved comparison against the baseline — ONNX Runtime FP32 when it is among the
devices, else the first device's FP32 — in the same process (:mod:`hwnas.exporting.gains`), so the
ratios are free of machine drift and carry confidence intervals. The fastest candidate within the
budget wins; the table of everything tried goes into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.devices import BASELINE_DEVICE
from hwnas.devices.base import Device
from hwnas.errors import BudgetError, ConfigError, DeviceError
from hwnas.exporting.gains import GainConfig, paired_gain
from hwnas.types import PrecisionPolicy



@dataclass
class Tried:
    """One runtime × policy: validation accuracy, paired speed-up over the baseline, and whether it won."""

    runtime: str
    precision: str  # the device's inference precision for non-INT8 layers
    policy: str  # policy label: fp32, bf16, int8, int8+bf16, mixed int8/bf16
    accuracy: float
    drop_pts: float
    within_budget: bool
    latency_ms: float | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    verdict: str = ""
    chosen: bool = False
    note: str = ""
    model: Path | None = field(default=None, repr=False)
    policy_obj: PrecisionPolicy | None = field(default=None, repr=False)
    weighted_layers: list[str] = field(default_factory=list, repr=False)
    trials: list[dict] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "policy_obj", "weighted_layers", "trials"):
            d.pop(k)
        return d

    def name(self) -> str:
        return f"{self.runtime} {self.policy}"


@dataclass(frozen=True)
class Choice:
    device: Device
    base_device: Device
    winner: Tried
    table: list[Tried]
    baseline: str
    reason: str


def device_names(spec: str, threads: int) -> list[str]:
    """``auto`` → the installed runtimes; ``a,b`` → those devices (checked to exist)."""
    from hwnas.devices import installed_cpu_devices

    names = installed_cpu_devices() if spec.strip() == "auto" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ConfigError("No runtime to choose from: install one (pip install 'hwnas[openvino]') or name --device.")
    return names


def installed_among(spec: str) -> str:
    """The devices of a comma list that are installed here, as a list again (``auto`` as it is)."""
    from hwnas.devices import installed_cpu_devices

    if spec.strip() == "auto" or not is_choice(spec):
        return spec
    have = set(installed_cpu_devices())
    names = [n for n in device_names(spec, 1) if n in have or "@" in n]
    return ",".join(names) or spec


def is_choice(spec: str) -> bool:
    """``auto`` or a comma list of devices (``BACKEND@BOARD1,BOARD2`` is one remote device, not a list)."""
    return spec.strip() == "auto" or ("," in spec and "@" not in spec)


def variants(dev: Device, precisions: Sequence[str], mode: str) -> list[tuple[Device, str]]:
    """(device at that inference precision, 'uniform' | 'int8') to try; float precisions the host lacks skipped."""
    floats = [p for p in dev.float_precisions() if not precisions or p in precisions]
    out = []
    for p in floats:
        d = dev.with_precision(p)
        out.append((d, "uniform"))
        if mode in ("int8", "mixed") and type(d).quantizer is not Device.quantizer:
            out.append((d, "int8"))
    return out


def choose(devices: Sequence[Device], fp32: Path, calibration, evaluator: Callable[[Device], Any], budget_pts: float,
           mode: str, work: Path, say, precisions: Sequence[str] = (), mixed_per_runtime: int = 1,
           gain_cfg: GainConfig = GainConfig()) -> Choice:
    """Try every runtime × policy (see the module doc) and return the fastest within ``budget_pts``."""
    base_dev = next((d for d in devices if d.name == BASELINE_DEVICE and d.precision == "fp32"), devices[0])
    base_dev = base_dev.with_precision("fp32")
    ref_acc = evaluator(base_dev).accuracy(fp32)
    table: list[Tried] = []
    for dev in devices:
        for d, kind in variants(dev, precisions, mode):
            try:
                table.append(_try_uniform(d, kind, fp32, calibration, evaluator(d), ref_acc, budget_pts, work))
            except DeviceError as exc:  # e.g. the runtime ran another precision than asked: not a candidate
                say(f"{d.name} {d.precision} {kind}: refused ({exc})")
                continue
            _time(table[-1], base_dev, fp32, d, gain_cfg, say)
        if mode == "mixed":
            for d in _mixed_precisions(dev, table, mixed_per_runtime):
                t = _try_mixed(d, fp32, calibration, evaluator(d), ref_acc, budget_pts, work, say)
                if t is not None:
                    table.append(t)
                    _time(t, base_dev, fp32, d, gain_cfg, say)
    return _pick(table, devices, base_dev, budget_pts)


def _try_uniform(d: Device, kind: str, fp32: Path, calibration, ev, ref_acc: float, budget: float, work: Path) -> Tried:
    if kind == "uniform":
        policy, model, layers = PrecisionPolicy.uniform(d.precision), fp32, []
    else:
        q = d.quantizer(fp32, _dir(work, d), calibration)
        policy = PrecisionPolicy("int8", (), {}, d.precision)
        model, layers = q.build(policy, _dir(work, d) / "all-int8"), q.weighted_layers()
    acc = ev.accuracy(model)
    return Tried(d.name, d.precision, policy.label(), acc, ref_acc - acc, ref_acc - acc <= budget, model=model,
                 policy_obj=policy, weighted_layers=layers)


def _try_mixed(d: Device, fp32: Path, calibration, ev, ref_acc: float, budget: float, work: Path,
               say) -> Tried | None:
    from hwnas.exporting.build import choose_policy

    try:
        ch = choose_policy("mixed", budget, d, fp32, calibration, ev, ev.latency(fp32), _dir(work, d) / "mixed",
                           say)
    except BudgetError as exc:
        say(f"{d.name} {d.precision}: no mixed policy within the budget ({exc})")
        return None
    if "int8" not in ch.policy.precisions():
        return None  # the search kept the float model: already in the table
    acc = ev.accuracy(ch.model)
    return Tried(d.name, d.precision, ch.policy.label(), acc, ref_acc - acc, ref_acc - acc <= budget,
                 model=ch.model, policy_obj=ch.policy, weighted_layers=ch.weighted_layers, trials=ch.trials)


def _mixed_precisions(dev: Device, table: list[Tried], n: int) -> list[Device]:
    """The runtime's ``n`` float precisions where all-INT8 ran faster than the float model but broke the
    accuracy budget, fastest first: there a mixed policy is what brings INT8's speed within the budget.
    Where INT8 everywhere does not gain, single groups seldom do (their Q/DQ conversions cost the same),
    and where it already fits the budget it is a candidate itself: a search would spend a minute or so
    (measured: a Fashion-MNIST subnet on OpenVINO, every group alone in INT8 slower) for the same answer."""
    if n <= 0 or type(dev).quantizer is Device.quantizer:
        return []
    rows = {(t.precision, t.policy.startswith("int8")): t for t in table if t.runtime == dev.name and t.speedup}
    worth = {p: t.speedup for (p, is8), t in rows.items() if is8 and (p, False) in rows
             and t.speedup > rows[(p, False)].speedup and not t.within_budget}
    return [dev.with_precision(p) for p in sorted(worth, key=lambda p: -worth[p])[:n]]


def _time(t: Tried, base_dev: Device, fp32: Path, d: Device, cfg: GainConfig, say) -> None:
    if d.name == base_dev.name and d.precision == "fp32" and t.model == fp32:
        t.speedup, t.speedup_ci, t.verdict = 1.0, (1.0, 1.0), "baseline"
        return
    g = paired_gain(base_dev, fp32, d, t.model, cfg)
    t.latency_ms, t.speedup, t.speedup_ci, t.verdict = g.candidate_ms, g.speedup, tuple(g.speedup_ci), g.verdict
    t.note = f"baseline {g.baseline_ms:.4f} ms in this pairing, {g.n_pairs} pairs"
    say(f"{t.name()}: top-1 {t.accuracy:.2f} % (drop {t.drop_pts:+.2f} pts), {g.describe()} vs "
        f"{base_dev.name} fp32")


def _pick(table: list[Tried], devices: Sequence[Device], base_dev: Device, budget: float) -> Choice:
    paired = [t.latency_ms * t.speedup for t in table if t.latency_ms is not None]
    for t in table:
        if t.verdict == "baseline" and paired:  # its own milliseconds: the median of its pairings
            t.latency_ms = float(sorted(paired)[len(paired) // 2])
    ok = [t for t in table if t.within_budget and t.speedup is not None]
    if not ok:
        raise BudgetError(f"No runtime × policy met an accuracy-drop budget of {budget:g} pts (smallest drop "
                          f"{min(t.drop_pts for t in table):.2f}); raise --max-accuracy-drop.")
    gains = [t for t in ok if t.verdict == "gain"]  # faster beyond the noise; else the baseline stays
    base = next((t for t in ok if t.verdict == "baseline"), None)
    win = max(gains, key=lambda t: t.speedup) if gains else base or max(ok, key=lambda t: t.speedup)
    win.chosen = True
    dev = next(d for d in devices if d.name == win.runtime).with_precision(win.precision)
    return Choice(dev, base_dev, win, table, f"{base_dev.name} fp32", reason(win, table, base_dev.name, budget))


def reason(win: Tried, table: list[Tried], base: str, budget: float) -> str:
    """One line: why this runtime × policy was deployed."""
    lo, hi = win.speedup_ci
    if win.verdict == "baseline":
        rivals = [t for t in table if not t.chosen and t.within_budget and t.speedup is not None]
        best = max(rivals, key=lambda t: t.speedup, default=None)
        tail = (f"; the best other, {best.name()}, {best.speedup:.2f}x ({best.verdict})" if best else "")
        return f"{base} fp32: no runtime × policy within {budget:g} pts was measurably faster{tail}"
    rivals = [t for t in table if not t.chosen and t.within_budget and t.verdict == "gain"]
    second = max(rivals, key=lambda t: t.speedup, default=None)
    tie = (f"; runner-up {second.name()} {second.speedup:.2f}x, intervals overlap"
           if second is not None and second.speedup_ci[1] >= lo else "")
    return (f"{win.name()}: {win.speedup:.2f}x faster than {base} fp32 (CI {lo:.2f}-{hi:.2f}), "
            f"drop {win.drop_pts:.1f} pts <= {budget:g}{tie}")


def _dir(work: Path, d: Device) -> Path:
    p = Path(work) / f"{d.name}-{d.precision}"
    p.mkdir(parents=True, exist_ok=True)
    return p
