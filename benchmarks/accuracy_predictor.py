"""How well does the shipped accuracy predictor rank subnets, and how well *can* any predictor?

1. The predictor: Kendall tau / Spearman / RMSE on ``--holdout`` subnets of the shipped accuracy
   dataset that the fit never saw (the same protocol as ``hwnas fit-accuracy --holdout``).
2. The ceiling: the target itself is noisy. ``--repeat`` subnets of the dataset are evaluated
   again with BN recalibrated on a *different* 2,000 training images, and their validation set is
   split into two halves; Kendall tau between the two evaluations and between the two halves says
   how much of the ranking any predictor could reproduce. A predictor is judged against that.

    python benchmarks/accuracy_predictor.py [--space fmnist-mbv3] [--holdout 100] [--repeat 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--dataset", type=Path, default=None, help="default: the shipped dataset of --space")
    ap.add_argument("--holdout", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    import pandas as pd
    from scipy.stats import kendalltau, spearmanr

    from hwnas.searching.accuracy import AccuracyPredictor, load_dataset
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import CALIB_IMAGES, predict_logits, recalibrate_bn
    from hwnas.supernet.extract import extract
    from hwnas.types import ArchConfig

    path = args.dataset or Path(__file__).resolve().parent.parent / "hwnas" / "data" / "accuracy" / f"{args.space}.parquet"
    df = load_dataset(path)
    archs = [ArchConfig.parse(s) for s in df["arch"]]
    y = df["top1"].to_numpy(float)
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(y))
    hold, fit = idx[: args.holdout], idx[args.holdout:]
    t0 = time.time()
    pred = AccuracyPredictor().fit([archs[i] for i in fit], y[fit]).predict([archs[i] for i in hold])
    fit_s = time.time() - t0
    root = Path(__file__).resolve().parent.parent
    shown = path.resolve().relative_to(root) if path.resolve().is_relative_to(root) else path
    res: dict = {"space": args.space, "dataset": str(shown), "n": int(len(y)),
                 "top1_range": [float(y.min()), float(y.max())],
                 "predictor": {"fit_rows": int(len(fit)), "holdout_rows": int(len(hold)),
                               "kendall_tau": float(kendalltau(pred, y[hold])[0]),
                               "spearman": float(spearmanr(pred, y[hold])[0]),
                               "rmse_pts": float(np.sqrt(np.mean((pred - y[hold]) ** 2))), "fit_s": fit_s}}

    # the ceiling: the evaluator against itself
    net, _ = load_supernet(args.space, allow_random=False)
    train, val = get_dataset(None, args.space).splits("train", "val")
    half = np.random.default_rng(args.seed + 1).permutation(len(val)) < len(val) // 2
    rows = []
    for j, i in enumerate(idx[: args.repeat]):
        a = archs[i]
        sub = extract(net, a)
        recalibrate_bn(sub, train, a, CALIB_IMAGES, seed=12345 + j)
        ok = predict_logits(sub, val, a).argmax(1) == val.labels
        rows.append({"arch": a.to_str(), "top1_dataset": y[i], "top1_recal2": 100 * ok.mean(),
                     "top1_half_a": 100 * ok[half].mean(), "top1_half_b": 100 * ok[~half].mean()})
        print(f"[{j + 1}/{args.repeat}] {a.to_str()}: {y[i]:.2f} / {rows[-1]['top1_recal2']:.2f}", flush=True)
    r = pd.DataFrame(rows)
    res["ceiling"] = {
        "subnets": len(r),
        "tau_recalibration": float(kendalltau(r.top1_dataset, r.top1_recal2)[0]),
        "mean_abs_diff_recalibration_pts": float((r.top1_dataset - r.top1_recal2).abs().mean()),
        "tau_val_halves": float(kendalltau(r.top1_half_a, r.top1_half_b)[0]),
        "predictor_tau_on_same_subnets": float(kendalltau(
            AccuracyPredictor().fit([archs[i] for i in idx[args.repeat:]], y[idx[args.repeat:]]).predict(
                [archs[i] for i in idx[: args.repeat]]), r.top1_dataset)[0]),
    }
    p, c = res["predictor"], res["ceiling"]
    text = "\n".join([
        f"# Accuracy predictor: {args.space} ({len(y)} evaluated subnets, top-1 {y.min():.2f}–{y.max():.2f} % on val)",
        "",
        f"- held-out ({p['holdout_rows']} subnets, fitted on {p['fit_rows']}): Kendall τ **{p['kendall_tau']:.3f}**, "
        f"Spearman {p['spearman']:.3f}, RMSE {p['rmse_pts']:.3f} pts (fit {p['fit_s']:.1f} s)",
        f"- the evaluator against itself on {c['subnets']} subnets: BN recalibrated on other images → Kendall τ "
        f"{c['tau_recalibration']:.3f} (mean |Δ| {c['mean_abs_diff_recalibration_pts']:.2f} pts); the two halves of "
        f"the validation split → Kendall τ {c['tau_val_halves']:.3f}",
        f"- predictor on those same {c['subnets']} subnets (fitted on the rest): Kendall τ "
        f"{c['predictor_tau_on_same_subnets']:.3f}",
        ""])
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"accuracy_predictor_{args.space}.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / f"accuracy_predictor_{args.space}.md").write_text(text)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
