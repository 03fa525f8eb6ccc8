"""Few-shot prediction for a device never profiled: leave one shipped device out, predict it from the others.

For every shipped profile of ``--space`` with at least ``--min-holdout`` held-out subnets, the other
profiles are the sources and the left-out one is the target: its first ``--shots`` reference
subnets (the same archs on every device, measured on it) are the few shots, and its held-out
subnets — never seen by any model — are the truth. Side by side, in the same run:

* ``transfer`` — :class:`~hwnas.latency_models.transfer.TransferModel` over the sources (what
  ``hwnas profile --few-shot`` stores);
* ``one scale`` — the best single source times one factor;
* ``flops`` — latency ∝ MACs fitted on the shots;
* ``full`` — the target's own e2e model fitted on all its fitting rows (the ceiling few-shot
  aims at).

Prints Spearman, Kendall τ, share within ±10 % / ±5 % per device, the 90 % interval coverage of
the transfer, and the device's own noise floor (its repeated subnets). Targets (issue): Spearman
≥ 0.97 and ≥ 95 % within ±10 % on every device from ≤ 20 measurements.

    python benchmarks/few_shot.py [--space ofa-mbv3-w1.0] [--shots 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "hwnas" / "data" / "profiles"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="ofa-mbv3-w1.0")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--min-holdout", type=int, default=100)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    from hwnas.latency_models import LATENCY_MODELS, fit_and_score, load_latency_model
    from hwnas.latency_models.intervals import coverage_of
    from hwnas.latency_models.metrics import holdout_data, score
    from hwnas.latency_models.transfer import from_models
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.quality import repeatability
    from hwnas.types import ArchConfig

    profs = {}
    for d in sorted(SHIPPED.iterdir()):
        if (d / "device.json").is_file():
            p = DeviceProfile.open(d)
            if args.space in p.spaces and len(holdout_data(p, args.space, "latency_ms")[0]) >= args.min_holdout:
                profs[d.name] = p
    if len(profs) < 2:
        raise SystemExit(f"need at least two shipped profiles of {args.space} with {args.min_holdout} held-out rows; "
                         "build them with benchmarks/source_profiles.py")
    models = {n: load_latency_model(p, space=args.space) for n, p in profs.items()}
    rows = {}
    for target, prof in profs.items():
        ref = prof.models_df(args.space, kinds=["reference"]).head(args.shots)
        shots = [ArchConfig.parse(a) for a in ref["arch"]]
        y_shots = ref["latency_ms"].to_numpy(dtype=float)
        archs, y = holdout_data(prof, args.space, "latency_ms")
        sources = [models[n] for n in profs if n != target]
        tr = from_models(sources).fit(shots, y_shots, None, space=args.space)
        one = from_models(sources, form="scale").fit(shots, y_shots, None, space=args.space)
        flops = LATENCY_MODELS.create("flops").fit(shots, y_shots, None, space=args.space)
        full = fit_and_score(prof, "e2e", space=args.space)
        _, lo, hi = tr.predict_interval(archs, 0.9)
        r = {name: {k: v for k, v in score(y, m.predict(archs)).items() if k in ("within_10", "within_5", "spearman",
                                                                                "kendall_tau", "mape")}
             for name, m in (("transfer", tr), ("one scale", one), ("flops", flops), ("full", full))}
        rep = repeatability(prof, args.space).get("normalised", {})
        rows[target] = {**r, "transfer_form": tr.describe(), "n_shots": len(shots), "n_heldout": len(archs),
                        "interval_90_coverage": coverage_of(y, lo, hi), "noise_floor": rep,
                        "device": prof.spec.to_dict()}
        print(f"{target}: transfer {r['transfer']['within_10']:.0%} within ±10 %, Spearman "
              f"{r['transfer']['spearman']:.3f} ({tr.describe()}); one scale {r['one scale']['within_10']:.0%}; "
              f"flops {r['flops']['within_10']:.0%}; full {r['full']['within_10']:.0%}; coverage "
              f"{rows[target]['interval_90_coverage']:.0%}", flush=True)
    hosts = sorted({str(p.meta.get("host", {}).get("cpu", "?")) for p in profs.values()})
    lines = [f"# Few-shot transfer, leave one device out ({args.space}, {args.shots} shots per target)", "",
             f"Shipped profiles of {', '.join(hosts)} (each target's held-out subnets were measured with its profile; "
             "this script measures nothing, so its figures do not depend on the load now). The noise floor is the "
             "target's own repeated subnets (10 pairs, reference-normalised): a model cannot agree with single "
             "measurements better than they agree with themselves.", "",
             "| target | transfer ±10 % / ±5 % / Spearman | one scale ±10 % / Spearman | FLOPs ±10 % / Spearman | "
             "full model ±10 % / Spearman | 90 % interval coverage | noise floor ±10 % |",
             "|---|---|---|---|---|---|---|"]
    for t, r in rows.items():
        lines.append(f"| {t} | {r['transfer']['within_10']:.0%} / {r['transfer']['within_5']:.0%} / "
                     f"{r['transfer']['spearman']:.3f} | {r['one scale']['within_10']:.0%} / "
                     f"{r['one scale']['spearman']:.3f} | {r['flops']['within_10']:.0%} / {r['flops']['spearman']:.3f} | "
                     f"{r['full']['within_10']:.0%} / {r['full']['spearman']:.3f} | {r['interval_90_coverage']:.0%} | "
                     f"{r['noise_floor'].get('within_10', float('nan')):.0%} |")
    lines.append(f"\ncommand: `python benchmarks/few_shot.py {' '.join(argv if argv is not None else sys.argv[1:])}`")
    text = "\n".join(lines)
    print(text)
    res = {"space": args.space, "shots": args.shots, "devices": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "few_shot.json").write_text(json.dumps(res, indent=1, default=str))
    (args.results / "few_shot.md").write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
