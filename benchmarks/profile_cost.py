"""What does profiling a device cost? Wall time and models measured for a full profile of one space.

Profiles ``--space`` (default ofa-mbv3-w1.0) on ONNX Runtime CPU, 1 thread, with the default
settings (block table on the coarse resolution grid, 100 stratified end-to-end subnets, the
20-arch reference set, 10 repeats), into ``--out`` (a fresh temporary directory by default), and
prints: wall time per phase, how many models were measured, and the spread of repeated
measurements (same arch re-measured minutes later: normalised vs raw median vs raw minimum),
plus the machine's load average before and after (the profiler uses one core; a load above 1
means other work shared the machine). Target (issue): ≤ 15 minutes on 2 cores.

    python benchmarks/profile_cost.py [--space ofa-mbv3-w1.0] [--out DIR] [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa-mbv3-w1.0")
    ap.add_argument("--device", default="onnxruntime-cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--reference-set", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--holdout", type=int, default=0, help="Extra evaluation subnets (not part of the cost).")
    ap.add_argument("--out", type=Path, default=None, help="Profile directory (default: a new temp dir).")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices.base import host_facts
    from hwnas.pipeline import profile
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.quality import describe

    out = args.out or Path(tempfile.mkdtemp(prefix="hwnas-profile-cost-")) / "profile"
    load_before = os.getloadavg()
    last = [0.0]
    t0 = time.time()

    def progress(desc: str, done: float, total: float) -> None:
        if time.time() - last[0] > 30 or desc.endswith("done"):
            last[0] = time.time()
            print(f"[{time.time() - t0:6.0f} s] {100 * done / max(total, 1e-9):5.1f} %  {desc}", flush=True)

    rep = profile(space=[args.space], out=out, device=args.device, threads=args.threads, samples=args.samples,
                  reference_set=args.reference_set, repeats=args.repeats, holdout=args.holdout, progress=progress)
    wall = time.time() - t0 - rep.spaces[args.space]["seconds"]["holdout"]  # evaluation rows are not profiling cost
    load_after = os.getloadavg()
    r = rep.spaces[args.space]
    prof = DeviceProfile.open(out)
    models, ops = prof.models_df(args.space), prof.ops_df(args.space)
    q = prof.meta["quality"]["spaces"][args.space]
    result = {
        "space": args.space, "device": prof.spec.to_dict(), "host": host_facts(), "profile": str(out),
        "wall_s": round(wall, 1), "phase_s": {k: round(v, 1) for k, v in r["seconds"].items()},
        "measured": {"ops": int(len(ops)), **{k: int(v) for k, v in models["kind"].value_counts().items()}},
        "measured_this_run": r["measured"], "already_stored": r["already_stored"],
        "unstable_rows": r["unstable"], "repeatability": q["repeatability"],
        "ratio_spread_median": {"models": float(models["ref_ratio_spread"].median()),
                                "ops": float(ops["ref_ratio_spread"].median())},
        "latency_ms_range": q["latency_ms_range"], "loadavg_before": load_before, "loadavg_after": load_after,
        "reference_ms": prof.reference_ms_by_name, "energy": prof.meta.get("energy", {}),
    }
    lines = [f"# Profiling cost: {args.space} on {args.device} ({args.threads} thread), {result['host']['cpu']}",
             "",
             f"- wall time: **{wall / 60:.1f} min** (setup {r['seconds']['setup']:.0f} s, block table "
             f"{r['seconds']['ops']:.0f} s, end-to-end {r['seconds']['models']:.0f} s); target ≤ 15 min"
             + (f"; held-out evaluation subnets measured in the same run took another "
                f"{r['seconds']['holdout']:.0f} s (not counted)" if r["seconds"]["holdout"] else ""),
             f"- measured models: {len(ops)} block/op models + " + ", ".join(
                 f"{v} {k}" for k, v in result["measured"].items() if k not in ("ops", "holdout")) + " end-to-end"
             + (f" (+ {result['measured']['holdout']} held-out)" if "holdout" in result["measured"] else ""),
             f"- rows flagged unstable (spread > 25 %): {r['unstable']}",
             f"- median ratio spread over bursts: end-to-end {result['ratio_spread_median']['models']:.1%}, "
             f"ops {result['ratio_spread_median']['ops']:.1%}",
             f"- load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
             f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} "
             f"({os.cpu_count()} logical cores; the profiler keeps one busy)", ""]
    rep = q["repeatability"]
    if rep.get("n_pairs"):
        lines += [f"Repeatability: {rep['n_pairs']} reference archs re-measured at the end of the run", "",
                  "| estimator | within ±5 % | within ±10 % | median dev | max dev |", "|---|---|---|---|---|"]
        for name in ("normalised", "median", "min"):
            if name in rep:
                e = rep[name]
                lines.append(f"| {name} | {e['within_5']:.0%} | {e['within_10']:.0%} | {e['median_dev']:.1%} | "
                             f"{e['max_dev']:.1%} |")
        lines.append("")
    lines += describe(prof.meta["quality"], prof.meta.get("energy", {}))
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"profile_cost_{args.space}"
    (args.results / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.results / f"{stem}.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
