"""What the shipped Fashion-MNIST super-network achieves, and whether it ranks subnets honestly.

1. Test top-1 (BN recalibrated on 2,000 training images) of the smallest and largest subnet and
   of ``--random`` seeded random subnets: min / median / max / spread.
2. Latency range of those subnets on ONNX Runtime CPU (1 thread), reference-normalised.
3. Ranking sanity: ``--standalone`` subnets spread over the MAC range are trained from scratch
   with a short fixed schedule; Kendall tau between their super-network-inherited accuracy and
   their stand-alone accuracy.

    python benchmarks/supernet.py [--checkpoint PATH] [--random 50] [--standalone 8] [--standalone-epochs 2]
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
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped weights")
    ap.add_argument("--random", type=int, default=50)
    ap.add_argument("--standalone", type=int, default=8)
    ap.add_argument("--standalone-epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--stem", default="supernet", help="Results file name (the 4-epoch ranking run: "
                    "--random 20 --standalone-epochs 4 --stem supernet_ranking_4epochs).")
    args = ap.parse_args(argv)

    from scipy.stats import kendalltau, spearmanr

    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.devices.measure import ReferenceSet, measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.exporting.onnx_export import export_onnx
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import predict_logits, recalibrate_bn, top1
    from hwnas.supernet.extract import extract
    from hwnas.supernet.train import train_standalone

    t0 = time.time()
    net, source = load_supernet(args.space, args.checkpoint, allow_random=False)
    sp = net.space
    train, test = get_dataset(None, args.space).splits("train", "test")
    rng = np.random.default_rng(args.seed)
    archs = {"smallest": sp.min_arch(), "largest": sp.max_arch()}
    archs.update({f"random{i:02d}": sp.sample(rng) for i in range(args.random)})

    dev = get_device("onnxruntime-cpu", threads=1)
    refs = ReferenceSet(dev)
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-supernet-"))
    rows = {}
    canon: dict[str, float] = {}
    for i, (name, a) in enumerate(archs.items()):
        sub = extract(net, a)
        recalibrate_bn(sub, train, a)
        acc = top1(predict_logits(sub, test, a), test.labels)
        path = export_onnx(sub, sp.input_shape(a), tmp / f"{name}.onnx")
        m = measure_model(dev, path, TimingConfig.quick(), refs)
        canon.setdefault(m.ref.reference, m.ref.ref_median_ms)
        rows[name] = {"arch": a.to_str(), "macs_m": sp.macs(a) / 1e6, "params": sp.params(a), "test_top1": acc,
                      "latency_ms": m.ref.ratio * canon[m.ref.reference], "raw_median_ms": m.stats.median_ms}
        print(f"[{i + 1}/{len(archs)}] {name}: top-1 {acc:.2f} %, {rows[name]['latency_ms']:.3f} ms, "
              f"{rows[name]['macs_m']:.2f} MMACs", flush=True)

    rand = np.array([r["test_top1"] for k, r in rows.items() if k.startswith("random")])
    lat = np.array([r["latency_ms"] for r in rows.values()])
    result = {
        "space": sp.name, "weights": source, "host": host_facts(),
        "smallest_top1": rows["smallest"]["test_top1"], "largest_top1": rows["largest"]["test_top1"],
        "random": {"n": int(rand.size), "min": float(rand.min()), "median": float(np.median(rand)),
                   "max": float(rand.max()), "std": float(rand.std())} if rand.size else None,
        "latency_ms_range": [float(lat.min()), float(lat.max())],
        "subnets": rows,
    }

    if args.standalone:
        by_macs = sorted(rows, key=lambda k: rows[k]["macs_m"])
        pick = [by_macs[int(round(q))] for q in np.linspace(0, len(by_macs) - 1, args.standalone)]
        inherited, alone = [], []
        for j, name in enumerate(pick):
            from hwnas.types import ArchConfig

            a = ArchConfig.parse(rows[name]["arch"])
            ts = time.time()
            sa_net = train_standalone(a, train, epochs=args.standalone_epochs, seed=args.seed)
            acc = top1(predict_logits(sa_net, test, a), test.labels)
            inherited.append(rows[name]["test_top1"])
            alone.append(acc)
            print(f"stand-alone [{j + 1}/{len(pick)}] {name}: {acc:.2f} % (inherited {inherited[-1]:.2f} %), "
                  f"{time.time() - ts:.0f} s", flush=True)
        tau = kendalltau(inherited, alone)[0]
        rho = spearmanr(inherited, alone)[0]
        result["ranking"] = {"subnets": pick, "inherited_top1": inherited, "standalone_top1": alone,
                             "standalone_epochs": args.standalone_epochs, "kendall_tau": float(tau),
                             "spearman": float(rho)}
    result["wall_s"] = round(time.time() - t0, 1)

    lines = [f"# Super-network benchmark: {sp.name}", f"weights: {source}", f"host: {result['host']['cpu']}", "",
             f"- largest subnet test top-1: {result['largest_top1']:.2f} %",
             f"- smallest subnet test top-1: {result['smallest_top1']:.2f} %"]
    if result["random"]:
        r = result["random"]
        lines.append(f"- {r['n']} random subnets: min {r['min']:.2f} / median {r['median']:.2f} / max {r['max']:.2f} %"
                     f" (std {r['std']:.2f})")
    lines.append(f"- latency on ONNX Runtime CPU, 1 thread (reference-normalised): "
                 f"{lat.min():.3f} .. {lat.max():.3f} ms ({lat.max() / lat.min():.1f}x)")
    if "ranking" in result:
        rk = result["ranking"]
        lines.append(f"- ranking: Kendall tau {rk['kendall_tau']:.3f}, Spearman {rk['spearman']:.3f} between inherited "
                     f"and stand-alone ({rk['standalone_epochs']} epochs) top-1 over {len(rk['subnets'])} subnets")
    lines.append(f"- wall time {result['wall_s']:.0f} s")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(result, indent=1, default=float))
    (args.out / f"{args.stem}.md").write_text(text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
