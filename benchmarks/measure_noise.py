"""How repeatable is a latency figure on this device? The floor any latency predictor is judged against.

Exports the min and max subnets of ofa-mbv3-w1.0 at r=224 and r=160, then measures each
model ``--rounds`` times (rounds in shuffled order, all in one run) with ONNX Runtime at 1 and 2
threads. For three estimators — the median of a run, the minimum of a run, and the
reference-normalised figure (median ratio to a fixed reference model over interleaved bursts ×
the reference's median in the first round) — it prints each round's figure and the spread across
rounds: max |x - median| / median and (max - min) / median.

    python benchmarks/measure_noise.py [--rounds 5] [--threads 1 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[224, 160])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.devices.measure import ReferenceSet, measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet.elastic import ElasticMBV3

    net = ElasticMBV3("ofa-mbv3-w1.0").eval()
    sp = net.space
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-noise-"))
    models = {}
    for r in args.resolutions:
        for name, arch in (("min", sp.min_arch(r)), ("max", sp.max_arch(r))):
            models[f"{name}-r{r}"] = export_subnet(net, arch, tmp / f"{name}-r{r}.onnx")

    rng = np.random.default_rng(args.seed)
    timing = TimingConfig(runs=60, budget_s=3.0, bursts=6, burst_s=0.06)
    results: dict = {"host": host_facts(), "timing": timing.to_dict(), "rounds": args.rounds, "threads": {}}
    t_start = time.time()
    for threads in args.threads:
        dev = get_device("onnxruntime-cpu", threads=threads)
        refs = ReferenceSet(dev)
        per = {m: {"median": [], "min": [], "normalised": [], "reference": []} for m in models}
        canon_ref: dict[str, float] = {}
        for rnd in range(args.rounds):
            for m in rng.permutation(list(models)):
                meas = measure_model(dev, models[m], timing, refs)
                ref = meas.ref
                canon_ref.setdefault(ref.reference, ref.ref_median_ms)
                per[m]["median"].append(meas.stats.median_ms)
                per[m]["min"].append(meas.stats.min_ms)
                per[m]["normalised"].append(ref.ratio * canon_ref[ref.reference])
                per[m]["reference"].append(ref.reference)
            print(f"threads={threads} round {rnd + 1}/{args.rounds} done ({time.time() - t_start:.0f} s)", flush=True)
        summary = {}
        for m, est in per.items():
            summary[m] = {}
            for e in ("median", "min", "normalised"):
                x = np.asarray(est[e])
                med = float(np.median(x))
                summary[m][e] = {"rounds_ms": [round(v, 4) for v in x.tolist()],
                                 "max_dev": float(np.max(np.abs(x - med)) / med),
                                 "range": float((x.max() - x.min()) / med)}
            summary[m]["reference"] = est["reference"][0]
        results["threads"][str(threads)] = summary

    results["wall_s"] = round(time.time() - t_start, 1)
    lines = [f"# Measurement repeatability: ONNX Runtime CPU, {results['host']['cpu']}",
             f"{args.rounds} rounds per model in shuffled order, one run of {results['wall_s']} s; "
             f"python {platform.python_version()}", ""]
    for threads, summary in results["threads"].items():
        lines.append(f"## {threads} thread(s)")
        lines.append("| model | estimator | rounds (ms) | max dev | range |")
        lines.append("|---|---|---|---|---|")
        for m, s in summary.items():
            for e in ("median", "min", "normalised"):
                v = s[e]
                lines.append(f"| {m} | {e} | {' '.join(f'{x:.3f}' for x in v['rounds_ms'])} | "
                             f"{v['max_dev']:.1%} | {v['range']:.1%} |")
        for e in ("median", "min", "normalised"):
            worst = max(s[e]["max_dev"] for s in summary.values())
            mean = float(np.mean([s[e]["max_dev"] for s in summary.values()]))
            lines.append(f"- {e}: mean max-deviation {mean:.1%}, worst {worst:.1%}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "measure_noise.json").write_text(json.dumps(results, indent=1))
    (args.out / "measure_noise.md").write_text(text + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
