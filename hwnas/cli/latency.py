"""Latency-model commands: ``fit`` (store a fitted model in a profile), ``predict`` (any subnet),
``evaluate`` (all models on held-out rows, beside the device's repeatability floor)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json, parse_arch


@app.command("fit")
def fit_cmd(
    profile: Path = typer.Argument(..., help="Profile directory."),
    model: list[str] = typer.Option(["hybrid"], "--model", help="Model to fit (repeatable; see 'hwnas evaluate')."),
    target: str = typer.Option("latency_ms", help="latency_ms | energy_mj | memory_mb (measured peak) | "
                               "analytic_memory_mb."),
    space: Optional[str] = typer.Option(None, help="Space (if the profile holds several)."),
    active: bool = typer.Option(False, "--active", help="Measure more samples where the model is worst first "
                                "(needs the profile's device here)."),
    goal: float = typer.Option(0.95, help="Active sampling: stop at this cross-validated share within ±10 %."),
    budget_s: float = typer.Option(600.0, help="Active sampling: time budget (s)."),
    batch: int = typer.Option(10, help="Active sampling: subnets measured per round."),
    checkpoint: Optional[Path] = typer.Option(None, help="Active sampling: super-network weights for export."),
    param: list[str] = typer.Option([], "--param", help="Hyper-parameter KEY=VALUE for the model(s), e.g. "
                                    "base=kernel for hybrid (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fit models on a profile's end-to-end rows and store them in the profile (with cross-validated metrics)."""
    from hwnas.pipeline import parse_option
    from hwnas.latency_models import fit_latency_model, resolve_space, training_data
    from hwnas.latency_models.metrics import cross_val_predict, score
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(profile)
    space = resolve_space(prof, space)
    con = console()
    out = {}
    params = {}
    for item in param:
        if "=" not in item:
            from hwnas.errors import ConfigError

            raise ConfigError(f"--param takes KEY=VALUE, got '{item}'.")
        k, v = item.split("=", 1)
        params[k.strip()] = parse_option(v.strip())
    if active:
        from hwnas.latency_models.active import active_sampling
        from hwnas.pipeline import measure_archs_on_device

        hist = active_sampling(prof, model[0], lambda archs: measure_archs_on_device(profile, archs, kind="active",
                                                                                       checkpoint=checkpoint),
                               goal_within_10=goal, budget_s=budget_s, batch=batch, target=target, space=space,
                               progress=None if as_json else con.print, **params)
        out["active_sampling"] = hist
        prof = DeviceProfile.open(profile)
    for name in model:
        m = fit_latency_model(prof, name, target=target, space=space, **params)
        _, archs, y, _ = training_data(prof, space, target)
        folds = min(5, len(archs))
        m.metrics_ = {**score(y, cross_val_predict(prof, name, archs, y, target, space, folds, **params)),
                      "protocol": f"{folds}-fold cross-validation on the fitting rows"} if folds >= 2 else None
        path = prof.save_model(m)
        out[name] = {"path": str(path), "n_samples": m.n_samples_, "metrics": m.metrics_}
        if not as_json:
            met = m.metrics_ or {}
            con.print(f"{name}: fitted on {m.n_samples_} samples of {space} ({target}) → {path}"
                      + (f"; cross-validated {met['within_10']:.1%} within ±10 %, {met['within_5']:.1%} within ±5 %, "
                         f"MAPE {met['mape']:.1%}, Kendall τ {met['kendall_tau']:.3f}" if met else ""))
    if as_json:
        echo_json(out)


@app.command("predict")
def predict_cmd(
    profile: Path = typer.Argument(..., help="Profile directory with fitted models ('hwnas fit')."),
    arch: list[str] = typer.Option(..., "--arch", help="Arch string, JSON dict or JSON file (repeatable)."),
    model: Optional[str] = typer.Option(None, help="Model name (default: the best stored one per target)."),
    space: Optional[str] = typer.Option(None, help="Space (if the arch string does not name it)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predicted latency (and energy / memory where modelled) of subnets on the profile's device."""
    from hwnas.errors import ProfileError
    from hwnas.latency_models import load_latency_model
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.schema import TARGETS

    prof = DeviceProfile.open(profile)
    archs = [parse_arch(a, space) for a in arch]
    sp = archs[0].space
    prof.check_space(sp)
    stored_targets = sorted({m["target"] for m in prof.list_models(sp)})
    if not stored_targets:
        raise ProfileError(f"Profile '{profile}' stores no fitted model for space '{sp}': run 'hwnas fit {profile}'.")
    rows = [{"arch": a.to_str(), "key": a.key()} for a in archs]
    for target in [t for t in TARGETS if t in stored_targets]:
        m = load_latency_model(prof, model if target == "latency_ms" or model is None else None, target, sp)
        for r, v in zip(rows, m.predict(archs)):
            r[target] = float(v)
            r.setdefault("models", {})[target] = m.name
    if as_json:
        echo_json(rows)
        return
    con = console()
    for r in rows:
        vals = ", ".join(f"{t} {r[t]:.3f} ({r['models'][t]})" for t in TARGETS if t in r)
        con.print(f"{r['arch']}: {vals}")
    con.print(f"[dim]device: {prof.device_name} ({prof.spec.hardware}, {prof.spec.threads} thread(s)); latency is "
              f"normalised to the profile's reference latency ({prof.reference_ms:.3f} ms)[/dim]")


@app.command("evaluate")
def evaluate_cmd(
    profile: Path = typer.Argument(..., help="Profile directory."),
    models: str = typer.Option("flops,lut,kernel,e2e,hybrid", help="Comma-separated models to compare."),
    target: str = typer.Option("latency_ms", help="latency_ms | energy_mj | memory_mb | analytic_memory_mb."),
    space: Optional[str] = typer.Option(None, help="Space (if the profile holds several)."),
    folds: int = typer.Option(5, help="Cross-validation folds when the profile has no holdout rows."),
    plots: Optional[Path] = typer.Option(None, help="Folder for the PNG plots (default: PROFILE/evaluation)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score models on rows never used to fit: RMSE, MAPE, ±5/±10 %, Kendall τ, Spearman; PNG per model."""
    from hwnas.latency_models.metrics import evaluate_models, plot_predictions
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(profile)
    names = [m.strip() for m in models.split(",") if m.strip()]
    res = evaluate_models(prof, names, target, space, folds)
    res["plots"] = plot_predictions(res, plots or Path(profile) / "evaluation")
    if as_json:
        echo_json({**res, "models": {k: {kk: vv for kk, vv in v.items() if kk not in ("measured", "predicted", "archs")}
                                     for k, v in res["models"].items()}})
        return
    from rich.table import Table

    unit = "ms" if target.endswith("_ms") else target.rsplit("_", 1)[-1]
    t = Table("model", f"RMSE ({unit})", "MAPE", "±5 %", "±10 %", "Kendall τ", "Spearman",
              title=f"{res['space']} {target}: {res['protocol']}")
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
    con = console()
    con.print(t)
    if floor.get("n_pairs"):
        con.print(f"[dim]device floor: the same {floor['n_pairs']} archs re-measured minutes later (* median "
                  "deviation); models are scored against the normalised figure[/dim]")
    else:
        con.print("[dim]no re-measured archs in this profile: profile with --repeats to see the device's floor[/dim]")
    con.print(f"plots: {', '.join(res['plots'])}")
