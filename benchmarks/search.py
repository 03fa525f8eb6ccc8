"""Search benchmark: NSGA-II vs random search vs OFA-style constrained evolution, then the closed loop.

For each latency budget (default: the 25th, 50th and 75th percentile of the profile's measured
subnets) and seed, every algorithm gets the same number of distinct subnet evaluations on the
same predictors (accuracy predictor, the profile's latency model); random search is also run
with 10x the evaluations. Reported: hypervolume of the feasible (accuracy, latency) front
(reference point: the smallest subnet's predicted accuracy minus 1 point, latency = budget) and
the best predicted accuracy under the budget. Then predictor throughput (10,000 subnets), and the closed loop per budget: whether
the chosen subnet meets the budget when measured on the device.

    python benchmarks/search.py --space fmnist-mbv3 --profile PROFILE [--evals 1000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--profile", type=Path, required=True)
    ap.add_argument("--evals", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", type=float, nargs="*", default=None)
    ap.add_argument("--closed-loop", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices.base import host_facts
    from hwnas.latency_models import predictor_for
    from hwnas.pipeline import search
    from hwnas.profiles import DeviceProfile
    from hwnas.searching import objectives as O
    from hwnas.searching.accuracy import load_accuracy_predictor
    from hwnas.searching.algorithms import Termination, nsga2, ofa_evolution, random_search
    from hwnas.searching.front import build_front, hypervolume
    from hwnas.searching.problem import ArchProblem
    from hwnas.supernet.spaces import get_space

    t_start = time.time()
    sp = get_space(args.space)
    prof = DeviceProfile.open(args.profile)
    lat_model = predictor_for(prof, args.space, "latency_ms")
    acc_model = load_accuracy_predictor(args.space)
    measured = prof.models_df(args.space)["latency_ms"].to_numpy(dtype=float)
    budgets = args.budgets or [float(np.round(np.percentile(measured, q), 4)) for q in (25, 50, 75)]
    acc = O.from_predictor("accuracy_top1", acc_model, "max")
    acc_ref = float(acc_model.predict([sp.min_arch()])[0]) - 1.0
    lat = O.from_predictor("latency_ms", lat_model, "min")

    def problem(b):
        return ArchProblem(sp, [acc, lat], [O.budget(lat, b)])

    runs = []
    for b in budgets:
        for seed in args.seeds:
            row = {"budget_ms": b, "seed": seed}
            for algo in ("nsga2", "random", "ofa_evolution", "random_10x"):
                pr = problem(b)
                t0 = time.perf_counter()
                if algo == "nsga2":
                    ev = nsga2(pr, Termination(evaluations=args.evals), pop_size=50, seed=seed)
                elif algo == "random":
                    ev = random_search(pr, args.evals, seed)
                elif algo == "random_10x":
                    ev = random_search(pr, 10 * args.evals, seed)
                else:
                    ev = ofa_evolution(pr, args.evals, seed=seed)
                front = build_front(pr, ev)
                hv = hypervolume(front, {"accuracy_top1": acc_ref, "latency_ms": b})
                feas = [c for c in front.candidates if c.feasible]
                row[algo] = {"hv": hv, "best_acc": max((c.objectives["accuracy_top1"] for c in feas), default=None),
                             "evals": pr.n_evals, "seconds": time.perf_counter() - t0}
            runs.append(row)
            print(f"budget {b:.4f} ms seed {seed}: " + ", ".join(
                f"{a} HV {row[a]['hv']:.4f} best {row[a]['best_acc'] or float('nan'):.2f} % ({row[a]['evals']} evals)"
                for a in ("nsga2", "random", "ofa_evolution", "random_10x")), flush=True)

    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(10_000)]
    t0 = time.perf_counter()
    lat_model.predict(archs)
    acc_model.predict(archs)
    throughput_s = time.perf_counter() - t0

    loop = []
    if args.closed_loop:
        work = Path(tempfile.mkdtemp(prefix="hwnas-bench-search-"))
        for b in budgets:  # each run measures into its own copy of the profile
            front = search(space=args.space, profile=args.profile, out=work / f"run-{b}", latency_budget_ms=b, seed=0,
                           generations=25, pop_size=50, final_eval=0)
            cl = front.meta["closed_loop"]
            best = None if front.best is None else front.candidates[front.best]
            loop.append({"budget_ms": b, "met": cl["met"],
                         "measured_ms": None if best is None else best.measured.get("latency_ms"),
                         "predicted_ms": None if best is None else best.objectives.get("latency_ms"),
                         "arch": None if best is None else best.arch.to_str(), "measurements": len(cl["checks"]),
                         "rounds": len(cl["rounds"])})
            print(f"closed loop, budget {b:.4f} ms: met={cl['met']} chosen {loop[-1]['arch']} measured "
                  f"{loop[-1]['measured_ms']} ms after {len(cl['checks'])} measurements", flush=True)

    summary = {}
    for algo in ("nsga2", "random", "ofa_evolution", "random_10x"):
        summary[algo] = {"mean_hv": float(np.mean([r[algo]["hv"] for r in runs])),
                         "mean_best_acc": float(np.mean([r[algo]["best_acc"] or 0 for r in runs]))}
    wins = sum(r["nsga2"]["hv"] >= r["random_10x"]["hv"] for r in runs)
    res = {"space": args.space, "profile": str(args.profile), "host": host_facts(), "evals": args.evals,
           "budgets_ms": budgets, "seeds": args.seeds, "runs": runs, "summary": summary,
           "nsga2_hv_ge_random10x": f"{wins}/{len(runs)}", "predict_10k_s": throughput_s, "closed_loop": loop,
           "latency_model": getattr(lat_model, "name", "?"), "hv_reference_accuracy": acc_ref,
           "wall_s": time.time() - t_start}
    lines = [f"# Search benchmark: {args.space}, {args.evals} evaluations per algorithm ({res['host']['cpu']})", "",
             "| budget (ms) | seed | NSGA-II HV / best | random HV / best | OFA evolution HV / best | random 10x HV / best |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['budget_ms']:.4f} | {r['seed']} | " + " | ".join(
            f"{r[a]['hv']:.4f} / {r[a]['best_acc'] or float('nan'):.2f}" for a in
            ("nsga2", "random", "ofa_evolution", "random_10x")) + " |")
    lines += ["", "| algorithm | mean HV | mean best accuracy (%) |", "|---|---|---|"]
    lines += [f"| {a} | {v['mean_hv']:.4f} | {v['mean_best_acc']:.2f} |" for a, v in summary.items()]
    lines += ["", f"NSGA-II hypervolume ≥ random search with 10x the evaluations in {res['nsga2_hv_ge_random10x']} runs.",
              f"10,000 subnets through both predictors: {throughput_s:.2f} s.", ""]
    if loop:
        lines += ["| budget (ms) | met when measured | predicted (ms) | measured (ms) | device measurements |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['budget_ms']:.4f} | {c['met']} | {c['predicted_ms'] or float('nan'):.4f} | "
                  f"{c['measured_ms'] or float('nan'):.4f} | {c['measurements']} |" for c in loop]
    lines.append(f"\nwall time {res['wall_s']:.0f} s")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"search-{args.space}.json").write_text(json.dumps(res, indent=1, default=float))
    (args.out / f"search-{args.space}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
