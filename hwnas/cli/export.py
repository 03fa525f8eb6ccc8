"""``hwnas export`` and ``hwnas verify``: the deployment bundle."""

from __future__ import annotations

import typer

from hwnas.cli import Output, command
from hwnas.config import ExportConfig, VerifyConfig


@command("export", ExportConfig)
def export_cmd(cfg: ExportConfig, out: Output) -> None:
    from hwnas.pipeline import export

    bundle = export(cfg, progress=out.say)
    m = bundle.manifest
    if out.as_json:
        return out.json({"bundle": str(bundle.path), "id": bundle.id(), **m.to_dict()})
    acc, lat = m.accuracy, m.latency
    pred = f"{lat.predicted_ms:.4f} ms" if lat.predicted_ms is not None else "—"
    if m.selection:
        out.print(f"  chose {m.selection['reason']} ({len(m.selection['table'])} runtime × policy candidates, "
                  "table in manifest.json 'selection')")
    ran = m.runtime_precisions.get("summary")
    out.print(f"{m.arch} → {bundle.path}\n  precision {m.precision}: {m.policy_label or m.policy_summary} on "
              f"{m.device['name']} ({m.device['precision']}; ran {ran or m.policy_summary}), deployed {m.deployed}\n"
              f"  top-1 fp32 {acc.fp32_top1:.2f} % → {acc.deployed_top1:.2f} % ({acc.split}, {acc.images} images)\n"
              f"  latency fp32 {lat.fp32_ms:.4f} ms → {lat.measured_ms:.4f} ms{per_batch(m.device, lat)} "
              f"({lat.speedup_vs_fp32:.2f}x; predicted {pred})")


def per_batch(device: dict, lat) -> str:
    """' per batch of N (… ms per image)' for a batched bundle, nothing for batch 1."""
    n = int(device.get("batch_size", 1))
    return f" per batch of {n} ({lat.measured_ms / n:.4f} ms per image)" if n > 1 else ""


@command("verify", VerifyConfig)
def verify_cmd(cfg: VerifyConfig, out: Output) -> None:
    from hwnas.pipeline import verify

    r = verify(cfg)
    if out.as_json:
        out.json(r.to_dict())
    else:
        a, lt = r.accuracy, r.latency
        out.print(f"hashes ok\naccuracy {a.measured:.2f} % (manifest {a.manifest:.2f} %) {'ok' if a.ok else 'MISMATCH'}\n"
                  f"latency {lt.measured:.4f} ms (manifest {lt.manifest:.4f} ms, {lt.diff:+.1%}) "
                  f"{'ok' if lt.ok else 'MISMATCH'}")
    if not r.ok:
        raise typer.Exit(1)
