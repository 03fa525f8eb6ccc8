"""Export benchmark: every runtime × precision × policy against ONNX Runtime FP32, side by side in one run.

Part A — ImageNet-size ofa-mbv3-w1.0 subnets (min / a sampled mid / max; random weights: latency does
not depend on the values; calibration uses 64 synthetic N(0,1) images, so no accuracy is claimed here).
Variants, where this machine has them: ORT FP32 (the baseline), ORT INT8 (QDQ, every layer), ORT
mixed (the layer groups whose INT8 gain is measurable, paired in context), OpenVINO FP32 / BF16 / FP16
(inference precision hint; BF16/FP16 only where the CPU has the instructions), OpenVINO INT8 with FP32
and with BF16 for the non-quantized layers (NNCF), OpenVINO mixed (measurable groups, at the float
precision of its fastest INT8), TVM FP32 (untuned; and meta-schedule-tuned for ``--tvm-tune-minutes`` on
the ``--tvm-tune-subnets``, from an empty tuning database, the tuning inside the first round). Each variant is compared with ORT FP32 by paired,
interleaved A/B bursts in the same process (:mod:`hwnas.exporting.gains`): a speed-up with its 95 %
confidence interval, per round; rounds visit the variants in shuffled order. The load average is
recorded with every subnet.

Part B — Fashion-MNIST subnets of the shipped super-network: ``export --device onnxruntime-cpu,openvino-cpu``
(every runtime × policy under the accuracy budget, judged on validation images, the winner reported on the
test split), with the table of what was tried.

Part C (``--fmnist-policies DEVICE[:FLOAT]``) — Fashion-MNIST on one device: FP32, all-INT8 and the
searched mixed policy exported as bundles at ``--batch``, their test top-1 side by side and their deployed
models timed against the FP32 bundle's and against ORT FP32: is the mixed policy faster than FP32 and more
accurate than all-INT8 within the budget?

    python benchmarks/export.py [--rounds 3] [--pairs 12] [--subnets min,mid,max] [--skip-fmnist]
    python benchmarks/export.py --tiny     # one small subnet, one round, no mixed search: a smoke run
    python benchmarks/export.py --subnets mid --no-mixed --skip-fmnist --tvm-tune-minutes 15 --stem export_tvm_tuned
    python benchmarks/export.py --batch 8 --subnets mid,max --no-mixed --no-tvm --skip-fmnist --stem export_batch8
    python benchmarks/export.py --batch 32 --skip-imagenet --fmnist-policies openvino-cpu --stem export_fmnist_batch32

``--batch N`` exports and times every variant at batch N (throughput: the speed-up per image is the
speed-up per batch); the default is the batch-1 latency a single request sees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def variants_for(name, a, net, devs, work: Path, calib, args, say) -> dict:
    """``variant → (device, model path)`` for one subnet."""
    from hwnas.devices import onnxruntime_quant as ort_q
    from hwnas.devices import openvino_quant as ov_q
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.types import PrecisionPolicy

    fp32 = export_subnet(net, a, work / f"{name}.onnx", batch_size=args.batch)
    pre = ort_q.preprocess(fp32, work / f"{name}.pre.onnx")
    out = {"ort-fp32": (devs["ort"], fp32),
           "ort-int8": (devs["ort"], ort_q.quantize(pre, work / f"{name}.int8.onnx", PrecisionPolicy.uniform("int8"),
                                                    calib))}
    if "openvino" in devs:
        ov_int8 = ov_q.quantize(fp32, work / f"{name}.ov-int8.xml", PrecisionPolicy.uniform("int8"), calib)
        for p, d in devs["openvino"].items():
            out[f"openvino-{p}"] = (d, fp32)
            out["openvino-int8" if p == "fp32" else f"openvino-int8+{p}"] = (d, ov_int8)
    if "tvm" in devs:
        out["tvm-fp32"] = (devs["tvm"], fp32)
    if "tvm-tuned" in devs and name in args.tvm_tune_subnets.split(","):
        out["tvm-tuned"] = (devs["tvm-tuned"], fp32)
    if args.mixed:
        out.update(mixed_variants(name, fp32, pre, devs, work, calib, out, args, say))
    return out


def mixed_variants(name, fp32, pre, devs, work: Path, calib, out, args, say) -> dict:
    """ORT and OpenVINO mixed policies: INT8 for the groups whose in-context gain is measurable."""
    from hwnas.devices import onnxruntime_quant as ort_q
    from hwnas.devices import openvino_quant as ov_q
    from hwnas.devices.base import onnx_nodes
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.exporting.mixed import layer_groups, only

    cfg = GainConfig.quick()
    res = {}
    groups = layer_groups([n for n, _ in onnx_nodes(pre)])
    keep = [g.name for g in groups
            if paired_gain(devs["ort"], fp32, devs["ort"], ort_q.quantize(pre, work / f"{name}.o-{g.name}.onnx",
                                                                           only(groups, [g.name]), calib), cfg).faster]
    say(f"{name}: ORT groups with a measurable INT8 gain: {keep or 'none'}")
    res["ort-mixed"] = (devs["ort"], ort_q.quantize(pre, work / f"{name}.ort-mixed.onnx", only(groups, keep), calib))
    if "openvino" in devs:
        p = "bf16" if "bf16" in devs["openvino"] else "fp32"
        d = devs["openvino"][p]
        ov_groups = layer_groups([n for n, _ in onnx_nodes(fp32)])
        keep = [g.name for g in ov_groups
                if paired_gain(d, fp32, d, ov_q.quantize(fp32, work / f"{name}.v-{g.name}.xml",
                                                         only(ov_groups, [g.name]), calib), cfg).faster]
        say(f"{name}: OpenVINO ({p}) groups with a measurable INT8 gain: {keep or 'none'}")
        res[f"openvino-mixed/{p}"] = (d, ov_q.quantize(fp32, work / f"{name}.ov-mixed.xml",
                                                       only(ov_groups, keep, p), calib))
    return res


def part_a(args, work: Path, say) -> dict:
    from hwnas.devices import get_device
    from hwnas.errors import DeviceError
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.supernet.elastic import ElasticMBV3

    net = ElasticMBV3("ofa-mbv3-w1.0").eval()
    sp = net.space
    r = args.resolution
    archs = {"min": sp.min_arch(r or 160), "mid": sp.sample(np.random.default_rng(0), [r or 192]),
             "max": sp.max_arch(r or 224)}
    archs = {k: v for k, v in archs.items() if k in args.subnets}
    devs: dict = {"ort": get_device("onnxruntime-cpu", threads=args.threads, batch_size=args.batch)}
    try:
        ov = get_device("openvino-cpu", threads=args.threads, batch_size=args.batch)
        devs["openvino"] = {p: ov.with_precision(p) for p in ov.float_precisions()}
    except ImportError as exc:
        say(f"OpenVINO skipped: {exc}")
    if args.tvm:
        devs["tvm"] = get_device("tvm-llvm", threads=args.threads, batch_size=args.batch)
        if args.tvm_tune_minutes > 0:  # a fresh database: what tuning finds in the time given, nothing older
            devs["tvm-tuned"] = get_device("tvm-llvm", threads=args.threads, batch_size=args.batch,
                                           tune_minutes=args.tvm_tune_minutes, tuning_db=str(work / "tvm-db"))
            from hwnas.devices.tvm_tune import throttled

            devs["tvm-tuned"].tune_progress = throttled(say, 60.0)
    cfg = GainConfig(min_pairs=args.pairs, step=3, max_pairs=args.pairs * 2, max_s=30.0, burst_s=0.05)
    rng = np.random.default_rng(1)
    out: dict = {}
    for name, a in archs.items():
        t0, load0 = time.time(), os.getloadavg()
        calib = rng.standard_normal((max(64, 8 * args.batch), 3, a.r, a.r)).astype(np.float32)
        variants = variants_for(name, a, net, devs, work, calib, args, say)
        rounds: dict[str, list[dict]] = {v: [] for v in variants if v != "ort-fp32"}
        base_dev, base = variants["ort-fp32"]
        failed: dict[str, str] = {}
        for _ in range(args.rounds):
            for v in rng.permutation([v for v in rounds if v not in failed]):
                d, p = variants[v]
                try:
                    rounds[v].append(paired_gain(base_dev, base, d, p, cfg).to_dict())
                except DeviceError as exc:  # the runtime refuses this variant: a result, not a crash
                    failed[v] = str(exc)
                    say(f"{name}: {v} failed: {exc}")
        out[name] = summarize_subnet(a, sp, {v: r for v, r in rounds.items() if v not in failed}, t0, load0)
        out[name]["failed"] = failed
        say(f"{name}: " + ", ".join(f"{v} {s['speedup']:.2f}x" for v, s in out[name]["variants"].items()))
    return out


def summarize_subnet(a, sp, rounds: dict, t0: float, load0) -> dict:
    res = {v: summarize_rounds(rs) for v, rs in rounds.items()}
    best = max(res, key=lambda v: res[v]["speedup"])
    return {"arch": a.to_str(), "macs_m": sp.macs(a) / 1e6, "variants": res, "best": best,
            "best_speedup": res[best]["speedup"], "meets_2x": res[best]["speedup"] >= 2.0,
            "load_avg_start": list(load0), "load_avg_end": list(os.getloadavg()), "seconds": time.time() - t0}


def part_b(args, work: Path, say) -> dict:
    from hwnas.pipeline import export
    from hwnas.supernet import load_supernet

    net, source = load_supernet("fmnist-mbv3", args.checkpoint, allow_random=False)
    sp = net.space
    archs = {"largest": sp.max_arch(), "mid": sp.sample(np.random.default_rng(3), [28])}
    archs = {k: v for k, v in archs.items() if k in args.fmnist_subnets.split(",")}
    out: dict = {"weights": source}
    for name, a in archs.items():
        m = export(arch=a.to_str(), out=work / f"fmnist-{name}", device=args.fmnist_devices,
                   max_accuracy_drop=args.max_accuracy_drop, checkpoint=args.checkpoint, threads=args.threads,
                   batch_size=args.batch, overwrite=True, progress=say).manifest
        out[name] = {"arch": a.to_str(), "deployed": f"{m.device['name']} {m.policy_label}",
                     "reason": m.selection.get("reason"), "fp32_top1": m.accuracy.fp32_top1,
                     "top1": m.accuracy.deployed_top1, "drop_pts": m.accuracy.drop_pts, "ms": m.latency.measured_ms,
                     "fp32_ms": m.latency.fp32_ms, "table": m.selection.get("table", [])}
        say(f"{name}: {out[name]['reason']}")
    return out


def part_c(args, work: Path, say) -> dict:
    """Fashion-MNIST, one device: FP32, all-INT8 and the searched mixed policy exported as bundles (test
    top-1 from each manifest), then every deployed model timed against the FP32 bundle's and against ORT
    FP32 in paired, interleaved bursts, ``--rounds`` times in shuffled order."""
    from hwnas.devices import get_device
    from hwnas.exporting.bundle import DeploymentBundle
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.pipeline import export
    from hwnas.supernet.spaces import get_space

    dev_name, _, fp = args.fmnist_policies.partition(":")
    fp = fp or "fp32"
    sp = get_space("fmnist-mbv3")  # the archs only: each export loads the weights itself
    archs = {"largest": sp.max_arch(), "mid": sp.sample(np.random.default_rng(3), [28])}
    archs = {k: v for k, v in archs.items() if k in args.fmnist_subnets.split(",")}
    dev = get_device(dev_name, threads=args.threads, batch_size=args.batch, precision=fp)
    ort = get_device("onnxruntime-cpu", threads=args.threads, batch_size=args.batch)
    cfg = GainConfig(min_pairs=args.pairs, step=3, max_pairs=args.pairs * 2, max_s=30.0, burst_s=0.05)
    rng = np.random.default_rng(2)
    out: dict = {"device": dev_name, "float_precision": fp}
    for name, a in archs.items():
        t0, load0 = time.time(), os.getloadavg()
        bundles = {}
        for pol in ("fp32", "int8", "mixed"):
            b = export(arch=a.to_str(), out=work / f"fmnist-{name}-{pol}", device=dev_name, precision=pol,
                       float_precision=(fp,), max_accuracy_drop=args.max_accuracy_drop, checkpoint=args.checkpoint,
                       threads=args.threads, batch_size=args.batch, overwrite=True, progress=say)
            bundles[pol] = b
            say(f"{name} {pol}: {b.manifest.policy_label}, test top-1 {b.manifest.accuracy.deployed_top1:.2f} %")
        fp32_model = bundles["fp32"].file(bundles["fp32"].manifest.deployed)
        ort_fp32 = bundles["fp32"].file("model.fp32.onnx")
        pairs = {f"{pol} vs {base}": (bdev, bmodel, bundles[pol].file(bundles[pol].manifest.deployed))
                 for pol in ("int8", "mixed") for base, bdev, bmodel in (("fp32", dev, fp32_model),
                                                                          ("ort-fp32", ort, ort_fp32))}
        pairs["fp32 vs ort-fp32"] = (ort, ort_fp32, fp32_model)
        rounds: dict[str, list[dict]] = {k: [] for k in pairs}
        for _ in range(args.rounds):
            for k in rng.permutation(list(pairs)):
                bdev, bmodel, model = pairs[k]
                rounds[k].append(paired_gain(bdev, bmodel, dev, model, cfg).to_dict())
        m = {pol: b.manifest for pol, b in bundles.items()}
        out[name] = {"arch": a.to_str(), "policies": {
            pol: {"label": mm.policy_label, "summary": mm.policy_summary, "top1": mm.accuracy.deployed_top1,
                  "drop_pts": mm.accuracy.drop_pts, "ran": mm.runtime_precisions.get("summary")}
            for pol, mm in m.items()}, "fp32_top1": m["fp32"].accuracy.fp32_top1,
            "speedups": {k: summarize_rounds(v) for k, v in rounds.items()},
            "load_avg_start": list(load0), "load_avg_end": list(os.getloadavg()), "seconds": time.time() - t0}
        mixed, int8 = out[name]["policies"]["mixed"], out[name]["policies"]["int8"]
        sv = out[name]["speedups"]["mixed vs fp32"]
        out[name]["mixed_wins"] = bool(sv["ci_low"] > 1.0 and mixed["top1"] > int8["top1"]
                                       and mixed["drop_pts"] <= args.max_accuracy_drop)
        say(f"{name}: mixed {sv['speedup']:.2f}x FP32, top-1 {mixed['top1']:.2f} % vs all-INT8 {int8['top1']:.2f} %")
    return out


def summarize_rounds(rs: list[dict]) -> dict:
    s = [x["speedup"] for x in rs]
    return {"speedup": float(np.median(s)), "ci_low": float(min(x["speedup_ci"][0] for x in rs)),
            "ci_high": float(max(x["speedup_ci"][1] for x in rs)), "rounds": s,
            "verdicts": [x["verdict"] for x in rs], "baseline_ms": float(np.median([x["baseline_ms"] for x in rs])),
            "ms": float(np.median([x["candidate_ms"] for x in rs])), "pairs": [x["n_pairs"] for x in rs]}


def markdown(res: dict, args) -> str:
    lines = [f"# Export benchmark ({res['host']['cpu']}, ISA {', '.join(res['host'].get('isa', []))}, "
             f"{args.threads} thread(s), batch {args.batch})", ""]
    if "imagenet_size" in res:
        a = res["imagenet_size"]
        variants = sorted({v for r in a.values() for v in [*r["variants"], *r.get("failed", {})]})
        lines += ["## ofa-mbv3-w1.0 subnets: speed-up over ORT FP32 (median of rounds; 95 % CI range over rounds)",
                  "", f"| subnet | MMACs | ORT FP32 ms{' per batch' if args.batch > 1 else ''} | " + " | ".join(variants) + " | best | ≥ 2.0x | load avg |",
                  "|---|---|---|" + "---|" * len(variants) + "---|---|---|"]
        for name, r in a.items():
            cells = [f"{r['variants'][v]['speedup']:.2f}x ({r['variants'][v]['ci_low']:.2f}-"
                     f"{r['variants'][v]['ci_high']:.2f})" if v in r["variants"] else
                     "failed" if v in r.get("failed", {}) else "—" for v in variants]
            base = np.median([x["baseline_ms"] for x in r["variants"].values()])
            lines.append(f"| {name} | {r['macs_m']:.0f} | {base:.2f} | " + " | ".join(cells) +
                         f" | {r['best']} {r['best_speedup']:.2f}x | {'yes' if r['meets_2x'] else 'no'} | "
                         f"{r['load_avg_start'][0]:.2f} → {r['load_avg_end'][0]:.2f} |")
        why = {f"{v}: {msg}" for r in a.values() for v, msg in r.get("failed", {}).items()}
        lines += [""] + [f"failed — {w}" for w in sorted(why)] if why else []
    if "fmnist" in res:
        lines += ["", f"## Fashion-MNIST subnets ({res['fmnist']['weights']}): runtime × policy chosen by measurement",
                  "", "| subnet | deployed | FP32 top-1 → deployed (test) | ms (FP32 → deployed) | why |",
                  "|---|---|---|---|---|"]
        for k, r in res["fmnist"].items():
            if k != "weights":
                lines.append(f"| {k} | {r['deployed']} | {r['fp32_top1']:.2f} → {r['top1']:.2f} | "
                             f"{r['fp32_ms']:.3f} → {r['ms']:.3f} | {r['reason']} |")
    if "fmnist_policies" in res:
        c = res["fmnist_policies"]
        lines += ["", f"## Fashion-MNIST, one device ({c['device']}, {c['float_precision']} outside INT8): FP32, "
                  f"all-INT8 and the searched mixed policy (≤ {args.max_accuracy_drop} pts), test top-1; speed-up "
                  "median of rounds (95 % CI range over rounds)", "",
                  "| subnet | policy | ran | test top-1 (drop) | vs its FP32 | vs ORT FP32 | load avg |",
                  "|---|---|---|---|---|---|---|"]
        for k, r in c.items():
            if not isinstance(r, dict):
                continue
            for pol, p in r["policies"].items():
                cell = {b: r["speedups"].get(f"{pol} vs {b}") for b in ("fp32", "ort-fp32")}
                fmt = ["1.00x" if pol == "fp32" and b == "fp32" else
                       f"{x['speedup']:.2f}x ({x['ci_low']:.2f}-{x['ci_high']:.2f})" if x else "—"
                       for b, x in cell.items()]
                lines.append(f"| {k} | {pol}: {p['label']} | {p['ran']} | {p['top1']:.2f} ({p['drop_pts']:+.2f}) | "
                             f"{fmt[0]} | {fmt[1]} | {r['load_avg_start'][0]:.2f} → {r['load_avg_end'][0]:.2f} |")
            lines.append(f"| {k} | mixed faster than FP32 and more accurate than all-INT8 within budget: "
                         f"{'yes' if r['mixed_wins'] else 'no'} | | | | | |")
    lines.append(f"\nwall time {res['wall_s']:.0f} s; command: `{res['command']}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=12, help="burst pairs per comparison (at least)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="batch size every variant is exported and timed at")
    ap.add_argument("--subnets", default="min,mid,max")
    ap.add_argument("--resolution", type=int, default=0, help="one resolution for every subnet (0: 160/192/224)")
    ap.add_argument("--no-mixed", dest="mixed", action="store_false")
    ap.add_argument("--no-tvm", dest="tvm", action="store_false")
    ap.add_argument("--tvm-tune-minutes", type=float, default=0.0, help="also TVM meta-schedule-tuned for this long")
    ap.add_argument("--tvm-tune-subnets", default="mid", help="the subnets the tuned TVM variant runs on")
    ap.add_argument("--stem", default="export", help="results file name: results/STEM.json and .md")
    ap.add_argument("--tiny", action="store_true", help="min subnet at r128, 1 round, 6 pairs, no mixed/TVM/fmnist")
    ap.add_argument("--skip-imagenet", action="store_true")
    ap.add_argument("--skip-fmnist", action="store_true")
    ap.add_argument("--fmnist-devices", default="onnxruntime-cpu,openvino-cpu")
    ap.add_argument("--fmnist-subnets", default="largest,mid")
    ap.add_argument("--fmnist-policies", default="", metavar="DEVICE[:FLOAT]",
                    help="also FP32 / all-INT8 / mixed bundles on this one device (e.g. openvino-cpu:bf16), "
                         "timed side by side")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--max-accuracy-drop", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error(f"--batch must be at least 1, got {args.batch}")
    if args.tiny:
        args.subnets, args.resolution, args.rounds, args.pairs = "min", 128, 1, 6
        args.mixed = args.tvm = False
        args.skip_fmnist = True
    args.subnets = args.subnets.split(",")

    from hwnas.devices.base import host_facts

    work = Path(tempfile.mkdtemp(prefix="hwnas-bench-export-"))
    res: dict = {"host": host_facts(), "threads": args.threads, "batch": args.batch, "rounds": args.rounds,
                 "pairs": args.pairs,
                 "command": "python benchmarks/export.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    t0 = time.time()
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    if not args.skip_imagenet:
        res["imagenet_size"] = part_a(args, work, say)
    if not args.skip_fmnist:
        res["fmnist"] = part_b(args, work, say)
    if args.fmnist_policies:
        res["fmnist_policies"] = part_c(args, work, say)
    res["wall_s"] = time.time() - t0
    text = markdown(res, args)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(res, indent=1, default=float))
    (args.out / f"{args.stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
