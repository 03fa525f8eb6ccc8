"""``hwnas search``, ``hwnas accuracy-dataset`` and ``hwnas fit-accuracy``."""

from __future__ import annotations

from hwnas.cli import Output, command
from hwnas.config import AccuracyDatasetConfig, FitAccuracyConfig, SearchConfig


@command("search", SearchConfig)
def search_cmd(cfg: SearchConfig, out: Output) -> None:
    from hwnas.pipeline import search

    front = search(cfg, progress=out.say)
    if out.as_json:
        return out.json(front.to_dict())
    from rich.table import Table

    names = list(front.directions)
    t = Table("#", "arch", *names, "measured", title=f"Pareto front ({len(front.candidates)} subnets)")
    for i, c in enumerate(front.candidates[:25]):
        meas = ", ".join(f"{k} {v:.4g}" for k, v in (c.measured or {}).items())
        mark = "*" if i == front.best else ("" if c.feasible else "x")
        t.add_row(f"{i}{mark}", c.arch.to_str().split("/", 1)[1], *[f"{c.objectives[n]:.4g}" for n in names], meas)
    out.print(t)
    checks = front.meta.get("closed_loop", {}).get("checks", [])
    if checks:
        out.print("predicted vs measured on the device:")
        for r in checks:
            out.print(f"  {r['arch'].split('/', 1)[1]}: {r.get('latency_ms_predicted', float('nan')):.4f} → "
                      f"{r.get('latency_ms_measured', float('nan')):.4f} ms ({r.get('latency_ms_error', 0):+.1%})"
                      f"{'' if r['status'] == 'met' else '  ' + r['status']}")
    if front.best is not None:
        b = front.candidates[front.best]
        meas = ", ".join(f"{k} {v:.4g}" for k, v in (b.measured or {}).items())
        out.print(f"best under budget: {b.arch.to_str()}  (#{front.best}; measured: {meas})")
    else:
        out.print("no subnet met the budget as measured within the measurement budget")
    pairs = front.meta.get("joint_precision")
    if pairs:
        if front.best is not None:
            out.print(f"best pair (arch | per-block precision): {pairs[front.best]['pair_str']}; "
                      f"bundle: {cfg.out}/bundle")
        out.print(f"wrote {cfg.out}/front.json, joint.json (each pair's policy), sensitivity.json")
        return
    out.print(f"wrote {cfg.out}/front.json, front.parquet, config.json, pareto plots; the closed loop's "
              f"measurements are in {cfg.out}/profile")


@command("accuracy-dataset", AccuracyDatasetConfig)
def accuracy_dataset_cmd(cfg: AccuracyDatasetConfig, out: Output) -> None:
    from rich.progress import Progress, TimeElapsedColumn

    from hwnas.datasets import open_dataset
    from hwnas.searching.accuracy import build_dataset
    from hwnas.supernet import load_supernet

    ds = open_dataset(cfg.data, cfg.space, cfg.data_options)  # bad data is refused before any weights are read
    train, val = ds.splits("train", "val")
    net, _ = load_supernet(cfg.space, cfg.checkpoint, allow_random=False)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=out.console,
                  disable=out.as_json) as prog:
        task = prog.add_task("evaluating", total=cfg.n)
        df = build_dataset(net, cfg.n, cfg.out, train, val, cfg.seed, data=ds.identity(), n_calib=cfg.calib_images,
                           progress=lambda i, total, row: prog.update(task, completed=i, total=total))
    rep = {"out": str(cfg.out), "subnets": len(df), "top1_min": float(df["top1"].min()),
           "top1_max": float(df["top1"].max()), "data": ds.identity()}
    if out.as_json:
        return out.json(rep)
    out.print(f"{len(df)} subnets in {cfg.out}: top-1 {rep['top1_min']:.2f} .. {rep['top1_max']:.2f} % on "
              f"{ds.describe()['name']} (fingerprint {ds.fingerprint()})")


@command("fit-accuracy", FitAccuracyConfig)
def fit_accuracy_cmd(cfg: FitAccuracyConfig, out: Output) -> None:
    from hwnas.errors import ConfigError
    from hwnas.searching.accuracy import fit_with_holdout, load_dataset, register_dataset_space

    if not cfg.dataset.is_file():
        raise ConfigError(f"Accuracy dataset '{cfg.dataset}' does not exist: build it with 'hwnas accuracy-dataset'.")
    df = load_dataset(cfg.dataset)
    register_dataset_space(df)  # a derived space travels in its accuracy dataset
    data = None
    if cfg.data is not None:
        from hwnas.datasets import open_dataset

        data = open_dataset(cfg.data, str(df["space"].iloc[0]) if len(df) else None, cfg.data_options)
    predictor, rep = fit_with_holdout(df, cfg.holdout, cfg.seed, data)
    predictor.save(cfg.out)
    rep["saved"] = str(cfg.out)
    rep["dataset"] = predictor.dataset_
    if out.as_json:
        return out.json(rep)
    out.print(f"held-out ({rep['n_holdout']} subnets): Kendall tau {rep['kendall_tau']:.3f}, Spearman "
              f"{rep['spearman']:.3f}, RMSE {rep['rmse_pts']:.3f} pts; refitted on all "
              f"{rep['n_train'] + rep['n_holdout']} → {cfg.out}"
              + (f" (data: {rep['dataset']['name']}, fingerprint {rep['dataset']['fingerprint']})" if rep["dataset"]
                 else " (data not recorded: pass --data to record it)"))
