"""The ``hwnas`` command line. Each command builds a config and calls the library.

Errors derived from :class:`~hwnas.errors.HwnasError` are printed as one line on
stderr with exit status 2 (1 for a failed verification), never as a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from hwnas.errors import HwnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Profile a device, search a subnet under a budget, export it to the device.")


@app.callback()
def _root() -> None:
    """Profile a device, search a subnet under a budget, export it to the device."""


def _console():
    from rich.console import Console

    return Console()


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=1, default=str))


def parse_arch(text: str, space: Optional[str]):
    """``--arch`` accepts the string of ``hwnas arch``, a JSON dict (OFA's ks/e/d/r form too) or a JSON file."""
    from hwnas.types import ArchConfig

    p = Path(text)
    if text.endswith(".json") and p.is_file():
        return ArchConfig.from_dict(json.loads(p.read_text()), space)
    return ArchConfig.parse(text, space)


@app.command("spaces")
def spaces_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the search spaces."""
    from hwnas.supernet.spaces import get_space, list_spaces

    rows = [get_space(n).summary() for n in list_spaces()]
    if as_json:
        _echo_json(rows)
        return
    from rich.table import Table

    t = Table("space", "input", "slots", "kernel", "expand", "depth", "MMACs")
    for r in rows:
        t.add_row(r["name"], r["input"], str(r["slots"]), str(r["kernel"]), str(r["expand"]), str(r["depth"]),
                  f"{r['macs_m'][0]}..{r['macs_m'][1]}")
    con = _console()
    con.print(t)
    for r in rows:
        con.print(f"{r['name']}: {r['description']}")


@app.command("devices")
def devices_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List every device backend, whether it works here, and how to install it if not."""
    from hwnas.devices import list_devices

    rows = list_devices()
    if as_json:
        _echo_json(rows)
        return
    from rich.table import Table

    t = Table("device", "available", "version / why not", "description")
    for r in rows:
        t.add_row(r["name"], "yes" if r["available"] else "no", r["detail"], r["description"])
    _console().print(t)


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
        _echo_json({**a.to_dict(), "arch": a.to_str(), "key": a.key(), "macs": sp.macs(a), "params": sp.params(a)})
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
    from hwnas.export.onnx_export import export_subnet
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
        _echo_json(d)
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


@app.command("train-supernet")
def train_supernet_cmd(
    space: str = typer.Option("fmnist-mbv3", help="Search space to train."),
    data: Optional[Path] = typer.Option(None, help="Fashion-MNIST folder (default: the Debian package's)."),
    epochs: int = typer.Option(15, help="Training epochs."),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(0.1, help="Peak learning rate (SGD + Nesterov, cosine)."),
    seed: int = typer.Option(0),
    n_random: int = typer.Option(2, help="Random subnets per step besides the largest and smallest."),
    train_limit: int = typer.Option(0, help="Use only the first N training images (0 = all)."),
    threads: int = typer.Option(0, help="torch CPU threads (0 = default)."),
    out: Path = typer.Option(..., help="Checkpoint folder."),
    resume: bool = typer.Option(False, help="Continue the run in --out."),
) -> None:
    """Train a super-network with the sandwich rule and in-place distillation."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.supernet.data import load_fmnist_split
    from hwnas.supernet.modelcard import write_model_card
    from hwnas.supernet.train import TrainConfig, train_supernet

    cfg = TrainConfig(space=space, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_random=n_random,
                      train_limit=train_limit, threads=threads)
    train, val = load_fmnist_split("train", data), load_fmnist_split("val", data)
    console = _console()
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console) as prog:
        task = prog.add_task("train", total=1, epoch=0, loss=0.0)

        def on_step(epoch: int, step: int, n: int, loss: float) -> None:
            prog.update(task, completed=step + 1, total=n, epoch=epoch + 1, loss=loss)

        def on_epoch(rec: dict) -> None:
            prog.console.print(
                f"epoch {rec['epoch']}: val top-1 smallest {rec['val_top1_min']:.2f} %, largest "
                f"{rec['val_top1_max']:.2f} %, {rec['epoch_s']:.0f} s"
            )

        weights = train_supernet(cfg, train, val, out, resume=resume, on_step=on_step, on_epoch=on_epoch)
    card = write_model_card(weights, command=" ".join(["hwnas"] + sys.argv[1:]), data_dir=data)
    console.print(f"weights: {weights}\nmodel card: {card}")


def main() -> None:
    try:
        app()
    except HwnasError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
