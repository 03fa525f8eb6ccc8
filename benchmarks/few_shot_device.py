"""Few-shot profile of a device on this machine that no shipped profile has seen, scored in the same run.

``benchmarks/few_shot.py`` leaves one shipped device out; this script does what a user does with a
new device: ``hwnas profile --few-shot N --from SOURCES... --device D --out P`` (the real command,
run as a subprocess), then measures ``--holdout`` subnets that no model saw on the same device, in
the same run, and scores the stored few-shot model against them — side by side with "one scale"
(the best single source times one factor) and FLOPs, both fitted on the same shots. The truth is on
the new profile's own scale (each held-out subnet interleaved with the profile's reference network);
the noise floor is ``--repeat`` of them measured a second time, minutes later.

    python benchmarks/few_shot_device.py --device openvino-cpu --precision bf16 [--shots 20] [--holdout 100]
    python benchmarks/few_shot_device.py --device openvino-cpu --precision bf16 --target-error 0.04

Sources default to every shipped profile of ``--space``, minus any of this host with the same device
and precision (the point is a landscape none of them measured).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "hwnas" / "data" / "profiles"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="openvino-cpu")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--space", default="ofa-mbv3-w1.0")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--target-error", type=float, default=None)
    ap.add_argument("--holdout", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20, help="held-out subnets measured a second time (noise floor)")
    ap.add_argument("--from", dest="sources", type=Path, action="append", default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the few-shot profile here")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.devices.base import host_facts, host_fingerprint
    from hwnas.devices.timing import TimingConfig
    from hwnas.latency_models import LATENCY_MODELS, load_latency_model
    from hwnas.latency_models.intervals import coverage_of
    from hwnas.latency_models.metrics import score
    from hwnas.latency_models.transfer import from_models
    from hwnas.pipeline.jobs import profile_device, quiet_torch, subnet_builder
    from hwnas.profiles import DeviceProfile
    from hwnas.profiling.precision import in_precision
    from hwnas.profiling.profiler import built, measure_archs
    from hwnas.profiling.sampling import reference_archs, stratified_archs
    from hwnas.types import ArchConfig

    here = host_facts()
    if args.sources is None:
        args.sources = []
        for d in sorted(SHIPPED.iterdir()):
            if not (d / "device.json").is_file():
                continue
            p = DeviceProfile.open(d)
            same = (host_fingerprint(p.host) == host_fingerprint(here) and p.device_name == args.device
                    and p.spec.precision == args.precision)
            if args.space in p.spaces and not same:
                args.sources.append(d)
    t0 = time.time()
    tmp = tempfile.TemporaryDirectory()
    out = args.keep or Path(tmp.name) / "few-shot"
    exe = Path(sys.executable).with_name("hwnas")
    cmd = [str(exe) if exe.is_file() else "hwnas", "profile", "--space", args.space, "--device", args.device,
           "--precision", args.precision, "--few-shot", str(args.shots), "--out", str(out)]
    for s in args.sources:
        cmd += ["--from", str(s)]
    if args.target_error is not None:
        cmd += ["--target-error", str(args.target_error)]
    shown = "hwnas " + " ".join(c if not c.startswith(str(ROOT)) else os.path.relpath(c, ROOT) for c in cmd[1:])
    print(f"this machine: {here.get('cpu')} (ISA {', '.join(here.get('isa', []))})\n$ {shown}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    profile_s = time.time() - t0

    prof = DeviceProfile.open(out)
    model = load_latency_model(prof, space=args.space)
    shots_df = prof.models_df(args.space)
    shots = [ArchConfig.parse(a) for a in shots_df["arch"]]
    y_shots = shots_df["latency_ms"].to_numpy(dtype=float)
    sources = [load_latency_model(DeviceProfile.open(s), space=args.space) for s in args.sources]
    one = from_models(sources, form="scale").fit(shots, y_shots, None, space=args.space)
    flops = LATENCY_MODELS.create("flops").fit(shots, y_shots, None, space=args.space)

    quiet_torch()
    dev = profile_device(prof)
    build, _ = subnet_builder(args.space, None, dev.batch_size)
    build = in_precision(dev, build)
    held = stratified_archs(args.space, args.holdout, seed=101, exclude=shots + reference_archs(args.space, 40))
    t1 = time.time()

    def bar(msg, i, n):
        if i % 20 == 19:
            print(f"  {msg}: {i + 1}/{n} ({time.time() - t1:.0f} s)", flush=True)

    rows = measure_archs(prof, held, build, dev, kind="holdout", kernel_times=False, progress=bar)
    y = np.array([r.latency_ms for r in rows])
    rng = np.random.default_rng(0)
    twice = sorted(rng.choice(len(held), min(args.repeat, len(held)), replace=False).tolist())
    again = []
    timing = TimingConfig(bursts=10, burst_s=0.04)
    with tempfile.TemporaryDirectory() as t2:
        path = Path(t2) / "m.onnx"
        for i in twice:
            again.append(dev.measure(built(build(held[i], path), path), timing).latency_on(prof.reference_ms_by_name))
    dev.close()
    rep = np.abs(np.asarray(again) / y[twice] - 1)
    floor = {"n": len(twice), "within_10": float(np.mean(rep <= 0.10)), "within_5": float(np.mean(rep <= 0.05)),
             "median_dev": float(np.median(rep))}
    keys = ("within_10", "within_5", "spearman", "kendall_tau", "mape")
    res_models = {name: {k: v for k, v in score(y, m.predict(held)).items() if k in keys}
                  for name, m in (("few-shot", model), ("one scale", one), ("flops", flops))}
    _, lo, hi = model.predict_interval(held, 0.9)
    res = {"device": prof.spec.to_dict(), "host": here, "space": args.space, "sources": [s.name for s in args.sources],
           "command": shown, "n_shots": len(shots), "n_heldout": len(held),
           "profile_s": profile_s, "model": model.describe(), "models": res_models,
           "interval_90_coverage": coverage_of(y, lo, hi), "noise_floor": floor,
           "latency_range_ms": [float(y.min()), float(y.max())],
           "wall_s": time.time() - t0, "loadavg": list(os.getloadavg())}
    tag = f"{args.device}-{args.precision}" + (f"-target{args.target_error:g}" if args.target_error else "")
    lines = [f"# Few-shot profile of a device no source measured: {args.device} {args.precision} on {here.get('cpu')} "
             f"({args.space}" + (f", --target-error {args.target_error:g})" if args.target_error else ")"), "",
             f"This machine: {here.get('cpu')}, ISA {', '.join(here.get('isa', []))}. Sources ({len(args.sources)}): "
             f"{', '.join(s.name for s in args.sources)}.", "",
             f"`{res['command']}` measured {len(shots)} subnets and stored `{model.describe()}` in "
             f"{profile_s:.0f} s (wall, with model export and compile).", "",
             f"{len(held)} held-out subnets ({y.min():.2f}-{y.max():.2f} ms) measured on the same device in the same "
             "run, scored against the stored model and two baselines fitted on the same shots:", "",
             "| model | within ±10 % | within ±5 % | Spearman | Kendall τ | MAPE |", "|---|---|---|---|---|---|"]
    for name, r in res_models.items():
        lines.append(f"| {name} | {r['within_10']:.0%} | {r['within_5']:.0%} | {r['spearman']:.3f} | "
                     f"{r['kendall_tau']:.3f} | {r['mape']:.1%} |")
    lines += ["", f"90 % interval coverage of the few-shot model: {res['interval_90_coverage']:.0%}. Noise floor: "
              f"{floor['n']} held-out subnets measured again: {floor['within_10']:.0%} within ±10 %, "
              f"{floor['within_5']:.0%} within ±5 % (median deviation {floor['median_dev']:.1%}). Load average at the "
              f"end {res['loadavg'][0]:.2f}; wall {res['wall_s']:.0f} s.",
              f"\ncommand: `python benchmarks/few_shot_device.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"few_shot_device_{tag}"
    (args.results / f"{stem}.json").write_text(json.dumps(res, indent=1, default=str))
    (args.results / f"{stem}.md").write_text(text + "\n")
    tmp.cleanup()
    return res


if __name__ == "__main__":
    main()
