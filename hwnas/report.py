"""The self-contained Markdown report of a quickstart run, with its PNG plots.

``report.md`` sits beside the PNGs it links (relative paths), so the folder can be
shared as is: the Pareto front, predicted vs measured latency, and the per-layer-group
precision chosen for the deployed model with each group's measured sensitivity and gain.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def plot_policy(manifest, policy: dict[str, Any], path: Path) -> Path | None:
    """Bars per layer group: accuracy drop when only it is INT8, latency gain, chosen precision."""
    costs = policy.get("notes", {}).get("costs")
    if not costs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    int8 = set(policy.get("notes", {}).get("int8_groups") or [])
    if policy.get("default") == "int8" and not policy.get("rules"):
        int8 = {c["group"] for c in costs}
    names = [c["group"] for c in costs]
    colors = ["C2" if n in int8 else "C7" for n in names]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 4.6), dpi=120, sharex=True)
    a1.bar(names, [c["sensitivity_pts"] for c in costs], color=colors)
    a1.set_ylabel("top-1 drop (pts)\nonly this group INT8")
    a2.bar(names, [c["gain_ms"] * 1000 for c in costs], color=colors)
    a2.axhline(0, c="0.3", lw=0.8)
    a2.set_ylabel("latency gain (µs)")
    a2.tick_params(axis="x", rotation=60)
    a1.set_title(f"precision per layer group: green = INT8, grey = FP32 ({manifest.arch.split('/', 1)[1]})",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def precision_text(summary: dict[str, int]) -> str:
    """``{'int8': 12, 'fp32': 5}`` → ``12 layers INT8, 5 FP32``."""
    parts = [f"{n} {p.upper()}" for p, n in sorted(summary.items(), key=lambda kv: -kv[1])]
    return (", ".join(parts) + " layers") if parts else "FP32"


def write_report(out: str | os.PathLike, s: dict[str, Any], front, evaluation: dict[str, Any],
                 latency_plots: list[str], manifest) -> Path:
    """``report.md`` for quickstart summary ``s`` (a :class:`~hwnas.types.DeploymentManifest` for the bundle)."""
    import json

    out = Path(out)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    pareto = sorted((out / "search").glob("pareto_*.png"))
    for p in pareto + [Path(p) for p in latency_plots]:
        shutil.copyfile(p, figs / Path(p).name)
    policy = json.loads((Path(s["bundle"]) / "policy.json").read_text())
    pol_png = plot_policy(manifest, policy, figs / "precision.png")
    ev_rows = [f"| {n} | {m['rmse']:.4f} | {m['mape']:.1%} | {m['within_5']:.0%} | {m['within_10']:.0%} | "
               f"{m['kendall_tau']:.3f} | {m['spearman']:.3f} |"
               for n, m in evaluation["models"].items() if "error" not in m]
    floor = evaluation.get("floor") or {}
    checks = front.meta.get("closed_loop", {}).get("checks", [])
    ck_rows = [f"| `{c['arch'].split('/', 1)[1]}` | {c.get('latency_ms_predicted', float('nan')):.4f} | "
               f"{c.get('latency_ms_measured', float('nan')):.4f} | {c.get('latency_ms_error', 0):+.1%} | "
               f"{'yes' if c['meets_budget'] else 'no'} |" for c in checks]
    t = s["timings_s"]
    lines = [
        f"# hwnas quickstart: {s['space']} on {manifest.host.get('cpu')}",
        "",
        f"Device `{s['device']}` ({s['threads']} thread(s), {manifest.device['runtime']} "
        f"{manifest.device['runtime_version']}); profile: {s['profile']}.",
        "",
        "| chosen subnet | budget | predicted | measured (search) | deployed | FP32 → deployed top-1 | precision | peak memory | bundle |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| `{s['arch']}` | {s['latency_budget_ms']:.4f} ms | {s['predicted_ms']:.4f} ms | "
        f"{s['measured_ms']:.4f} ms | {s['deployed_ms']:.4f} ms | {s['fp32_top1']:.2f} → {s['deployed_top1']:.2f} % | "
        f"{precision_text(s['precision'])} | {s['peak_memory_mb']:.1f} MiB | `{s['bundle']}` ({'verified' if s['verified'] else 'NOT verified'}) |",
        "",
        "Latencies are reference-normalised milliseconds (the model is timed in bursts interleaved with a fixed "
        "reference network; the ratio × the reference's latency when the profile was made), so figures taken "
        "minutes apart on a drifting machine are comparable. "
        f"Accuracy is top-1 on the {manifest.accuracy.split} split of {manifest.dataset.get('name')} "
        f"({manifest.accuracy.images:,} images) after BN recalibration.",
        "",
        "## Latency model",
        f"{evaluation['protocol']}. Device repeatability floor: "
        + (f"re-measuring {floor['n_pairs']} subnets, the reference-normalised figure repeated within ±10 % for "
           f"{floor['normalised']['within_10']:.0%} of them (median deviation {floor['normalised']['median_dev']:.1%}); "
           f"a raw median did so for {floor['median']['within_10']:.0%}." if floor.get("normalised") else "not measured."),
        "",
        "| model | RMSE (ms) | MAPE | ±5 % | ±10 % | Kendall τ | Spearman |",
        "|---|---|---|---|---|---|---|",
        *ev_rows,
        "",
        *[f"![{Path(p).stem}](figures/{Path(p).name})" for p in latency_plots],
        "",
        "## Search",
        f"{len(front.candidates)} subnets on the Pareto front; candidates re-measured on the device "
        "(predicted → measured):",
        "",
        "| subnet | predicted (ms) | measured (ms) | error | meets budget |",
        "|---|---|---|---|---|",
        *ck_rows,
        "",
        *[f"![{p.stem}](figures/{p.name})" for p in pareto],
        "",
        "## Precision",
        f"Policy searched under a {manifest.accuracy.max_accuracy_drop} pt accuracy-drop budget: "
        f"{precision_text(s['precision'])}; deployed/FP32 latency ratio {1 / manifest.latency.speedup_vs_fp32:.2f}.",
        "",
        *(["Runtime and policy chosen by measurement: " + s["choice"] + ".", "",
           "| runtime | precision | policy | top-1 (val) | drop | speed-up vs baseline (CI) | verdict | chosen |",
           "|---|---|---|---|---|---|---|---|",
           *[f"| {r['runtime']} | {r['precision']} | {r['policy']} | {r['accuracy']:.2f} | {r['drop_pts']:+.2f} | "
             f"{r['speedup']:.2f}x ({r['speedup_ci'][0]:.2f}-{r['speedup_ci'][1]:.2f}) | {r['verdict']} | "
             f"{'**yes**' if r['chosen'] else ''} |" for r in manifest.selection["table"] if r.get("speedup")],
           ""] if manifest.selection else []),
        f"![precision](figures/{pol_png.name})" if pol_png else "(FP32 or INT8 everywhere: no per-group search.)",
        "",
        "## Time",
        f"profile {t['profile_s']:.0f} s, fit {t['fit_s']:.0f} s, search {t['search_s']:.0f} s, export "
        f"{t['export_s']:.0f} s, verify {t['verify_s']:.0f} s — total {t['total_s'] / 60:.1f} min.",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
