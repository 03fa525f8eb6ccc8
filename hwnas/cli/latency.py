"""Latency-model commands: ``fit`` (store a fitted model in a profile), ``predict`` (any subnet),
``evaluate`` (all models on held-out rows, beside the device's repeatability floor)."""

from __future__ import annotations

from hwnas.cli import Output, command
from hwnas.config import EvaluateConfig, FitConfig, PredictConfig


@command("fit", FitConfig)
def fit_cmd(cfg: FitConfig, out: Output) -> None:
    from hwnas.devices import parse_options
    from hwnas.latency_models import fit_and_score, resolve_space
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(cfg.profile)
    prof.check_writable()
    space = resolve_space(prof, cfg.space)
    params = parse_options(cfg.param or {})
    res: dict = {}
    if cfg.active:
        from hwnas.latency_models.active import active_sampling
        from hwnas.pipeline import measure_archs

        res["active_sampling"] = active_sampling(
            prof, cfg.model[0], lambda archs: measure_archs(prof, archs, kind="active", checkpoint=cfg.checkpoint),
            goal_within_10=cfg.goal, budget_s=cfg.budget_s, batch=cfg.batch, target=cfg.target, space=space,
            progress=out.say, **params)
        prof = DeviceProfile.open(cfg.profile)
    for name in cfg.model:
        m = fit_and_score(prof, name, cfg.target, space, **params)
        path = prof.save_model(m)
        res[name] = {"path": str(path), "n_samples": m.n_samples_, "metrics": m.metrics_}
        met = m.metrics_ or {}
        out.print(f"{name}: fitted on {m.n_samples_} samples of {space} ({cfg.target}) → {path}"
                  + (f"; cross-validated {met['within_10']:.1%} within ±10 %, {met['within_5']:.1%} within ±5 %, "
                     f"MAPE {met['mape']:.1%}, Kendall τ {met['kendall_tau']:.3f}" if met else ""))
    if out.as_json:
        out.json(res)


@command("predict", PredictConfig)
def predict_cmd(cfg: PredictConfig, out: Output) -> None:
    from hwnas.pipeline.predictors import predict
    from hwnas.profiles import DeviceProfile
    from hwnas.types import ArchConfig

    prof = DeviceProfile.open(cfg.profile)
    archs = [ArchConfig.parse(a, cfg.space) for a in cfg.arch]
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if out.say is not None:
            out.say(line)

    rows = predict(prof, archs, cfg.device, cfg.threads, cfg.model, cfg.calibrate, cfg.coverage, cfg.checkpoint, say)
    if out.as_json:
        return out.json(rows)
    for r in rows:
        out.print(f"{r['arch']}: latency {r['latency_ms']:.3f} ms{interval_text(r)} ({r['models']['latency_ms']})"
                  + "".join(f", {t} {r[t]:.3f} ({r['models'][t]}, the profile's figure)" for t in r["models"]
                            if t != "latency_ms" and t in r))
    if not any(line.startswith(rows[0]["calibration"]) for line in said):
        out.print(f"[dim]{rows[0]['calibration']}[/dim]")


def interval_text(row: dict) -> str:
    """' (90% interval a–b)', or why there is none: an unbounded interval is named, never printed as 0–inf."""
    import math

    iv = row.get("latency_ms_interval")
    if not iv:
        return ""
    if not math.isfinite(iv[1]):
        return (f" (no {row['coverage']:.0%} interval: too few out-of-sample errors for that coverage; "
                "calibrate on more subnets or lower --coverage)")
    return f" ({row['coverage']:.0%} interval {iv[0]:.3f}–{iv[1]:.3f})"


@command("evaluate", EvaluateConfig)
def evaluate_cmd(cfg: EvaluateConfig, out: Output) -> None:
    from hwnas.latency_models.metrics import evaluate_models, plot_predictions
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(cfg.profile)
    res = evaluate_models(prof, list(cfg.models), cfg.target, cfg.space, cfg.folds)
    res["plots"] = plot_predictions(res, cfg.plots) if cfg.plots is not None else []
    if out.as_json:
        return out.json({**res, "models": {k: {kk: vv for kk, vv in v.items() if kk not in ("measured", "predicted",
                                                                                          "archs")}
                                           for k, v in res["models"].items()}})
    from rich.table import Table

    unit = "ms" if cfg.target.endswith("_ms") else cfg.target.rsplit("_", 1)[-1]
    t = Table("model", f"RMSE ({unit})", "MAPE", "±5 %", "±10 %", "Kendall τ", "Spearman",
              title=f"{res['space']} {cfg.target}: {res['protocol']}")
    for name, r in res["models"].items():
        if "error" in r:
            t.add_row(name, r["error"][:60], "", "", "", "", "")
            continue
        t.add_row(name, f"{r['rmse']:.3f}", f"{r['mape']:.1%}", f"{r['within_5']:.0%}", f"{r['within_10']:.0%}",
                  f"{r['kendall_tau']:.3f}", f"{r['spearman']:.3f}")
    floor = res.get("floor") or {}
    for est in ("normalised", "median", "min"):
        if est in floor:
            f = floor[est]
            t.add_row(f"[dim]device floor ({est})[/dim]", "", f"{f['median_dev']:.1%}*", f"{f['within_5']:.0%}",
                      f"{f['within_10']:.0%}", "", "")
    out.print(t)
    if floor.get("n_pairs"):
        out.print(f"[dim]device floor: the same {floor['n_pairs']} archs re-measured minutes later (* median "
                  "deviation); models are scored against the normalised figure[/dim]")
    else:
        out.print("[dim]no re-measured archs in this profile: profile with --repeats to see the device's floor[/dim]")
    if res["plots"]:
        out.print(f"plots: {', '.join(res['plots'])}")
