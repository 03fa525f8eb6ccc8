"""Where an OpenVINO subnet's time goes, per precision: which kernels ran, how long, and the ceiling that leaves.

For ofa-mbv3-w1.0 min / mid / max subnets (the subnets of ``benchmarks/export.py``; random weights,
synthetic calibration: latency does not depend on the values), OpenVINO CPU at 1 thread in FP32,
each float precision this CPU has (BF16 / FP16), and INT8 (NNCF, rest FP32 and rest BF16) is run
with per-layer counters (``PERF_COUNT``) for ``--runs`` inferences. Each executed node is put in one
class from the runtime model — 1×1 (pointwise) convolution, depthwise convolution, other
convolution, or everything else (activations, SE pooling/multiply, adds, FakeQuantize, reorders) —
and its kernel implementation is recorded (e.g. ``brgconv_avx512_amx_1x1`` names AMX tiles).

Printed per subnet: the share of FP32 time in each class, each variant's time per class relative to
FP32, and the Amdahl ceiling — the speed-up if the pointwise convolutions cost nothing and the rest
ran as it does in that variant. It says how much a precision can still give end to end, and where.

    python benchmarks/where_time_goes.py [--subnets min,mid,max] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

CLASSES = ("pointwise conv", "depthwise conv", "other conv", "rest")


def node_classes(compiled) -> dict[str, str]:
    """Runtime node name → class, from the executed graph's layer types and weight shapes."""
    out = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = str(getattr(info["layerType"], "value", info["layerType"])) if "layerType" in info else ""
        name = op.get_friendly_name()
        cls = "rest"
        if kind == "Convolution" and op.get_input_size() > 1:
            w = op.input(1).get_partial_shape()
            dims = [d.get_length() if d.is_static else -1 for d in w]
            groups = dims[0] if len(dims) == 5 else 1  # grouped weights: [G, O/G, I/G, kh, kw]
            k = dims[-2:]
            if groups > 1 and dims[1] == 1 and dims[2] == 1:
                cls = "depthwise conv"
            elif k == [1, 1]:
                cls = "pointwise conv"
            else:
                cls = "other conv"
        elif kind == "Convolution":
            cls = "other conv"
        out[name] = cls
    return out


def breakdown(dev, model: Path, runs: int) -> dict:
    """Per class: microseconds per inference (median over ``runs``) and the kernels that ran."""
    m = dev.load(model)
    try:
        classes = node_classes(m.compiled)
        for _ in range(20):
            m.run()
        per: dict[str, list[float]] = defaultdict(list)
        kernels: dict[str, Counter] = defaultdict(Counter)
        total = []
        for _ in range(runs):
            t0 = time.perf_counter()
            m.run()
            total.append((time.perf_counter() - t0) * 1e6)
            acc = dict.fromkeys(CLASSES, 0.0)
            for p in m.request.get_profiling_info():
                us = p.real_time.total_seconds() * 1e6
                if us <= 0:
                    continue
                c = classes.get(p.node_name, "rest")
                acc[c] += us
                kernels[c][p.exec_type] += 1
            for c, v in acc.items():
                per[c].append(v)
    finally:
        m.close()
    return {"wall_us": float(np.median(total)), "class_us": {c: float(np.median(v)) for c, v in per.items()},
            "kernels": {c: [k for k, _ in kernels[c].most_common(4)] for c in CLASSES}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subnets", default="min,mid,max")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--stem", default="where_time_goes")
    args = ap.parse_args(argv)

    from hwnas.devices import get_device
    from hwnas.devices import openvino_quant as ov_q
    from hwnas.devices.base import host_facts
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.pipeline.jobs import quiet_torch
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.types import PrecisionPolicy

    quiet_torch()
    host = host_facts()
    t_start, load0 = time.time(), os.getloadavg()
    net = ElasticMBV3("ofa-mbv3-w1.0")
    sp = net.space
    archs = {"min": sp.min_arch(160), "mid": sp.sample(np.random.default_rng(0), [192]), "max": sp.max_arch(224)}
    ov = get_device("openvino-cpu", threads=1, perf_count=True)
    floats = ov.float_precisions()
    rng = np.random.default_rng(1)
    res: dict = {"host": host, "subnets": {}}
    lines = [f"# Where OpenVINO's time goes ({host.get('cpu')}, ISA {', '.join(host.get('isa', []))}, 1 thread)", "",
             f"Per-layer counters over {args.runs} inferences per variant (median per class); 'ceiling' = end-to-end "
             "speed-up over FP32 if that variant's pointwise convolutions cost nothing.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.subnets.split(","):
            a = archs[name]
            fp32 = export_subnet(net, a, work / f"{name}.onnx")
            calib = rng.standard_normal((64, 3, a.r, a.r)).astype(np.float32)
            int8 = ov_q.quantize(fp32, work / f"{name}.int8.xml", PrecisionPolicy.uniform("int8"), calib)
            variants = {p: (ov.with_precision(p), fp32) for p in floats}
            variants["int8"] = (ov.with_precision("fp32"), int8)
            if "bf16" in floats:
                variants["int8+bf16"] = (ov.with_precision("bf16"), int8)
            got = {}
            for v, (d, path) in variants.items():
                try:
                    got[v] = breakdown(d, path, args.runs)
                except Exception as exc:  # noqa: BLE001 — a variant the runtime refuses is a result
                    got[v] = {"error": str(exc).splitlines()[0]}
            base = got["fp32"]
            bt = sum(base["class_us"].values())
            lines += [f"## {name} ({a.to_str()}, {sp.macs(a) / 1e6:.0f} MMACs; FP32 {base['wall_us'] / 1e3:.2f} ms)", "",
                      "| variant | ms | × FP32 | " + " | ".join(f"{c} µs (share)" for c in CLASSES) +
                      " | ceiling | pointwise kernels |", "|---|---|---|" + "---|" * len(CLASSES) + "---|---|"]
            for v, g in got.items():
                if "error" in g:
                    lines.append(f"| {v} | failed: {g['error']} |" + " |" * (len(CLASSES) + 3))
                    continue
                tot = sum(g["class_us"].values())
                ceiling = bt / max(tot - g["class_us"]["pointwise conv"], 1e-9)
                g["speedup"] = base["wall_us"] / g["wall_us"]
                g["ceiling_pointwise_free"] = ceiling
                cells = [f"{g['class_us'][c]:.0f} ({g['class_us'][c] / tot:.0%})" for c in CLASSES]
                lines.append(f"| {v} | {g['wall_us'] / 1e3:.2f} | {g['speedup']:.2f}x | " + " | ".join(cells) +
                             f" | {ceiling:.2f}x | {', '.join(g['kernels']['pointwise conv'][:2])} |")
            lines.append("")
            res["subnets"][name] = {"arch": a.to_str(), "macs_m": sp.macs(a) / 1e6, "variants": got}
            print("\n".join(lines[-(len(got) + 4):]), flush=True)
    res.update(wall_s=time.time() - t_start, loadavg_start=list(load0), loadavg_end=list(os.getloadavg()))
    lines.append(f"Load average {load0[0]:.2f} → {res['loadavg_end'][0]:.2f}; wall {res['wall_s']:.0f} s; command: "
                 f"`python benchmarks/where_time_goes.py {' '.join(argv if argv is not None else sys.argv[1:])}`")
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.stem}.json").write_text(json.dumps(res, indent=1, default=str))
    (args.results / f"{args.stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
