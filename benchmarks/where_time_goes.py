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

The same breakdown for ONNX Runtime (FP32 and hwnas's static INT8, QDQ), from ORT's kernel profiler:
convolutions are classed by their weight shape, and the quantize / dequantize kernels in "rest" are
shown on their own. The profiler inflates kernel times, so each class is its share of the profiled
total times the end-to-end time measured without it.

    python benchmarks/where_time_goes.py [--subnets min,mid,max] [--runs 200] [--runtimes openvino,onnxruntime]
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def conv_class(op: str, inputs: list, by_name: dict[str, str] | None = None, node: str = "") -> str:
    """Class of one ORT kernel: from its weight's shape ([O, I/groups, kh, kw]) where ORT shows it, else
    (an NHWC QLinearConv, whose weights are prepacked) from the ONNX node it came from (``by_name``)."""
    if op not in ("Conv", "FusedConv", "QLinearConv"):
        return "rest"
    w = inputs[1] if op in ("Conv", "FusedConv") and len(inputs) > 1 else None
    if w is not None and len(w) == 4:
        if w[1] == 1 and w[2] > 1:
            return "depthwise conv"
        return "pointwise conv" if list(w[2:]) == [1, 1] else "other conv"
    return (by_name or {}).get(re.sub(r"_token_\d+$", "", node), "other conv")


def onnx_conv_classes(model: Path) -> dict[str, str]:
    """ONNX Conv node name → class, from its group and kernel attributes."""
    import onnx

    out = {}
    for n in onnx.load(str(model)).graph.node:
        if n.op_type == "Conv":
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            k = list(a.get("kernel_shape", [1, 1]))
            out[n.name] = "depthwise conv" if a.get("group", 1) > 1 else "pointwise conv" if k == [1, 1] else "other conv"
    return out


def ort_breakdown(dev, model: Path, runs: int) -> dict:
    """Per class: microseconds per inference (profiled shares × the unprofiled median) and the kernels."""
    from hwnas.devices.timing import TimingConfig

    wall = dev.measure(model, TimingConfig(bursts=10, burst_s=0.04), reference="none").stats.median_ms * 1e3
    recs = dev.kernel_profile(model, runs=runs)
    by_name = onnx_conv_classes(model)
    acc = dict.fromkeys(CLASSES, 0.0)
    kernels: dict[str, Counter] = defaultdict(Counter)
    qdq = 0.0
    for r in recs:
        c = conv_class(r["op"], r["inputs"], by_name, r["node"])
        acc[c] += r["us"]
        kernels[c][r["op"]] += 1
        if r["op"] in ("QuantizeLinear", "DequantizeLinear"):
            qdq += r["us"]
    scale = wall / max(sum(acc.values()), 1e-9)
    return {"wall_us": wall, "class_us": {c: v * scale for c, v in acc.items()}, "qdq_us": qdq * scale,
            "kernels": {c: [k for k, _ in kernels[c].most_common(4)] for c in CLASSES}}


def table(got: dict, base_us: float, extra: str | None = None) -> list[str]:
    """Markdown rows of one runtime's variants (``base_us``: its FP32 per-class total)."""
    head = "| variant | ms | × FP32 | " + " | ".join(f"{c} µs (share)" for c in CLASSES) + " | ceiling | "
    head += f"{extra} | " if extra else ""
    lines = [head + "pointwise kernels |", "|---|---|---|" + "---|" * len(CLASSES) + "---|" + ("---|" if extra else "")
             + "---|"]
    base_wall = got["fp32"]["wall_us"]
    for v, g in got.items():
        if "error" in g:
            lines.append(f"| {v} | failed: {g['error']} |" + " |" * (len(CLASSES) + 3 + bool(extra)))
            continue
        tot = sum(g["class_us"].values())
        g["speedup"] = base_wall / g["wall_us"]
        g["ceiling_pointwise_free"] = base_us / max(tot - g["class_us"]["pointwise conv"], 1e-9)
        cells = [f"{g['class_us'][c]:.0f} ({g['class_us'][c] / tot:.0%})" for c in CLASSES]
        lines.append(f"| {v} | {g['wall_us'] / 1e3:.2f} | {g['speedup']:.2f}x | " + " | ".join(cells) +
                     f" | {g['ceiling_pointwise_free']:.2f}x | " + (f"{g.get('qdq_us', 0):.0f} | " if extra else "") +
                     f"{', '.join(g['kernels']['pointwise conv'][:2])} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subnets", default="min,mid,max")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--runtimes", default="openvino,onnxruntime", help="comma-separated: openvino, onnxruntime")
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
    runtimes = args.runtimes.split(",")
    ov = get_device("openvino-cpu", threads=1, perf_count=True) if "openvino" in runtimes else None
    floats = ov.float_precisions() if ov else ()
    ort = get_device("onnxruntime-cpu", threads=1)
    rng = np.random.default_rng(1)
    res: dict = {"host": host, "subnets": {}}
    lines = [f"# Where the time goes ({host.get('cpu')}, ISA {', '.join(host.get('isa', []))}, 1 thread)", "",
             f"OpenVINO: per-layer counters over {args.runs} inferences per variant (median per class). ONNX Runtime: "
             "kernel-profiler shares times the unprofiled median. 'ceiling' = end-to-end speed-up over that runtime's "
             "FP32 if the variant's pointwise convolutions cost nothing.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.subnets.split(","):
            a = archs[name]
            fp32 = export_subnet(net, a, work / f"{name}.onnx")
            calib = rng.standard_normal((64, 3, a.r, a.r)).astype(np.float32)
            got, ort_got = {}, {}
            if "openvino" in runtimes:
                int8 = ov_q.quantize(fp32, work / f"{name}.int8.xml", PrecisionPolicy.uniform("int8"), calib)
                variants = {p: (ov.with_precision(p), fp32) for p in floats}
                variants["int8"] = (ov.with_precision("fp32"), int8)
                if "bf16" in floats:
                    variants["int8+bf16"] = (ov.with_precision("bf16"), int8)
                for v, (d, path) in variants.items():
                    try:
                        got[v] = breakdown(d, path, args.runs)
                    except Exception as exc:  # noqa: BLE001 — a variant the runtime refuses is a result
                        got[v] = {"error": str(exc).splitlines()[0]}
            if "onnxruntime" in runtimes:
                q8 = ort.quantizer(fp32, work, calib).build(PrecisionPolicy.uniform("int8"), work / f"{name}.ort-int8.onnx")
                for v, path in (("fp32", fp32), ("int8", q8)):
                    ort_got[v] = ort_breakdown(ort, path, min(args.runs, 50))
            base = got.get("fp32") or ort_got["fp32"]
            lines += [f"## {name} ({a.to_str()}, {sp.macs(a) / 1e6:.0f} MMACs; FP32 {base['wall_us'] / 1e3:.2f} ms)", ""]
            if got:
                lines += ["OpenVINO (per-layer counters):", ""] + table(got, sum(got["fp32"]["class_us"].values())) + [""]
            if ort_got:
                lines += ["ONNX Runtime (kernel profiler; 'Q/DQ' = the QuantizeLinear / DequantizeLinear kernels, "
                          "part of 'rest'):", ""]
                lines += table(ort_got, sum(ort_got["fp32"]["class_us"].values()), "Q/DQ µs")
                lines.append("")
            res["subnets"][name] = {"arch": a.to_str(), "macs_m": sp.macs(a) / 1e6, "variants": got,
                                    "onnxruntime": ort_got}
            print(f"{name} done", flush=True)
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
