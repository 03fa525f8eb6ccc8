"""How trustworthy a profile's numbers are: repeatability, drift between sessions, flagged rows.

*Repeatability* compares each re-measured arch (``repeat`` > 0) with its first measurement,
for the normalised figure (``latency_ms``), the raw median and the raw minimum: the share of
pairs within ±5 % / ±10 % and the median deviation. This is the floor a latency model is
judged against — no predictor can be expected to match a measurement closer than the
measurement matches itself. *Drift* is each session's primary-reference latency relative to
the canonical one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.profiles.profile import DeviceProfile

ESTIMATORS = {"normalised": "latency_ms", "median": "median_ms", "min": "min_ms"}


def repeat_pairs(prof: DeviceProfile, space: str | None = None):
    """DataFrame of (first, repeat) measurement pairs of the same arch, one row per repeat."""
    df = prof.models_df(space)
    first = df[df["repeat"] == 0].set_index("arch_key")
    rep = df[df["repeat"] > 0]
    rep = rep[rep["arch_key"].isin(first.index)]
    out = rep[["arch_key", "arch", "space", "resolution"]].copy()
    for name, col in ESTIMATORS.items():
        out[f"{name}_first"] = first.loc[rep["arch_key"], col].to_numpy(dtype=float)
        out[f"{name}_repeat"] = rep[col].to_numpy(dtype=float)
    return out.reset_index(drop=True)


def repeatability(prof: DeviceProfile, space: str | None = None) -> dict[str, Any]:
    """Per estimator: n pairs, % within ±5/±10 %, median and max |deviation| (fractions)."""
    pairs = repeat_pairs(prof, space)
    out: dict[str, Any] = {"n_pairs": int(len(pairs))}
    if not len(pairs):
        return out
    for name in ESTIMATORS:
        a, b = pairs[f"{name}_first"].to_numpy(), pairs[f"{name}_repeat"].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0)
        if not ok.any():
            continue
        dev = np.abs(b[ok] - a[ok]) / a[ok]
        out[name] = {"within_5": float(np.mean(dev <= 0.05)), "within_10": float(np.mean(dev <= 0.10)),
                     "median_dev": float(np.median(dev)), "max_dev": float(dev.max())}
    return out


def summarize(prof: DeviceProfile) -> dict[str, Any]:
    """Counts, repeatability per space, session drift and flagged rows (stored in ``device.json``)."""
    models, ops = prof.models_df(), prof.ops_df()
    out: dict[str, Any] = {"spaces": {}}
    for sp in prof.spaces:
        m = models[models["space"] == sp]
        out["spaces"][sp] = {
            "models": {k: int(v) for k, v in m["kind"].value_counts().items()},
            "ops": int(len(prof.ops_df(sp))),
            "unstable_models": int(m["unstable"].fillna(False).sum()),
            "repeatability": repeatability(prof, sp),
            "latency_ms_range": [float(m["latency_ms"].min()), float(m["latency_ms"].max())] if len(m) else None,
        }
    out["ops_total"] = int(len(ops))
    out["unstable_ops"] = int(ops["unstable"].fillna(False).sum()) if len(ops) else 0
    out["session_drift"] = [float(s.get("drift_vs_canonical", 0.0)) for s in prof.sessions]
    return out


def describe(quality: dict[str, Any], energy: dict[str, Any] | None = None) -> list[str]:
    """Human-readable lines of a :func:`summarize` result."""
    lines = []
    for sp, q in quality.get("spaces", {}).items():
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(q["models"].items()))
        rng = q.get("latency_ms_range")
        lines.append(f"{sp}: {q['ops']} ops, end-to-end: {kinds or 'none'}"
                     + (f"; {rng[0]:.3f}..{rng[1]:.3f} ms normalised" if rng else ""))
        rep = q["repeatability"]
        if rep.get("n_pairs"):
            parts = []
            for name in ESTIMATORS:
                if name in rep:
                    r = rep[name]
                    parts.append(f"{name} {r['within_5']:.0%} within ±5 %, {r['within_10']:.0%} within ±10 % "
                                 f"(median dev {r['median_dev']:.1%})")
            lines.append(f"  repeatability over {rep['n_pairs']} re-measured archs: " + "; ".join(parts))
        if q["unstable_models"]:
            lines.append(f"  {q['unstable_models']} end-to-end rows flagged unstable (wide spread)")
    drift = quality.get("session_drift") or []
    if len(drift) > 1:
        lines.append("reference drift per session vs canonical: " + ", ".join(f"{d:+.1%}" for d in drift))
    if quality.get("unstable_ops"):
        lines.append(f"{quality['unstable_ops']} of {quality['ops_total']} op rows flagged unstable")
    if energy is not None and not energy.get("meter"):
        lines.append(f"energy: not measured ({energy.get('why', 'no meter')})")
    return lines
