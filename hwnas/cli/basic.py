"""Commands of the foundation: spaces, devices, arch, export-subnet, measure."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json, parse_arch


@app.command("spaces")
def spaces_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the search spaces."""
    from hwnas.supernet.spaces import get_space, list_spaces

    rows = [get_space(n).summary() for n in list_spaces()]
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    t = Table("space", "input", "slots", "kernel", "expand", "depth", "MMACs")
    for r in rows:
        t.add_row(r["name"], r["input"], str(r["slots"]), str(r["kernel"]), str(r["expand"]), str(r["depth"]),
                  f"{r['macs_m'][0]}..{r['macs_m'][1]}")
    con = console()
    con.print(t)
    for r in rows:
        con.print(f"{r['name']}: {r['description']}")


@app.command("devices")
def devices_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List every device backend, whether it works here, and how to install it if not."""
    from hwnas.devices import list_devices

    rows = list_devices()
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    from rich.markup import escape

    t = Table("device", "available", "version / why not", "description")
    for r in rows:  # escape: "hwnas[gpu]" is not rich markup
        t.add_row(r["name"], "yes" if r["available"] else "no", escape(r["detail"]), escape(r["description"]))
    console().print(t)


@app.command("arch")
def arch_cmd(
    which: str = typer.Argument(..., help="sample | min | max"),
    space: str = typer.Option(..., help="Search space."),
    seed: int = typer.Option(0, help="Seed for 'sample'."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Input resolution."),
    as_json: bool = typer.Option(False, "--json", help="Print the arch dict with MACs and params."),
) -> None:
    """Print one arch string that every --arch option accepts."""
    import numpy as np

    from hwnas.errors import ConfigError
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    if which == "sample":
        a = sp.sample(np.random.default_rng(seed), None if resolution is None else [resolution])
    elif which == "min":
        a = sp.min_arch(resolution)
    elif which == "max":
        a = sp.max_arch(resolution)
    else:
        raise ConfigError(f"Unknown arch selector '{which}': use sample, min or max.")
    if as_json:
        echo_json({**a.to_dict(), "arch": a.to_str(), "key": a.key(), "macs": sp.macs(a), "params": sp.params(a)})
    else:
        typer.echo(a.to_str())


@app.command("export-subnet")
def export_subnet_cmd(
    arch: str = typer.Option(..., help="Arch string, JSON dict or JSON file."),
    space: Optional[str] = typer.Option(None, help="Search space (if the arch string does not name it)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Super-network weights (default: shipped, else random)."),
    out: Path = typer.Option(..., help="ONNX file to write."),
    batch_size: int = typer.Option(1),
) -> None:
    """Extract a subnet and export it to ONNX."""
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet

    a = parse_arch(arch, space)
    net, source = load_supernet(a.space, checkpoint)
    export_subnet(net, a, out, batch_size)
    typer.echo(f"wrote {out} ({a.to_str()}, weights: {source})")


@app.command("measure")
def measure_cmd(
    model: Path = typer.Argument(..., help="ONNX model."),
    device: str = typer.Option("onnxruntime-cpu", help="Device backend (see 'hwnas devices')."),
    threads: int = typer.Option(1, help="Runtime threads."),
    runs: int = typer.Option(100, help="Timed runs (plain timing)."),
    budget_s: float = typer.Option(2.0, help="Time budget for the timed runs."),
    bursts: int = typer.Option(6, help="Interleaved bursts with the reference model."),
    reference: str = typer.Option("auto", help="auto | none | ref-small | ref-medium | ref-large."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure latency and peak memory of an ONNX model on a device."""
    from hwnas.devices import get_device
    from hwnas.devices.measure import measure_model
    from hwnas.devices.timing import TimingConfig
    from hwnas.errors import ConfigError

    if not model.is_file():
        raise ConfigError(f"Model '{model}' does not exist.")
    dev = get_device(device, threads=threads)
    m = measure_model(dev, model, TimingConfig(runs=runs, budget_s=budget_s, bursts=bursts), reference=reference)
    d = m.to_dict()
    d["device"] = dev.spec().to_dict()
    if as_json:
        echo_json(d)
        return
    s = m.stats
    lines = [f"{model} on {device} ({threads} thread{'s' if threads > 1 else ''}, "
             f"{dev.spec().runtime} {dev.spec().runtime_version})",
             f"  median {s.median_ms:.3f} ms   min {s.min_ms:.3f}   p10 {s.p10_ms:.3f}   p90 {s.p90_ms:.3f}   "
             f"({s.n_runs} runs, {s.n_warmup} warm-up)"]
    if m.ref is not None:
        lines.append(f"  {m.ref.ratio:.4f} x {m.ref.reference} ({m.ref.ref_median_ms:.3f} ms) = "
                     f"{m.normalized_ms:.3f} ms normalised; ratio spread {m.ref.ratio_spread:.1%} over "
                     f"{m.ref.n_bursts} bursts")
    if m.peak_memory_mb is not None:
        lines.append(f"  peak memory {m.peak_memory_mb:.1f} MiB")
    if s.unstable:
        lines.append(f"  warning: spread {s.spread:.0%} (p90-p10)/median is too wide to trust the median; "
                     "quote the normalised figure or re-run on a quieter machine")
    typer.echo("\n".join(lines))
