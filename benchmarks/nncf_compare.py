"""hwnas's searched policy vs the peer a user would pick instead: NNCF's ``quantize_with_accuracy_control``.

Same Fashion-MNIST subnet (shipped weights, BN recalibrated the same way), same data: NNCF calibrates on
the same 256 training images hwnas uses and controls accuracy on the same validation images hwnas's
policy search judges on, at the same maximum drop (absolute top-1 points). hwnas exports with
``--device onnxruntime-cpu,openvino-cpu`` (every runtime × policy, the fastest within the budget).
Both results are then judged alike: top-1 on the full test split through their runtime, and latency as
a paired, interleaved speed-up over ONNX Runtime FP32 in one process (:mod:`hwnas.exporting.gains`).
NNCF's model is timed under OpenVINO's f32 hint and, where the CPU has BF16, under bf16 (OpenVINO's own
default on such CPUs).

    python benchmarks/nncf_compare.py [--max-drop 0.5] [--arch ARCH] [--val-images 2000] [--pairs 12]
    python benchmarks/nncf_compare.py --tiny    # smallest subnet, 300 validation images, 6 pairs
    python benchmarks/nncf_compare.py --batch 32 --stem nncf_compare_batch32   # throughput: both at batch 32

hwnas always judges its policies on 2,000 validation images; ``--val-images`` sets NNCF's share, so
only the default (2000) gives both the same data (``--tiny`` gives NNCF 300, to be quick).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def nncf_accuracy_control(fp32: Path, calib: np.ndarray, val_items: list, max_drop: float, out_xml: Path,
                          batch: int = 1) -> dict:
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    core = ov.Core()

    def validate(compiled, items) -> tuple[float, None]:
        req = compiled.create_infer_request()
        hits = n = 0
        for x, y in items:
            if len(x) < batch:  # the model takes fixed batches: pad the last one, count only its images
                x = np.concatenate([x, np.zeros((batch - len(x), *x.shape[1:]), x.dtype)])
            pred = req.infer({0: x})[compiled.output(0)].argmax(1)[:len(y)]
            hits += int((pred == y).sum())
            n += len(y)
        return 100.0 * hits / n, None

    t0 = time.time()
    q = nncf.quantize_with_accuracy_control(
        ov.convert_model(str(fp32)), nncf.Dataset([calib[i:i + batch] for i in range(0, len(calib) - batch + 1, batch)]),
        nncf.Dataset(val_items), validate, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib) // batch)
    ov.save_model(q, str(out_xml), compress_to_fp16=False)
    del core
    return {"seconds": time.time() - t0, "model": str(out_xml)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--arch", default=None, help="fmnist-mbv3 arch (default: the largest subnet)")
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--devices", default="onnxruntime-cpu,openvino-cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=1, help="batch size of every model (throughput; ms per batch)")
    ap.add_argument("--stem", default="nncf_compare", help="results file name: results/STEM.json and .md")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.datasets import get_dataset
    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.exporting.build import CALIBRATION_IMAGES, fp32_subnet
    from hwnas.exporting.evaluate import DeviceEvaluator
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.pipeline import export
    from hwnas.supernet.spaces import get_space
    from hwnas.types import ArchConfig

    sp = get_space("fmnist-mbv3")
    if args.tiny:
        args.val_images, args.pairs = 300, 6
        args.arch = args.arch or sp.min_arch().to_str()
    arch = ArchConfig.parse(args.arch, "fmnist-mbv3") if args.arch else sp.max_arch()
    work = Path(tempfile.mkdtemp(prefix="hwnas-nncf-"))
    ds = get_dataset(None, arch.space)
    train, val, test = ds.splits("train", "val", "test")
    fp32, weights = fp32_subnet(arch, None, train, work, args.batch)
    calib = train.calibration_inputs(arch.r, CALIBRATION_IMAGES)
    sens = val.sample(args.val_images)
    items = [(x[i:i + args.batch], y[i:i + args.batch]) for x, y in sens.batches(arch.r, args.batch * 10)
             for i in range(0, len(y), args.batch)]
    res: dict = {"host": host_facts(), "arch": arch.to_str(), "weights": weights, "max_drop": args.max_drop,
                 "batch": args.batch,
                 "val_images": args.val_images, "command": "python benchmarks/nncf_compare.py " +
                 " ".join(argv if argv is not None else sys.argv[1:]), "load_avg_start": list(os.getloadavg())}
    res["nncf"] = nncf_accuracy_control(fp32, calib, items, args.max_drop, work / "nncf.xml", args.batch)
    print(f"NNCF accuracy control: {res['nncf']['seconds']:.0f} s", flush=True)
    t0 = time.time()
    b = export(arch=arch.to_str(), out=work / "hwnas", device=args.devices, max_accuracy_drop=args.max_drop,
               batch_size=args.batch, progress=lambda m: print(m, flush=True))
    m = b.manifest
    res["hwnas"] = {"seconds": time.time() - t0, "deployed": f"{m.device['name']} {m.policy_label}",
                    "reason": m.selection.get("reason"), "table": m.selection.get("table")}
    ort = get_device("onnxruntime-cpu", batch_size=args.batch)
    ev = lambda d: DeviceEvaluator(d, test, arch.r, {})  # noqa: E731
    fp32_top1 = ev(ort).accuracy(fp32)
    cfg = GainConfig(min_pairs=args.pairs, step=3, max_pairs=args.pairs * 2, max_s=30.0)
    rows = {"hwnas " + res["hwnas"]["deployed"]: (get_device(m.device["name"], precision=m.device["precision"],
                                                            batch_size=args.batch), b.file(m.deployed))}
    ov = get_device("openvino-cpu", batch_size=args.batch)
    for p in ov.float_precisions():
        if p in ("fp32", "bf16"):
            rows[f"nncf accuracy control (openvino {p})"] = (ov.with_precision(p), work / "nncf.xml")
    out = {}
    for name, (d, path) in rows.items():
        top1 = ev(d).accuracy(path)
        g = paired_gain(ort, fp32, d, path, cfg)
        out[name] = {"top1": top1, "drop_pts": fp32_top1 - top1, "within_budget": fp32_top1 - top1 <= args.max_drop,
                     "speedup_vs_ort_fp32": g.speedup, "ci": list(g.speedup_ci), "ms": g.candidate_ms,
                     "ort_fp32_ms": g.baseline_ms, "verdict": g.verdict}
        print(f"{name}: top-1 {top1:.2f} % (drop {fp32_top1 - top1:+.2f}), {g.describe()}", flush=True)
    res.update(fp32_top1=fp32_top1, results=out, load_avg_end=list(os.getloadavg()))
    lines = [f"# hwnas vs NNCF quantize_with_accuracy_control ({res['host']['cpu']}, ISA "
             f"{', '.join(res['host'].get('isa', []))}, batch {args.batch})", "",
             f"Subnet `{arch.to_str()}` ({weights}); max drop {args.max_drop} pts (validation, {args.val_images} "
             f"images); judged on the test split ({len(test)} images), FP32 (ORT) top-1 {fp32_top1:.2f} %.", "",
             f"| method | test top-1 | drop | within budget | speed-up vs ORT FP32 (95 % CI) | ms{' per batch' if args.batch > 1 else ''} | time to produce |",
             "|---|---|---|---|---|---|---|"]
    for name, r in out.items():
        secs = res["hwnas"]["seconds"] if name.startswith("hwnas") else res["nncf"]["seconds"]
        lines.append(f"| {name} | {r['top1']:.2f} | {r['drop_pts']:+.2f} | {'yes' if r['within_budget'] else 'no'} | "
                     f"{r['speedup_vs_ort_fp32']:.2f}x ({r['ci'][0]:.2f}-{r['ci'][1]:.2f}) | {r['ms']:.4f} | "
                     f"{secs:.0f} s |")
    lines += ["", f"hwnas chose: {res['hwnas']['reason']}", "",
              f"load average {res['load_avg_start'][0]:.2f} → {res['load_avg_end'][0]:.2f}; command: "
              f"`{res['command']}`"]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(res, indent=1, default=float))
    (args.out / f"{args.stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
