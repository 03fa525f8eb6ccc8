"""Export benchmark: INT8 vs FP32 and runtime vs runtime, same models side by side in one run.

Part A — ImageNet-size ofa-mbv3-w1.0 subnets (random weights: latency does not depend on the
values; calibration uses 64 synthetic N(0,1) images, so no accuracy is claimed here). Variants:
ORT FP32, ORT INT8 (QDQ, every layer), ORT latency-mixed (layer groups whose measured INT8
gain is positive), OpenVINO FP32 (f32 forced), OpenVINO INT8 (NNCF), TVM FP32 (untuned).
Every variant is timed ``--rounds`` times in shuffled order, each interleaved with the same
reference model; figures are reference-normalised and reported as speed-up over ORT FP32.

Part B — Fashion-MNIST subnets of the shipped super-network (needs its weights): FP32, all-INT8
and the searched mixed policy on ORT (and OpenVINO), with test accuracy and latency.

    python benchmarks/export.py [--rounds 3] [--skip-fmnist] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def part_a(args, work: Path) -> dict:
    from hwnas.devices import get_device
    from hwnas.devices.measure import ReferenceSet, measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.devices import onnxruntime_quant as quantize_ort
    from hwnas.devices.base import onnx_nodes
    from hwnas.devices import openvino_quant as quantize_openvino
    from hwnas.exporting.mixed import layer_groups, only
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.types import PrecisionPolicy
    from hwnas.supernet.elastic import ElasticMBV3

    net = ElasticMBV3("ofa-mbv3-w1.0").eval()
    sp = net.space
    archs = {"min-r160": sp.min_arch(160), "sample-r192": sp.sample(np.random.default_rng(0), [192]),
             "max-r224": sp.max_arch(224)}
    devs = {"ort": get_device("onnxruntime-cpu", threads=args.threads),
            "openvino": get_device("openvino-cpu", threads=args.threads),
            "tvm": get_device("tvm-llvm", threads=args.threads)}
    timing = TimingConfig(runs=60, budget_s=2.0, bursts=6, burst_s=0.05)
    rng = np.random.default_rng(1)
    # one reference per device for the whole run, its first median the scale of every figure
    refs = {k: ReferenceSet(d, ["ref-large"]) for k, d in devs.items()}
    canon_by_dev: dict[str, float] = {}
    out: dict = {}
    for name, a in archs.items():
        t0 = time.time()
        fp32 = export_subnet(net, a, work / f"{name}.onnx")
        calib = rng.standard_normal((64, 3, a.r, a.r)).astype(np.float32)
        pre = quantize_ort.preprocess(fp32, work / f"{name}.pre.onnx")
        variants = {
            "ort-fp32": ("ort", fp32),
            "ort-int8": ("ort", quantize_ort.quantize(pre, work / f"{name}.int8.onnx", PrecisionPolicy.uniform("int8"),
                                                      calib)),
            "openvino-fp32": ("openvino", fp32),
            "openvino-int8": ("openvino", quantize_openvino.quantize(fp32, work / f"{name}.ov-int8.xml",
                                                                     PrecisionPolicy.uniform("int8"), calib)),
            "tvm-fp32": ("tvm", fp32),
        }
        # latency-only mixed policy on ORT: INT8 for the groups whose measured gain is positive
        groups = layer_groups([n for n, _ in onnx_nodes(pre)])
        base = measure_model(devs["ort"], fp32, timing, refs["ort"], reference="ref-large")
        canon = canon_by_dev.setdefault("ort", base.ref.ref_median_ms)
        gains = {}
        for g in groups:
            p = quantize_ort.quantize(pre, work / f"{name}.only-{g.name}.onnx", only(groups, [g.name]), calib)
            m = measure_model(devs["ort"], p, timing, refs["ort"], reference="ref-large")
            gains[g.name] = base.ref.ratio * canon - m.ref.ratio * canon
        keep = [k for k, v in gains.items() if v > 0]
        variants["ort-mixed-latency"] = ("ort", quantize_ort.quantize(pre, work / f"{name}.mixed.onnx",
                                                                      only(groups, keep), calib))
        figures: dict[str, list[float]] = {v: [] for v in variants}
        raw: dict[str, list[float]] = {v: [] for v in variants}
        spread: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in rng.permutation(list(variants)):
                d, p = variants[v]
                m = measure_model(devs[d], p, timing, refs[d], reference="ref-large")
                c = canon_by_dev.setdefault(d, m.ref.ref_median_ms)
                figures[v].append(m.ref.ratio * c)
                raw[v].append(m.stats.median_ms)
                spread[v].append(m.ref.ratio_spread)
        med = {v: float(np.median(x)) for v, x in figures.items()}
        out[name] = {
            "arch": a.to_str(), "macs_m": sp.macs(a) / 1e6,
            "latency_ms": med, "raw_median_ms": {v: float(np.median(x)) for v, x in raw.items()},
            "rounds_ms": figures, "ratio_spread": {v: float(np.median(x)) for v, x in spread.items()},
            "round_dev": {v: float(np.max(np.abs(np.array(x) / np.median(x) - 1))) for v, x in figures.items()},
            "speedup_vs_ort_fp32": {v: med["ort-fp32"] / m_ for v, m_ in med.items()},
            "mixed_groups_int8": keep, "group_gain_ms": gains, "seconds": time.time() - t0,
        }
        print(f"{name}: " + ", ".join(f"{v} {med[v]:.2f} ms ({med['ort-fp32'] / med[v]:.2f}x)" for v in variants),
              flush=True)
    return out


def _row_md(r: dict) -> str:
    """FP32 / INT8 / mixed cells of one Fashion-MNIST row; a precision that found no policy says so."""
    ok = [r[p] for p in ("int8", "mixed") if "error" not in r[p]]
    base = ok[0] if ok else {"fp32_top1": float("nan"), "fp32_ms": float("nan")}
    cells = {p: ("—", "—") if "error" in r[p] else (f"{r[p]['top1']:.2f} ({-r[p]['drop_pts']:+.2f})", f"{r[p]['ms']:.3f}")
             for p in ("int8", "mixed")}
    pol = "no policy within the budget" if "error" in r["mixed"] else r["mixed"]["policy"]
    return " | ".join([f"{base['fp32_top1']:.2f}", cells["int8"][0], cells["mixed"][0], f"{base['fp32_ms']:.3f}",
                       cells["int8"][1], cells["mixed"][1], str(pol)])


def part_b(args, work: Path) -> dict:
    from hwnas.errors import BudgetError
    from hwnas.pipeline import export_bundle
    from hwnas.supernet import load_supernet

    net, source = load_supernet("fmnist-mbv3", args.checkpoint, allow_random=False)
    sp = net.space
    archs = {"largest": sp.max_arch(), "mid": sp.sample(np.random.default_rng(3), [28])}
    out: dict = {"weights": source}
    for name, a in archs.items():
        for device in ("onnxruntime-cpu", "openvino-cpu"):
            row = {}
            for prec in ("int8", "mixed"):
                try:
                    m = export_bundle(a, work / f"{name}-{device}-{prec}", device, prec, args.max_accuracy_drop,
                                      args.checkpoint, args.threads, overwrite=True)
                except BudgetError as exc:  # no policy meets the budget: a result, recorded as such
                    row[prec] = {"error": str(exc)}
                    print(f"{name} {device} {prec}: {exc}", flush=True)
                    continue
                row[prec] = {"fp32_top1": m["accuracy"]["fp32_top1"], "top1": m["accuracy"]["deployed_top1"],
                             "drop_pts": m["accuracy"]["drop_pts"], "fp32_ms": m["latency"]["fp32_ms"],
                             "ms": m["latency"]["measured_ms"], "speedup": m["latency"]["speedup_vs_fp32"],
                             "policy": m["policy_summary"]}
            out[f"{name}/{device}"] = {"arch": a.to_str(), **row}
            print(f"{name} {device}: " + _row_md(row), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-imagenet", action="store_true")
    ap.add_argument("--skip-fmnist", action="store_true")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--max-accuracy-drop", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices.base import host_facts

    work = Path(tempfile.mkdtemp(prefix="hwnas-bench-export-"))
    res: dict = {"host": host_facts(), "threads": args.threads, "rounds": args.rounds}
    t0 = time.time()
    if not args.skip_imagenet:
        res["imagenet_size"] = part_a(args, work)
    if not args.skip_fmnist:
        res["fmnist"] = part_b(args, work)
    res["wall_s"] = time.time() - t0
    lines = [f"# Export benchmark ({res['host']['cpu']}, {args.threads} thread(s))", ""]
    if "imagenet_size" in res:
        variants = list(next(iter(res["imagenet_size"].values()))["latency_ms"])
        lines += ["## ofa-mbv3-w1.0 subnets: reference-normalised latency (ms) and speed-up over ORT FP32", "",
                  "| subnet | MMACs | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
        for name, r in res["imagenet_size"].items():
            lines.append(f"| {name} | {r['macs_m']:.0f} | " + " | ".join(
                f"{r['latency_ms'][v]:.2f} ({r['speedup_vs_ort_fp32'][v]:.2f}x)" for v in variants) + " |")
        worst = max(max(r["round_dev"].values()) for r in res["imagenet_size"].values())
        lines += ["", f"Noise: worst deviation of a round from its variant's median {worst:.1%} "
                  f"({args.rounds} rounds, shuffled)."]
    if "fmnist" in res:
        lines += ["", f"## Fashion-MNIST subnets ({res['fmnist']['weights']})", "",
                  "| subnet / device | FP32 top-1 | INT8 top-1 (change) | mixed top-1 (change) | FP32 ms | INT8 ms | mixed ms | mixed policy |",
                  "|---|---|---|---|---|---|---|---|"]
        for k, r in res["fmnist"].items():
            if k == "weights":
                continue
            lines.append(f"| {k} | " + _row_md(r) + " |")
    lines.append(f"\nwall time {res['wall_s']:.0f} s")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(res, indent=1, default=float))
    (args.out / "export.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
