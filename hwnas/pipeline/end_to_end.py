"""``hwnas quickstart``: the three jobs end to end on this machine, on embedded defaults.

profile (or reuse a shipped profile of this very CPU and runtime, as a working copy) → fit and
evaluate a latency model → search under the budget (default: the profile's median subnet) →
export with a searched mixed-precision policy → verify on the device → a Markdown report.
Writes ``out/profile``, ``out/search``, ``out/bundle`` and ``out/report.md`` (+ PNGs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hwnas.config import QuickstartConfig
from hwnas.types import Say


def run(cfg: QuickstartConfig, progress: Say | None = None) -> dict[str, Any]:
    from hwnas.fileio import atomic_write_json
    from hwnas.pipeline import jobs

    say = progress or (lambda msg: None)
    t0, timings = time.time(), {}
    out = prepare(cfg.out)
    dev = jobs.device_from(cfg.device, cfg.threads)
    t = time.time()
    prof, profile_note = profile_step(cfg, dev, out / "profile", say)
    timings["profile_s"], t = time.time() - t, time.time()
    model_name, ev, plots = latency_step(cfg, prof, out, say)
    dm = calibrate_step(cfg, prof, dev, model_name, say)
    timings["fit_s"], t = time.time() - t, time.time()
    budget = cfg.latency_budget_ms if cfg.latency_budget_ms is not None else median_budget(prof, cfg.space, dm, say)
    front, best = search_step(cfg, prof, out / "search", budget, model_name, say)
    timings["search_s"], t = time.time() - t, time.time()
    bundle, choice = export_step(cfg, out, best, say)
    timings["export_s"], t = time.time() - t, time.time()
    check = jobs.verify(bundle=bundle.path)
    timings["verify_s"] = time.time() - t
    say(f"[5/5] verify: hashes ok, accuracy {'ok' if check.accuracy.ok else 'MISMATCH'}, latency "
        f"{'ok' if check.latency.ok else 'MISMATCH'} ({check.latency.diff:+.1%})")
    timings["total_s"] = time.time() - t0
    summary = summarize(cfg, profile_note, best, budget, bundle, check, ev["models"][model_name], timings)
    summary["calibration"], summary["choice"] = dm.note, choice
    summary["report"] = str(report_step(out, summary, front, ev, plots, bundle))
    atomic_write_json(out / "quickstart.json", summary)
    return summary


def prepare(out) -> Path:
    from hwnas.errors import ConfigError

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "quickstart.json").exists() and not (out / "profile").exists():
        raise ConfigError(f"'{out}' exists and is not a quickstart run: choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def profile_step(cfg: QuickstartConfig, dev, prof_dir: Path, say: Say):
    """A working copy of the shipped profile of this CPU and runtime, else a quick profile of its own."""
    from hwnas.pipeline import jobs
    from hwnas.profiles import DeviceProfile

    shipped = matching_shipped_profile(cfg.space, dev) if cfg.reuse_shipped else None
    if prof_dir.exists():
        return DeviceProfile.open(prof_dir), "the profile of an earlier run in this directory"
    if shipped is not None:
        DeviceProfile.open(shipped).copy_to(prof_dir)
        say(f"[1/5] reusing the shipped profile '{shipped.name}': same CPU ({dev.hardware()}), runtime "
            f"{dev.spec().runtime} {dev.spec().runtime_version}, {cfg.threads} thread(s)")
        return DeviceProfile.open(prof_dir), f"shipped profile {shipped.name} (host and runtime match)"
    say(f"[1/5] profiling this CPU with {cfg.device} ({cfg.threads} thread(s)): {cfg.samples} subnets + "
        f"{cfg.reference_set} reference archs{' + block table' if cfg.ops else ''}")
    rep = jobs.profile(space=(cfg.space,), out=prof_dir, device=cfg.device, threads=cfg.threads, samples=cfg.samples,
                       reference_set=cfg.reference_set, repeats=cfg.repeats, ops=cfg.ops)
    return rep.profile, f"quick profile: {rep.spaces[cfg.space].get('measured', '?')} measurements"


def matching_shipped_profile(space: str, device) -> Path | None:
    """A shipped profile measured on this very CPU with the same runtime, version and settings, if any."""
    import json

    from hwnas.profiles.profile import SHIPPED_DIR

    if not SHIPPED_DIR.is_dir():
        return None
    spec_id, cpu = device.spec().id(), device.host_facts().get("cpu")
    for d in sorted(p for p in SHIPPED_DIR.iterdir() if (p / "device.json").is_file()):
        meta = json.loads((d / "device.json").read_text())
        if meta.get("spec_id") == spec_id and meta.get("host", {}).get("cpu") == cpu and space in meta.get("spaces", {}):
            return d
    return None


def latency_step(cfg: QuickstartConfig, prof, out: Path, say: Say):
    """Fit, store and evaluate the latency model (hybrid where there is a block table, else e2e)."""
    from hwnas.latency_models import fit_latency_model
    from hwnas.latency_models.metrics import evaluate_models, plot_predictions

    name = "e2e" if prof.ops_df(cfg.space).empty else "hybrid"  # a reused profile may carry no block table
    prof.save_model(fit_latency_model(prof, name, space=cfg.space))
    ev = evaluate_models(prof, ["flops", name], space=cfg.space)
    plots = plot_predictions(ev, out / "latency")
    m = ev["models"][name]
    say(f"[2/5] latency model '{name}': {m['within_10']:.0%} within ±10 %, Kendall τ {m['kendall_tau']:.3f} "
        f"({ev['protocol']})")
    return name, ev, plots


def calibrate_step(cfg: QuickstartConfig, prof, dev, model_name: str, say: Say):
    """The profile's latency model checked on this device (a shipped profile is calibrated here)."""
    from hwnas.pipeline.predictors import device_latency_model

    dm = device_latency_model(prof, cfg.space, dev, model=model_name, say=say)
    if dm.calibration is None:
        say(f"      {dm.note}")
    return dm


