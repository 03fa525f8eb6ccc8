"""How well the joint search prices (subnet, per-block precision) pairs: held-out pairs measured end to end.

The pair latency model (:mod:`hwnas.latency_models.precision`) is the FP32 model plus each INT8
block's INT8 − FP32 change from two block tables. Side by side on the same pairs:

* ``alone`` — each INT8 block's change as measured alone (its own conversions at both ends; what
  the joint search used before conversions were priced);
* ``conversions`` — the same, with the conversion at each tensor boundary priced (``k0 + k1·n``)
  from ``--rows`` subnets both profiles measured end to end (the joint benchmark's block tables);
* ``+ closed loop`` — ``conversions`` rescaled on ``--loop`` other measured pairs (and their FP32
  subnets), as the joint search's closed loop does after its first round: the scale and the extra
  cost of a change of precision inside the graph, up and down, refitted on them (each pair predicted
  from others only).

Both use the same FP32 end-to-end model (``e2e`` fitted on the FP32 profile's rows) so the figures
differ only by the INT8 part. Held-out pairs: ``--pairs`` random subnets at ``--resolution``, each with
a random share of INT8 blocks (¼, ½, all), built from the shipped super-network weights and quantized
by the device's quantizer, measured on the device (the joint search's own evaluator). Printed: the
error of the predicted INT8 − FP32 change and of the pair latency, and the rank agreement, per model.

    python benchmarks/pair_latency.py [--device openvino-cpu] [--pairs 24] [--rows 16]
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
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--device", default="openvino-cpu")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--rows", type=int, default=16, help="subnets each profile measures end to end (the fit)")
    ap.add_argument("--pairs", type=int, default=24, help="held-out pairs measured end to end")
    ap.add_argument("--loop", type=int, default=8, help="measured pairs the closed-loop variant is refitted on")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--stem", default=None)
    args = ap.parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from joint_search import block_tables

    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.latency_models import LATENCY_MODELS
    from hwnas.latency_models.precision import PrecisionDelta, PrecisionLatency
    from hwnas.pipeline.joint import PairEvaluator
    from hwnas.supernet.spaces import get_space
    from hwnas.types.quant_arch import QuantArch

    torch.set_num_threads(1)
    t_start, load0 = time.perf_counter(), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="hwnas-pair-latency-"))
    profs = block_tables(args.space, args.resolution, work, args.device, args.rows)
    t_prof = time.perf_counter() - t_start
    fp32_model = LATENCY_MODELS.create("lut").fit([], [], profs["fp32"], space=args.space)
    priced = PrecisionDelta.from_profiles(profs["fp32"], profs["int8"], args.space)
    alone = PrecisionDelta(priced.fp32_table, priced.int8_table)
    models = {"alone": PrecisionLatency(fp32_model, alone), "conversions": PrecisionLatency(fp32_model, priced)}
    print(f"conversion fit: {json.dumps(priced.edge_fit)}", flush=True)

    sp = get_space(args.space)
    rng = np.random.default_rng(2024)
    pe = PairEvaluator(args.space, get_device(args.device), val_images=256)
    rows = []
    try:
        for i in range(args.pairs):
            a = sp.sample(rng, [args.resolution])
            share = (0.25, 0.5, 1.01)[i % 3]
            pair = QuantArch(a, tuple(bool(b) for b in rng.random(sp.n_slots) < share))
            if not pair.int8_slots():
                pair = QuantArch(a, tuple(True for _ in range(sp.n_slots)))
            f32 = QuantArch.fp32(a)
            m_f, m_q = pe.latency(f32), pe.latency(pair)
            rec = {"pair": pair.to_str(), "quant_arch": pair.to_dict(), "int8_blocks": len(pair.int8_slots()),
                   "fp32_ms": m_f, "pair_ms": m_q}
            for name, m in models.items():
                p_f, p_q = (float(v) for v in m.predict([f32, pair]))
                rec[name] = {"fp32_ms": p_f, "pair_ms": p_q}
            rows.append(rec)
            print(f"{pair.to_str()}: measured {m_q:.4f} ms (FP32 {m_f:.4f}); alone {rec['alone']['pair_ms']:.4f}, "
                  f"conversions {rec['conversions']['pair_ms']:.4f}", flush=True)
    finally:
        pe.close()
    # the closed loop: refitted on --loop other pairs (and their FP32 subnets), each pair predicted from others
    pairs = [QuantArch.from_dict(r["quant_arch"]) for r in rows]
    for i, r in enumerate(rows):
        others = [j for j in range(len(rows)) if j != i][:args.loop] if i >= args.loop else \
            [j for j in range(len(rows)) if j != i][-args.loop:]
        fit_on = [pairs[j] for j in others] + [QuantArch.fp32(pairs[j].arch) for j in others]
        ms = [rows[j]["pair_ms"] for j in others] + [rows[j]["fp32_ms"] for j in others]
        loop = models["conversions"].rescaled(fit_on, ms)
        p_f, p_q = (float(v) for v in loop.predict([QuantArch.fp32(pairs[i].arch), pairs[i]]))
        r["+ closed loop"] = {"fp32_ms": p_f, "pair_ms": p_q, "change": loop.delta.change}
    names = list(models) + ["+ closed loop"]
    meas_change = np.array([r["pair_ms"] - r["fp32_ms"] for r in rows])
    meas = np.array([r["pair_ms"] for r in rows])
    summary = {}
    for name in names:
        pred_change = np.array([r[name]["pair_ms"] - r[name]["fp32_ms"] for r in rows])
        # the pair latency on the measured FP32 level: what the closed loop's rescaling leaves to the INT8 part
        pred = np.array([r["fp32_ms"] * r[name]["pair_ms"] / r[name]["fp32_ms"] for r in rows])
        summary[name] = {
            "change_mae_ms": float(np.mean(np.abs(pred_change - meas_change))),
            "change_sign_agrees": float(np.mean(np.sign(pred_change) == np.sign(meas_change))),
            "pair_mape": float(np.mean(np.abs(pred / meas - 1))),
            "pair_within_10": float(np.mean(np.abs(pred / meas - 1) <= 0.10)),
            "pair_spearman": float(spearmanr(pred, meas).statistic),
            "change_spearman": float(spearmanr(pred_change, meas_change).statistic),
        }
    host = host_facts()
    res = {"host": host, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "edge_fit": priced.edge_fit, "rows": rows, "summary": summary,
           "measured_change_ms_median": float(np.median(meas_change)),
           "profile_s": t_prof, "wall_s": time.perf_counter() - t_start, "loadavg_start": list(load0),
           "loadavg_end": list(os.getloadavg())}
    lines = [f"# Pricing (subnet, precision) pairs ({args.space}, r{args.resolution}, {args.device}; {host.get('cpu')}, "
             f"ISA {', '.join(host.get('isa', []))})", "",
             f"{len(rows)} held-out pairs measured end to end (INT8 share ¼ / ½ / all; measured INT8 − FP32 change: "
             f"median {np.median(meas_change) * 1e3:+.1f} µs, range {meas_change.min() * 1e3:+.1f} to "
             f"{meas_change.max() * 1e3:+.1f} µs). Conversion fit on {priced.edge_fit.get('rows', 0)} subnets measured in "
             f"both precisions: k0 {priced.edge[0] * 1e3:.2f} µs + k1 {priced.edge[1] * 1e6:.3f} ns per element.", "",
             "| model | INT8 − FP32 change: MAE µs / sign right / Spearman | pair latency: MAPE / within ±10 % / Spearman |",
             "|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['change_mae_ms'] * 1e3:.1f} / {s['change_sign_agrees']:.0%} / "
                     f"{s['change_spearman']:.2f} | {s['pair_mape']:.1%} / {s['pair_within_10']:.0%} / "
                     f"{s['pair_spearman']:.2f} |")
    ks = [r["+ closed loop"]["change"] for r in rows]
    lines += ["", f"Closed loop: the extra cost of a change of precision inside the graph, refitted: up (float to "
              f"INT8) {np.median([k[0] for k in ks]) * 1e3:.1f} µs, down (INT8 to float) "
              f"{np.median([k[1] for k in ks]) * 1e3:.1f} µs (medians over the {len(ks)} refits), on top of a "
              f"conversion ({priced.edge[0] * 1e3:.2f} µs + {priced.edge[1] * 1e6:.3f} ns per element)."]
    lines += ["", f"Pair latency is judged on each pair's measured FP32 level (the closed loop rescales the FP32 part), "
              f"so it differs between the models only by the INT8 part. Profiles {t_prof:.0f} s; wall "
              f"{res['wall_s']:.0f} s; load average {load0[0]:.2f} → {res['loadavg_end'][0]:.2f}; command: "
              f"`python benchmarks/pair_latency.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = "\n".join(lines)
    print(text)
    stem = args.stem or f"pair_latency_{args.device}"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{stem}.json").write_text(json.dumps(res, indent=1, default=str))
    (args.results / f"{stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
