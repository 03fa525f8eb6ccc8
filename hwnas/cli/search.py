"""``hwnas search``, ``hwnas accuracy-dataset`` and ``hwnas fit-accuracy``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json


@app.command("search")
def search_cmd(
    space: str = typer.Option(..., help="Search space."),
    profile: Path = typer.Option(..., help="Device profile directory (see 'hwnas profile')."),
    latency_budget_ms: Optional[float] = typer.Option(None, help="Latency budget (ms, the profile's scale)."),
    memory_budget_mb: Optional[float] = typer.Option(None, help="Peak-memory budget (MiB)."),
    energy_budget_mj: Optional[float] = typer.Option(None, help="Energy budget per inference (mJ)."),
    objectives: str = typer.Option("accuracy,latency", help="Comma list of accuracy,latency,memory,energy,macs,params."),
    seed: int = typer.Option(0),
    generations: int = typer.Option(40, help="NSGA-II generations per round."),
    pop_size: int = typer.Option(60),
    closed_loop: bool = typer.Option(True, help="Re-measure the best candidates on the device and repair."),
    top_k: int = typer.Option(3, help="Candidates measured per round."),
    max_measurements: int = typer.Option(12, help="Device measurements the closed loop may spend."),
    latency_model: Optional[str] = typer.Option(None, help="Stored latency model to use (default: the best)."),
    accuracy_predictor: Optional[Path] = typer.Option(None, help="Accuracy predictor JSON (default: shipped)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Super-network weights (default: shipped)."),
    out: Path = typer.Option(..., help="Run directory to write."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Multi-objective search under a budget, verified on the device."""
    from hwnas.pipeline import search_under_budget

    con = console()
    objs = [o.strip() for o in objectives.split(",") if o.strip()]
    s = search_under_budget(space, profile, out, latency_budget_ms, memory_budget_mb, energy_budget_mj, objs, seed,
                            generations, pop_size, closed_loop, top_k, max_measurements, latency_model,
                            accuracy_predictor, checkpoint, progress=None if as_json else con.print)
    if as_json:
        echo_json(s)
        return
    from rich.table import Table

    from hwnas.types import ParetoFront

    front = ParetoFront.load(out)
    names = list(front.directions)
    t = Table("#", "arch", *names, "measured", title=f"Pareto front ({len(front.candidates)} subnets)")
    for i, c in enumerate(front.candidates[:25]):
        meas = ", ".join(f"{k} {v:.4g}" for k, v in (c.measured or {}).items())
        mark = "*" if i == front.best else ("" if c.feasible else "x")
        t.add_row(f"{i}{mark}", c.arch.to_str().split("/", 1)[1], *[f"{c.objectives[n]:.4g}" for n in names], meas)
    con.print(t)
    if s["checks"]:
        con.print("predicted vs measured on the device:")
        for r in s["checks"]:
            con.print(f"  {r['arch'].split('/', 1)[1]}: {r.get('latency_ms_predicted', float('nan')):.4f} → "
                      f"{r.get('latency_ms_measured', float('nan')):.4f} ms ({r.get('latency_ms_error', 0):+.1%})"
                      f"{'' if r['meets_budget'] else '  over budget'}")
    if front.best is not None:
        b = front.candidates[front.best]
        con.print(f"best under budget: {b.arch.to_str()}  (#{front.best}; measured: {b.measured})")
    else:
        con.print("no subnet met the budget as measured within the measurement budget")
    con.print(f"wrote {out}/front.json, front.parquet, {', '.join(Path(p).name for p in s['plots'])}")


@app.command("accuracy-dataset")
def accuracy_dataset_cmd(
    space: str = typer.Option(..., help="Search space."),
    n: int = typer.Option(500, help="Subnets to evaluate."),
    out: Path = typer.Option(..., help="Parquet file (resumed if it exists)."),
    checkpoint: Optional[Path] = typer.Option(None),
    seed: int = typer.Option(0),
    data: Optional[Path] = typer.Option(None),
) -> None:
    """Evaluate subnets on the super-network (BN recalibrated, validation split) into a reusable dataset."""
    from rich.progress import Progress

    from hwnas.searching.accuracy import build_dataset
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset

    train, val = get_dataset(data, space).splits("train", "val")
    net, _ = load_supernet(space, checkpoint, allow_random=False)
    with Progress(console=console()) as prog:
        task = prog.add_task("evaluating", total=n)
        df = build_dataset(net, n, out, train, val, seed,
                           progress=lambda i, total, row: prog.update(task, completed=i, total=total))
    console().print(f"{len(df)} subnets in {out}: top-1 {df['top1'].min():.2f} .. {df['top1'].max():.2f} %")


@app.command("fit-accuracy")
def fit_accuracy_cmd(
    dataset: Path = typer.Argument(..., help="Parquet written by 'hwnas accuracy-dataset'."),
    out: Path = typer.Option(..., help="Predictor JSON to write."),
    holdout: int = typer.Option(100, help="Subnets held out to report Kendall tau / RMSE."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fit the accuracy predictor; report held-out Kendall tau and RMSE, then refit on everything."""
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    from hwnas.searching.accuracy import AccuracyPredictor, load_dataset
    from hwnas.types import ArchConfig

    df = load_dataset(dataset)
    archs = [ArchConfig.parse(a) for a in df["arch"]]
    y = df["top1"].to_numpy()
    idx = np.random.default_rng(seed).permutation(len(y))
    hold, train = idx[:holdout], idx[holdout:]
    m = AccuracyPredictor(seed=seed).fit([archs[i] for i in train], y[train])
    p = m.predict([archs[i] for i in hold])
    rep = {"n_train": int(len(train)), "n_holdout": int(len(hold)), "kendall_tau": float(kendalltau(p, y[hold])[0]),
           "spearman": float(spearmanr(p, y[hold])[0]), "rmse_pts": float(np.sqrt(np.mean((p - y[hold]) ** 2)))}
    AccuracyPredictor(seed=seed).fit(archs, y).save(out)
    rep["saved"] = str(out)
    if as_json:
        echo_json(rep)
    else:
        console().print(f"held-out ({rep['n_holdout']} subnets): Kendall tau {rep['kendall_tau']:.3f}, Spearman "
                        f"{rep['spearman']:.3f}, RMSE {rep['rmse_pts']:.3f} pts; refitted on all {len(y)} → {out}")
