"""How accurate are the latency models? All of them side by side on held-out subnets.

Takes a device profile (default: the shipped CPU profile), makes sure it holds at least
``--holdout`` end-to-end rows of kind ``holdout`` for ``--space`` — subnets drawn with another
seed across all resolutions, measured on the profile's own device and never used to fit —
measuring the missing ones if needed (only possible on the profiled device), then fits every
model on the profile's fitting rows and scores it on the held-out rows: RMSE, MAPE, share within
±5 % / ±10 %, Kendall τ, Spearman ρ; plus the best model's share within ±10 % per resolution
band, the device's repeatability floor, and the profiling cost. Writes JSON, Markdown and one
PNG per model under ``--results``. Targets (issue): best model ≥ 95 % within ±10 % (goal 99 %),
≥ 80 % within ±5 %, Kendall τ ≥ 0.9.

    python benchmarks/latency_models.py [--profile profiles/NAME] [--space ofa-mbv3-w1.0] [--holdout 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _default_profile() -> Path:
    found = sorted(p.parent for p in (ROOT / "hwnas" / "data" / "profiles").glob("*/device.json"))
    if not found:
        raise SystemExit("no shipped profile under profiles/: pass --profile")
    return found[0]


def ensure_holdout(profile: Path, space: str, n: int) -> float:
    """Measure held-out subnets until the profile has ``n`` of them; returns seconds spent."""
    from hwnas.latency_models.metrics import holdout_data
    from hwnas.pipeline import measure_archs
    from hwnas.profiles import DeviceProfile
    from hwnas.profiling.sampling import holdout_archs
    from hwnas.types import ArchConfig

    prof = DeviceProfile.open(profile)
    have, _ = holdout_data(prof, space, "latency_ms")
    if len(have) >= n:
        return 0.0
    known = [ArchConfig.parse(a) for a in prof.models_df(space)["arch"]]
    want = holdout_archs(space, n, 0, exclude=known)
    todo = [a for a in want if a.key() not in {h.key() for h in have}][: n - len(have)]
    print(f"measuring {len(todo)} held-out subnets on {prof.device_name} ...", flush=True)
    t0 = time.time()
    last = [0.0]

    def progress(desc, i, total):
        if time.time() - last[0] > 30:
            last[0] = time.time()
            print(f"  [{time.time() - t0:5.0f} s] {i}/{total}", flush=True)

    measure_archs(prof, todo, kind="holdout", progress=progress)
    return time.time() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--space", default="ofa-mbv3-w1.0")
    ap.add_argument("--holdout", type=int, default=120)
    ap.add_argument("--models", default="flops,lut,kernel,e2e,hybrid")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.latency_models.metrics import evaluate_models, plot_predictions
    from hwnas.profiles import DeviceProfile

    profile = args.profile or _default_profile()
    measured_s = ensure_holdout(profile, args.space, args.holdout)
    prof = DeviceProfile.open(profile)
    names = [m for m in args.models.split(",") if m]
    res = evaluate_models(prof, names, "latency_ms", args.space)
    plots = plot_predictions(res, args.results / "latency_models")
    sessions = [s for s in prof.sessions if "holdout" not in (s.get("note") or "")]
    cost = json.loads(p.read_text()) if (p := args.results / f"profile_cost_{args.space}.json").exists() else None

    ok = {k: v for k, v in res["models"].items() if "error" not in v}
    best = max(ok, key=lambda k: (ok[k]["within_10"], ok[k]["within_5"]))
    b = ok[best]
    bands = {}
    res_arr = np.array([int(a.split("/r")[1].split("_")[0]) for a in b["archs"]])
    rel = np.abs(np.array(b["predicted"]) - np.array(b["measured"])) / np.array(b["measured"])
    for lo, hi in ((128, 160), (160, 192), (192, 225)):
        m = (res_arr >= lo) & (res_arr < hi)
        if m.any():
            bands[f"r{lo}-{hi - 1 if hi == 225 else hi - 4}"] = {"n": int(m.sum()), "within_10": float(np.mean(rel[m] <= 0.1)),
                                                                 "within_5": float(np.mean(rel[m] <= 0.05))}
    s = prof.spec
    lines = [f"# Latency models on {s.hardware} / {s.runtime} {s.runtime_version}, {s.threads} thread: {args.space}",
             "", f"Protocol: {res['protocol']} (held-out subnets drawn with another seed across all resolutions, "
             "never used to fit). Measured figures are the profile's normalised latencies.", "",
             "| model | RMSE (ms) | MAPE | within ±5 % | within ±10 % | Kendall τ | Spearman | fit (s) | predict (µs/arch) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["models"].items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {name} | {r['rmse']:.3f} | {r['mape']:.1%} | {r['within_5']:.1%} | {r['within_10']:.1%} | "
                     f"{r['kendall_tau']:.3f} | {r['spearman']:.3f} | {r['fit_s']:.1f} | {r['predict_us_per_arch']:.0f} |")
    floor = res.get("floor") or {}
    lines += ["", f"Device floor (same arch re-measured minutes later, {floor.get('n_pairs', 0)} pairs):"]
    for est in ("normalised", "median", "min"):
        if est in floor:
            f = floor[est]
            lines.append(f"- {est}: {f['within_5']:.0%} within ±5 %, {f['within_10']:.0%} within ±10 %, "
                         f"median deviation {f['median_dev']:.1%}, max {f['max_dev']:.1%}")
    lines += ["", f"Best model: **{best}** — {b['within_10']:.1%} within ±10 % (target ≥ 95 %), {b['within_5']:.1%} "
              f"within ±5 % (target ≥ 80 %), Kendall τ {b['kendall_tau']:.3f} (target ≥ 0.9)",
              "Per resolution band (best model): " + ", ".join(
                  f"{k}: {v['within_10']:.0%} within ±10 % ({v['n']})" for k, v in bands.items())]
    n_fit = len(prof.models_df(args.space)) - len(b["archs"])
    lines.append(f"Profiling cost: {len(prof.ops_df(args.space))} block/op models + {n_fit} end-to-end rows "
                 f"(incl. repeats)" + (f", {cost['wall_s'] / 60:.1f} min wall (benchmarks/profile_cost.py)" if cost
                                       else "") + f"; {len(sessions)} session(s).")
    if measured_s:
        lines.append(f"Held-out subnets measured in this run: {measured_s / 60:.1f} min.")
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    out = {"profile": str(profile), "space": args.space, "device": s.to_dict(), "protocol": res["protocol"],
           "floor": floor, "best": best, "bands": bands, "profile_cost": cost,
           "plots": [str(Path(p).resolve().relative_to(ROOT)) if Path(p).resolve().is_relative_to(ROOT) else str(p)
                     for p in plots],
           "models": {k: {kk: vv for kk, vv in v.items() if kk not in ("measured", "predicted", "archs")}
                      for k, v in res["models"].items()}}
    (args.results / f"latency_models_{args.space}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    (args.results / f"latency_models_{args.space}.md").write_text(text + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
