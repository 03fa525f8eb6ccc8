"""Build the shipped source profiles: several latency landscapes of this machine, one thread each.

Few-shot transfer needs other devices to learn from, and its benchmark needs devices to leave out.
This script profiles ofa-mbv3-w1.0 end to end (no block table, no kernel traces: they are not what
a transfer learns from, and they are most of a profile's size) on every landscape installed here —
ONNX Runtime FP32 and INT8 (QDQ), OpenVINO f32, bf16 (where the CPU has it) and INT8, TVM untuned —
each with ``--samples`` fitting subnets, ``--holdout`` held-out subnets, the fixed reference set and
repeats; fits an ``e2e`` model with its conformal intervals; and copies each profile into
``hwnas/data/profiles/<name>`` (named from what ``device.json`` records). It also refits the models
of the profiles already shipped so every shipped model carries intervals. Prints the sizes and
writes ``results/source_profiles.json`` and ``.md`` (the table: time, size, model quality, repeats).

    python benchmarks/source_profiles.py [--only ort-fp32 ...] [--samples 80] [--holdout 100]
        [--no-refit] [--stem source_profiles_intel-xeon-amx]

``--no-refit`` leaves the other shipped profiles as they are (adding one host's landscapes to those of
another); ``--stem`` names the results file, so one host's run does not overwrite another's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "hwnas" / "data" / "profiles"
SPACE = "ofa-mbv3-w1.0"

# name → (device, device options, precision)
LANDSCAPES = {
    "ort-fp32": ("onnxruntime-cpu", {}, "fp32"),
    "ort-int8": ("onnxruntime-cpu", {}, "int8"),  # each subnet quantized (QDQ) before it is timed
    "ov-fp32": ("openvino-cpu", {}, "fp32"),
    "ov-bf16": ("openvino-cpu", {}, "bf16"),
    "ov-int8": ("openvino-cpu", {}, "int8"),  # each subnet quantized by NNCF into the IR export deploys, then timed
    "tvm": ("tvm-llvm", {}, "fp32"),
}


def host_slug(facts: dict) -> str:
    cpu = (facts.get("cpu") or "cpu").lower()
    vendor = "intel-xeon" if "xeon" in cpu else "amd-epyc" if "epyc" in cpu else cpu.split()[0]
    return vendor + ("-amx" if "amx_int8" in facts.get("isa", []) else "")


def refit_models(root: Path, space: str, names: tuple[str, ...] = ("e2e", "hybrid")) -> dict:
    """Fit, score (5-fold) and store ``names`` (those the profile's rows allow) with intervals into a
    profile directory."""
    from hwnas.fileio import atomic_write_json
    from hwnas.latency_models import fit_and_score
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(root)
    out = {}
    for name in names:
        if name == "hybrid" and prof.ops_df(space).empty:
            continue
        m = fit_and_score(prof, name, space=space)
        atomic_write_json(prof.predictor_path(space, "latency_ms", name), m.to_json())
        out[name] = {k: m.metrics_[k] for k in ("within_10", "within_5", "kendall_tau")}
    return out


def report(res: dict, command: str) -> str:
    """The results as a Markdown table (host from the run's own record)."""
    import numpy as np

    from hwnas.profiles import DeviceProfile

    h = res["host"]
    lines = [f"# Shipped source profiles ({res['space']}, 1 thread, {res['samples']} fitting + {res['holdout']} held-out "
             "subnets + 20 reference + 10 repeats each)", "",
             f"Host: {h.get('cpu')}, ISA {', '.join(h.get('isa', []))}. Load average at the end "
             f"{res.get('loadavg', [float('nan')])[0]:.2f}.", "",
             "| profile | device, precision | minutes | size | e2e model, 5-fold: ±10 % / ±5 % / τ | repeats "
             "(normalised): ±10 % / median dev | latency range ms |", "|---|---|---|---|---|---|---|"]
    for name, r in res["profiles"].items():
        e, q = r["models"]["e2e"], r["repeatability"].get("normalised", {})
        y = DeviceProfile.open(SHIPPED / name).models_df(res["space"])["latency_ms"].to_numpy()
        lines.append(f"| {name} | {r['device']} {r['precision']} | {r['minutes']:.1f} | {r['bytes'] / 1e3:.0f} kB | "
                     f"{e['within_10']:.0%} / {e['within_5']:.0%} / {e['kendall_tau']:.3f} | "
                     f"{q.get('within_10', float('nan')):.0%} / {q.get('median_dev', float('nan')):.1%} | "
                     f"{np.min(y):.2f}–{np.max(y):.2f} |")
    total = sum(r["bytes"] for r in res["profiles"].values())
    lines += ["", f"Total {total / 1e6:.1f} MB. Command: `{command}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help=f"Landscapes to build (default: all of {list(LANDSCAPES)}).")
    ap.add_argument("--samples", type=int, default=80)
    ap.add_argument("--holdout", type=int, default=100)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--stem", default="source_profiles", help="Results file name, without extension.")
    ap.add_argument("--no-refit", action="store_true", help="Do not refit the models of the other shipped profiles.")
    args = ap.parse_args(argv)

    from hwnas.devices import list_devices
    from hwnas.devices.base import host_facts
    from hwnas.pipeline import profile
    from hwnas.profiles import DeviceProfile

    available = {d["name"] for d in list_devices() if d["available"]}
    slug = host_slug(host_facts())
    res = {"host": host_facts(), "space": SPACE, "samples": args.samples, "holdout": args.holdout, "profiles": {}}
    for key, (device, options, precision) in LANDSCAPES.items():
        if args.only and key not in args.only:
            continue
        if device not in available:
            print(f"{key}: {device} is not installed here; skipped", flush=True)
            continue
        name = f"{slug}-{key}-1t"
        work = Path(tempfile.mkdtemp(prefix="hwnas-source-")) / name
        t0 = time.time()
        opts = [f"{k}={v}" for k, v in options.items()]
        try:
            profile(space=[SPACE], out=work, device=device, threads=1, precision=precision, samples=args.samples,
                    holdout=args.holdout, reference_set=20, repeats=10, ops=False, kernel_times=False,
                    device_options=opts)
        except Exception as exc:  # one landscape that cannot be built here must not cost the others
            print(f"{key}: could not be profiled here ({type(exc).__name__}: {exc})", flush=True)
            continue
        models = refit_models(work, SPACE)
        dst = SHIPPED / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(work, dst, ignore=shutil.ignore_patterns(".lock", "calibrations", "evaluation"))
        size = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
        prof = DeviceProfile.open(dst)
        q = prof.meta["quality"]["spaces"][SPACE]["repeatability"]
        res["profiles"][name] = {"device": device, "options": options, "precision": precision,
                                 "spec": prof.spec.to_dict(), "minutes": (time.time() - t0) / 60, "bytes": size,
                                 "models": models, "repeatability": q}
        print(f"{name}: {(time.time() - t0) / 60:.1f} min, {size / 1e3:.0f} kB; e2e 5-fold "
              f"{models['e2e']['within_10']:.0%} within ±10 %; repeat normalised "
              f"{q.get('normalised', {}).get('within_10', float('nan')):.0%} within ±10 %", flush=True)
    for d in sorted(SHIPPED.iterdir()):  # every shipped model carries intervals (the same models, refitted)
        if not args.no_refit and (d / "device.json").is_file() and d.name not in res["profiles"]:
            meta = json.loads((d / "device.json").read_text())
            for sp in meta.get("spaces", {}):
                stored = tuple(m["name"] for m in DeviceProfile.open(d).list_models(sp, "latency_ms"))
                res.setdefault("refitted", {})[f"{d.name}/{sp}"] = refit_models(d, sp, stored)
    args.results.mkdir(parents=True, exist_ok=True)
    res["loadavg"] = list(os.getloadavg())
    (args.results / f"{args.stem}.json").write_text(json.dumps(res, indent=1, default=str))
    command = "python benchmarks/source_profiles.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(res, command)
    print(text)
    (args.results / f"{args.stem}.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
