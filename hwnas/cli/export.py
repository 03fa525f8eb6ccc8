"""``hwnas export`` and ``hwnas verify``: the deployment bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json, parse_arch


@app.command("export")
def export_cmd(
    run: Optional[Path] = typer.Option(None, help="A search run directory (its front.json)."),
    pick: str = typer.Option("best", help="With --run: 'best' or a candidate index."),
    arch: Optional[str] = typer.Option(None, help="Arch string / JSON (instead of --run)."),
    space: Optional[str] = typer.Option(None, help="Search space, if the arch does not name it."),
    checkpoint: Optional[Path] = typer.Option(None, help="Super-network weights (default: shipped)."),
    device: str = typer.Option("onnxruntime-cpu", help="Target device backend."),
    threads: int = typer.Option(1),
    precision: str = typer.Option("mixed", help="fp32 | int8 | mixed (searched per layer group)."),
    max_accuracy_drop: float = typer.Option(0.5, help="Top-1 points the mixed policy may lose (validation split)."),
    data: Optional[Path] = typer.Option(None, help="Fashion-MNIST folder (default: the Debian package's)."),
    out: Path = typer.Option(..., help="Bundle directory to create."),
    overwrite: bool = typer.Option(False, help="Replace an existing bundle at --out."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Export a subnet: quantize it, compile it for the device, measure it there, write a verified bundle."""
    from hwnas.errors import ConfigError
    from hwnas.pipeline import export_bundle

    predicted, source_run, profile = None, None, None
    if run is not None:
        from hwnas.types import ParetoFront

        front = ParetoFront.load(run)
        if pick == "best":
            if front.best is None:
                raise ConfigError(f"Run '{run}' has no candidate that meets its budget; pass --pick INDEX.")
            idx = front.best
        else:
            try:
                idx = int(pick)
                front.candidates[idx]
            except (ValueError, IndexError):
                raise ConfigError(f"--pick must be 'best' or an index 0..{len(front.candidates) - 1}.") from None
        cand = front.candidates[idx]
        a, predicted, source_run = cand.arch, dict(cand.objectives), f"{run} [{idx}]"
        if front.meta.get("profile") and Path(front.meta["profile"]).is_dir():
            profile = front.meta["profile"]  # measure on the scale the search predicted on
    elif arch is not None:
        a = parse_arch(arch, space)
    else:
        raise ConfigError("Give --run RUN_DIR or --arch ARCH.")
    con = console()
    m = export_bundle(a, out, device, precision, max_accuracy_drop, checkpoint, threads, predicted, data,
                      overwrite, source_run, progress=None if as_json else con.print, profile=profile)
    if as_json:
        echo_json(m)
        return
    acc, lat = m["accuracy"], m["latency"]
    pred = f"{lat['predicted_ms']:.4f} ms" if lat["predicted_ms"] is not None else "—"
    con.print(f"{m['arch']} → {out}\n  precision {m['precision']} ({m['policy_summary']}), deployed {m['deployed']}\n"
              f"  top-1 fp32 {acc['fp32_top1']:.2f} % → {acc['deployed_top1']:.2f} % (test, {acc['images']} images)\n"
              f"  latency fp32 {lat['fp32_ms']:.4f} ms → {lat['measured_ms']:.4f} ms "
              f"({lat['speedup_vs_fp32']:.2f}x; predicted {pred})")


@app.command("verify")
def verify_cmd(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    device: Optional[str] = typer.Option(None, help="Device (default: the one in the manifest)."),
    latency_tolerance: float = typer.Option(0.15, help="Allowed relative latency difference."),
    data: Optional[Path] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-check a bundle: hashes, then accuracy and latency on the device against its manifest."""
    from hwnas.pipeline import verify_bundle

    r = verify_bundle(bundle, device, latency_tolerance, data_dir=data)
    if as_json:
        echo_json(r)
    else:
        a, lt = r["accuracy"], r["latency"]
        console().print(
            f"hashes ok\naccuracy {a['measured']:.2f} % (manifest {a['manifest']:.2f} %) {'ok' if a['ok'] else 'MISMATCH'}\n"
            f"latency {lt['measured_ms']:.4f} ms (manifest {lt['manifest_ms']:.4f} ms, {lt['rel_diff']:+.1%}) "
            f"{'ok' if lt['ok'] else 'MISMATCH'}")
    if not r["ok"]:
        raise typer.Exit(1)
