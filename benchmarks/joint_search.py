"""Joint architecture × per-block precision search vs "search FP32, then quantize the chosen subnet".

Both arms run the same evolution under the same latency budget with the same predictors and the
same closed loop on the device (``--device``: ONNX Runtime by default, or OpenVINO; this CPU): the joint arm searches the per-block
INT8/FP32 bits with the architecture; the baseline searches FP32 subnets, and its chosen subnet is
then quantized all-INT8 (what a user does with ``hwnas search`` then ``hwnas export --precision int8``).
Every reported figure is measured: latency on the device (reference-normalised milliseconds),
top-1 on the Fashion-MNIST test split with the shipped super-network weights. Budgets are quantiles
of the measured FP32 latency of ``--budget-subnets`` random subnets at the search resolution.

Pricing: the FP32 block table and an INT8 block table (blocks quantized before timing) are
profiled first at ``--resolution``; the accuracy predictor is the shipped FP32 predictor minus
per-block sensitivities measured on ``--sensitivity-subnets`` subnets of the super-network.

    python benchmarks/joint_search.py                       # full size (see --help for the knobs)
    python benchmarks/joint_search.py --tiny                # a few minutes: shows it works
    python benchmarks/joint_search.py --device openvino-cpu # where INT8 pays (OpenVINO's INT8 kernels)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def args_of(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--device", default="onnxruntime-cpu", help="a device with an INT8 quantizer: onnxruntime-cpu, "
                    "openvino-cpu")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--population", type=int, default=60)
    ap.add_argument("--generations", type=int, default=30)
    ap.add_argument("--max-measurements", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--sensitivity-subnets", type=int, default=3)
    ap.add_argument("--budget-subnets", type=int, default=12, help="random FP32 subnets measured to set the budgets")
    ap.add_argument("--edge-rows", type=int, default=12, help="subnets measured end to end in both precisions to price "
                    "conversions (0: INT8 blocks priced as measured alone)")
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--test-images", type=int, default=None, help="default: the whole test split (10,000)")
    ap.add_argument("--tiny", action="store_true", help="small everything (a smoke run)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args(argv)
    if a.tiny:
        a.seeds, a.population, a.generations, a.max_measurements, a.top_k = 1, 16, 4, 3, 1
        a.sensitivity_subnets, a.val_images, a.test_images, a.budget_subnets = 1, 500, 1000, 6
        a.edge_rows = min(a.edge_rows, 4)
    return a


def block_tables(space: str, r: int, work: Path, device: str, rows: int = 0):
    """FP32 and INT8 profiles of ``device`` holding the block table at ``r`` and, with ``rows``, the same
    ``rows`` random subnets at ``r`` measured end to end in each precision (what prices conversions)."""
    import hwnas.pipeline.jobs as jobs
    from hwnas.devices import get_device
    from hwnas.profiles import DeviceProfile
    from hwnas.profiling.precision import in_precision
    from hwnas.profiling.profiler import measure_archs
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    rng = np.random.default_rng(11)
    archs = [sp.sample(rng, [r]) for _ in range(rows)]
    profs = {}
    for prec in ("fp32", "int8"):
        jobs.profile(space=(space,), out=work / f"profile-{prec}", device=device, precision=prec, samples=0, reference_set=1,
                     repeats=0, resolutions=(r,), ops=True, energy=False, kernel_times=False)
        profs[prec] = DeviceProfile.open(work / f"profile-{prec}")
        if archs:
            dev = get_device(device, precision=prec)
            measure_archs(profs[prec], archs, in_precision(dev, jobs.subnet_builder(space)[0]), dev, kind="random",
                          energy=False, kernel_times=False)
            profs[prec] = DeviceProfile.open(work / f"profile-{prec}")
    return profs


def final(pe, pair, verified):
    """Measured latency (again, now) and test top-1 of a chosen pair."""
    return {"pair": pair.to_str(), "int8_blocks": len(pair.int8_slots()), "latency_ms": pe.latency(pair),
            "test_top1": pe.accuracy(pair, "test"), "closed_loop_ms": [v.measured_ms for v in verified]}


def one(pe, qp, lat, space, r, budget, seed, a, say):
    from hwnas.errors import BudgetError
    from hwnas.pipeline.joint import search_pairs
    from hwnas.searching.joint import Evolution
    from hwnas.types.quant_arch import QuantArch

    ev = Evolution(a.population, a.generations, seed=seed)
    row = {"budget_ms": budget, "seed": seed}
    for arm, precision in (("joint", True), ("fp32_search", False)):
        t0 = time.perf_counter()
        try:
            ver = search_pairs(space, qp, lat, budget, pe.latency, ev, [r], precision, a.top_k, a.max_measurements,
                               say)
        except BudgetError as exc:  # the closed loop found the budget out of reach: a result of this arm
            row[arm] = {"found": False, "error": str(exc)}
            continue
        ok = [v for v in ver if v.meets_budget]
        if not ok:
            row[arm] = {"found": False, "measured": len(ver)}
            continue
        row[arm] = {**final(pe, ok[0].pair, ver), "found": True, "search_s": time.perf_counter() - t0}
        if arm == "fp32_search":
            row["fp32_then_int8"] = final(pe, QuantArch.all_int8(ok[0].pair.arch), ver)
    for name in ("fp32_then_int8", "fp32_search"):
        b = row.get(name, {})
        j = row.get("joint", {})
        if b.get("found", True) and "latency_ms" in b and "latency_ms" in j:
            row[f"joint_minus_{name}_pts"] = j["test_top1"] - b["test_top1"]
    return row


def main(argv: list[str] | None = None) -> dict:
    a = args_of(argv)
    import tempfile

    import torch

    from hwnas.devices import get_device
    from hwnas.latency_models import LATENCY_MODELS
    from hwnas.pipeline.joint import PairEvaluator, pair_latency, quant_predictor
    from hwnas.supernet.spaces import get_space

    from hwnas.devices.base import host_facts

    torch.set_num_threads(1)
    say = lambda m: print(m, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="hwnas-joint-bench-"))
    t_start, load0 = time.perf_counter(), os.getloadavg()
    t0 = time.perf_counter()
    profs = block_tables(a.space, a.resolution, work, a.device, a.edge_rows)
    t_prof = time.perf_counter() - t0
    lut = LATENCY_MODELS.create("lut").fit([], [], profs["fp32"], space=a.space)  # the FP32 block table summed
    lat = pair_latency(lut, profs["fp32"], profs["int8"], a.space)
    dev = get_device(a.device)
    pe = PairEvaluator(a.space, dev, val_images=a.val_images, test_images=a.test_images)
    t0 = time.perf_counter()
    from hwnas.searching.accuracy import load_accuracy_predictor

    qp = quant_predictor(a.space, pe, load_accuracy_predictor(a.space, data=pe.ds), n_subnets=a.sensitivity_subnets,
                         resolution=a.resolution, say=say)
    t_sens = time.perf_counter() - t0
    sp = get_space(a.space)
    rng = np.random.default_rng(123)
    from hwnas.types.quant_arch import QuantArch

    # budgets in the device's measured milliseconds: a block table summed can sit far from end-to-end
    # latency (measured: OpenVINO's fmnist-mbv3 sums 0.187 ms for a subnet that runs in 0.277 ms)
    fp32_ms = [pe.latency(QuantArch.fp32(sp.sample(rng, [a.resolution]))) for _ in range(a.budget_subnets)]
    budgets = [float(np.quantile(fp32_ms, q)) for q in a.quantiles]
    say(f"budgets {', '.join(f'{b:.4f}' for b in budgets)} ms: quantiles {a.quantiles} of {len(fp32_ms)} random FP32 "
        f"subnets measured on {a.device}")
    rows = [one(pe, qp, lat, a.space, a.resolution, b, s, a, say) for b in budgets for s in range(a.seeds)]
    pe.close()
    res = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "host": host_facts(), "wall_s": time.perf_counter() - t_start, "loadavg_start": list(load0),
           "loadavg_end": list(os.getloadavg()), "device": dev.spec().to_dict(), "profile_s": t_prof, "sensitivity_s": t_sens,
           "sensitivity_pts": [float(x) for x in qp.sensitivity_], "conversion_fit": lat.delta.edge_fit, "rows": rows,
           "summary": summarize(rows)}
    write(a, res)
    return res


def summarize(rows):
    out = {}
    for name in ("fp32_then_int8", "fp32_search"):
        d = [r[f"joint_minus_{name}_pts"] for r in rows if f"joint_minus_{name}_pts" in r]
        over = sum(1 for r in rows if name in r and r[name].get("latency_ms", 0) > r["budget_ms"])
        out[name] = {"runs": len(d), "joint_wins": sum(x > 0 for x in d), "ties": sum(x == 0 for x in d),
                     "mean_gain_pts": float(np.mean(d)) if d else None, "baseline_over_budget_measured": over}
    return out


def write(a, res):
    a.out.mkdir(parents=True, exist_ok=True)
    tag = ("_tiny" if a.tiny else "") + ("" if a.device == "onnxruntime-cpu" else f"_{a.device}")
    (a.out / f"joint_search{tag}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    host = res.get("host", {})
    lines = [f"# Joint search vs FP32 search then quantize ({a.space}, r{a.resolution}, {a.device})", "",
             f"`python benchmarks/joint_search.py {' '.join(sys.argv[1:])}` on {host.get('cpu')} (ISA "
             f"{', '.join(host.get('isa', []))}); wall {res.get('wall_s', 0):.0f} s, load average "
             f"{res.get('loadavg_start', [0])[0]:.2f} → {res.get('loadavg_end', [0])[0]:.2f}", "",
             "| budget ms | seed | joint: ms / top-1 / INT8 blocks | FP32 search: ms / top-1 | then INT8: ms / top-1 |",
             "|---|---|---|---|---|"]

    def cell(d):
        if not d or not d.get("found", True):
            return "none met the budget" + (" (closed loop: out of reach)" if d and "error" in d else "")
        return f"{d['latency_ms']:.4f} / {d['test_top1']:.2f}" + (f" / {d['int8_blocks']}" if "int8_blocks" in d else "")

    for r in res["rows"]:
        lines.append(f"| {r['budget_ms']:.4f} | {r['seed']} | {cell(r.get('joint'))} | {cell(r.get('fp32_search'))} | "
                     f"{cell(r.get('fp32_then_int8'))} |")
    lines += ["", "summary: " + json.dumps(res["summary"]), f"sensitivity (pts per slot): "
              f"{[round(x, 2) for x in res['sensitivity_pts']]}", f"block tables profiled in {res['profile_s']:.0f} s, "
              f"sensitivities measured in {res['sensitivity_s']:.0f} s",
              f"INT8 pricing: {json.dumps(res.get('conversion_fit', {}))}"]
    (a.out / f"joint_search{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
