"""OpenVINO INT8 in its two file formats, side by side: NNCF's OpenVINO backend (an IR, what
``export`` deploys) against NNCF's ONNX backend (a QDQ ONNX file the CPU plugin reads), both against the
FP32 model on the same device, in paired interleaved bursts (:mod:`hwnas.exporting.gains`).

The question it answers: does a model quantized as QDQ ONNX run as fast on OpenVINO as the IR? The
mixed-precision search and the INT8 profiles time whichever file they are handed, so a slower format
misprices every INT8 layer. Subnets: a sampled Fashion-MNIST one (r28) and a sampled ofa-mbv3-w1.0 one
(r192), random weights and N(0,1) calibration (latency does not depend on the values).

    python benchmarks/openvino_int8_formats.py [--batches 1,4] [--rounds 3]
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="fmnist-mbv3,ofa-mbv3-w1.0")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--stem", default="openvino_int8_formats")
    args = ap.parse_args(argv)

    from hwnas.devices import get_device
    from hwnas.devices import openvino_quant as ovq
    from hwnas.devices.base import host_facts
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet
    from hwnas.types import PrecisionPolicy

    from export import summarize_rounds  # the export benchmark's summary of paired rounds (same folder)

    work = Path(tempfile.mkdtemp(prefix="hwnas-bench-ovfmt-"))
    res: dict = {"host": host_facts(), "threads": args.threads, "rounds": args.rounds, "rows": [],
                 "command": "python benchmarks/openvino_int8_formats.py " +
                            " ".join(argv if argv is not None else sys.argv[1:])}
    t_start = time.time()
    rng = np.random.default_rng(1)
    cfg = GainConfig.quick()
    for space in args.spaces.split(","):
        net = load_supernet(space, None, allow_random=True)[0].eval()
        sp = net.space
        a = sp.sample(np.random.default_rng(3), [28] if space.startswith("fmnist") else [192])
        for b in map(int, args.batches.split(",")):
            load0 = os.getloadavg()
            fp32 = export_subnet(net, a, work / f"{space}-{b}.onnx", b)
            calib = rng.standard_normal((max(64, 8 * b), *sp.input_shape(a)[1:])).astype(np.float32)
            models = {"ir": ovq.quantize(fp32, work / f"{space}-{b}.xml", PrecisionPolicy.uniform("int8"), calib),
                      "qdq-onnx": ovq.quantize_onnx(fp32, work / f"{space}-{b}.qdq.onnx",
                                                    PrecisionPolicy.uniform("int8"), calib)}
            dev = get_device("openvino-cpu", threads=args.threads, batch_size=b)
            pairs = {"ir vs fp32": (fp32, models["ir"]), "qdq-onnx vs fp32": (fp32, models["qdq-onnx"]),
                     "ir vs qdq-onnx": (models["qdq-onnx"], models["ir"])}
            rounds: dict[str, list] = {k: [] for k in pairs}
            for _ in range(args.rounds):
                for k in rng.permutation(list(pairs)):
                    base, cand = pairs[k]
                    rounds[k].append(paired_gain(dev, base, dev, cand, cfg).to_dict())
            row = {"space": space, "arch": a.to_str(), "batch": b, "load_avg_start": list(load0),
                   "load_avg_end": list(os.getloadavg()),
                   "fp32_ms": float(np.median([g["baseline_ms"] for g in rounds["ir vs fp32"]]))}
            row.update({k: summarize_rounds(gs) for k, gs in rounds.items()})
            res["rows"].append(row)
            print(f"{space} batch {b}: " + ", ".join(f"{k} {row[k]['speedup']:.2f}x" for k in pairs), flush=True)
    res["wall_s"] = time.time() - t_start
    h = res["host"]
    lines = [f"# OpenVINO INT8: IR (NNCF OpenVINO backend) vs QDQ ONNX (NNCF ONNX backend) ({h['cpu']}, ISA "
             f"{', '.join(h.get('isa', []))}, {args.threads} thread(s))", "",
             "Speed-up, median of rounds (95 % CI range over rounds), paired interleaved bursts on openvino-cpu.", "",
             "| space | batch | FP32 ms | IR vs FP32 | QDQ ONNX vs FP32 | IR vs QDQ ONNX | load avg |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        cells = [f"{r[k]['speedup']:.2f}x ({r[k]['ci_low']:.2f}-{r[k]['ci_high']:.2f})"
                 for k in ("ir vs fp32", "qdq-onnx vs fp32", "ir vs qdq-onnx")]
        lines.append(f"| {r['space']} | {r['batch']} | {r['fp32_ms']:.3f} | " + " | ".join(cells) +
                     f" | {r['load_avg_start'][0]:.2f} → {r['load_avg_end'][0]:.2f} |")
    lines.append(f"\nwall time {res['wall_s']:.0f} s; command: `{res['command']}`")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(res, indent=1, default=float))
    (args.out / f"{args.stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