def median_budget(prof, space: str, dm, say: Say) -> float:
    """The median profiled subnet's latency on this device now (the calibrated prediction)."""
    import numpy as np

    from hwnas.types import ArchConfig

    archs = [ArchConfig.parse(a) for a in prof.models_df(space, kinds=["random", "reference"])["arch"]]
    budget = float(np.round(np.percentile(dm.model.predict(archs), 50), 4))
    say(f"[3/5] no budget given: using the median profiled subnet's latency on this device, {budget:g} ms")
    return budget


def search_step(cfg: QuickstartConfig, prof, run_dir: Path, budget: float, model: str, say: Say):
    from hwnas.errors import BudgetError
    from hwnas.pipeline import jobs

    if cfg.latency_budget_ms is not None:
        say(f"[3/5] searching under {budget:g} ms")
    front = jobs.search(space=cfg.space, profile=prof.root, out=run_dir, latency_budget_ms=budget, seed=cfg.seed,
                        generations=cfg.generations, pop_size=cfg.pop_size, latency_model=model, progress=say)
    if front.best is None:
        raise BudgetError(f"No subnet met {budget:g} ms when measured; see {run_dir} and try a larger "
                          "--latency-budget-ms.")
    return front, front.candidates[front.best]


def export_step(cfg: QuickstartConfig, out: Path, best, say: Say):
    """The bundle for the best measured runtime × precision policy here, and one line saying why."""
    from hwnas.exporting.choose import installed_among
    from hwnas.pipeline import jobs

    devices = installed_among(cfg.export_devices)
    say(f"[4/5] exporting {best.arch.to_str()}: every precision policy on {devices.replace(',', ', ')}, the fastest "
        f"measured within {cfg.max_accuracy_drop:g} pts deployed")
    bundle = jobs.export(out=out / "bundle", run=out / "search", device=devices, threads=cfg.threads,
                         precision="mixed", max_accuracy_drop=cfg.max_accuracy_drop, overwrite=True,
                         mixed_per_runtime=cfg.mixed_per_runtime, progress=lambda msg: say(f"      {msg}"))
    m = bundle.manifest
    choice = m.selection.get("reason") or (f"{m.device['name']} {m.policy_label}: the only runtime asked for, "
                                           f"{m.latency.speedup_vs_fp32:.2f}x its FP32")
    say(f"      deployed {choice}")
    return bundle, choice


def summarize(cfg: QuickstartConfig, profile_note: str, best, budget: float, bundle, check, model_metrics,
              timings) -> dict[str, Any]:
    m = bundle.manifest
    measured = (best.measured or {}).get("latency_ms")
    return {
        "space": cfg.space, "device": cfg.device, "threads": cfg.threads, "profile": profile_note,
        "arch": best.arch.to_str(), "latency_budget_ms": budget, "predicted_ms": best.objectives.get("latency_ms"),
        "measured_ms": measured, "deployed_ms": m.latency.measured_ms, "fp32_ms": m.latency.fp32_ms,
        "fp32_top1": m.accuracy.fp32_top1, "deployed_top1": m.accuracy.deployed_top1, "precision": m.policy_summary,
        "peak_memory_mb": m.memory.peak_rss_mb, "analytic_memory_mb": m.memory.analytic_mb, "bundle": str(bundle.path),
        "verified": check.ok, "meets_budget_measured": measured is not None and measured <= budget,
        "latency_model": {k: model_metrics[k] for k in ("within_5", "within_10", "kendall_tau", "mape")},
        "timings_s": timings,
    }


def report_step(out: Path, summary: dict, front, ev: dict, plots: list[str], bundle) -> Path:
    from hwnas.report import write_report

    return write_report(out, summary, front, ev, plots, bundle.manifest)
