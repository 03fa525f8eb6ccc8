"""``hwnas quickstart``: the three jobs end to end on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json


@app.command("quickstart")
def quickstart_cmd(
    latency_budget_ms: Optional[float] = typer.Option(None, help="Latency budget (default: the median profiled subnet)."),
    out: Path = typer.Option(Path("runs/quickstart"), help="Run directory."),
    space: str = typer.Option("fmnist-mbv3", help="Search space (with shipped weights and accuracy predictor)."),
    device: str = typer.Option("onnxruntime-cpu"),
    threads: int = typer.Option(1),
    samples: int = typer.Option(60, help="End-to-end subnets in the quick profile."),
    max_accuracy_drop: float = typer.Option(0.5, help="Top-1 points the mixed-precision policy may lose."),
    reuse_shipped: bool = typer.Option(True, help="Reuse a shipped profile of this exact CPU and runtime."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Profile this CPU, fit and evaluate a latency model, search under the budget, export with a
    searched mixed-precision policy, verify on the device, and write a report."""
    from hwnas.pipeline import quickstart
    from hwnas.report import precision_text

    con = console()
    s = quickstart(out, space, latency_budget_ms, device, threads, samples=samples,
                   max_accuracy_drop=max_accuracy_drop, seed=seed, reuse_shipped=reuse_shipped,
                   progress=None if as_json else con.print)
    if as_json:
        echo_json(s)
        return
    from rich.table import Table

    t = Table("", "", title="hwnas quickstart")
    t.add_row("chosen arch", s["arch"])
    t.add_row("latency budget", f"{s['latency_budget_ms']:.4f} ms")
    t.add_row("latency predicted / measured", f"{s['predicted_ms']:.4f} / {s['measured_ms']:.4f} ms (FP32, on the device)")
    t.add_row("deployed latency", f"{s['deployed_ms']:.4f} ms ({precision_text(s['precision'])})")
    t.add_row("top-1 FP32 / deployed", f"{s['fp32_top1']:.2f} / {s['deployed_top1']:.2f} % (test)")
    t.add_row("memory", f"{s['peak_memory_mb']:.1f} MiB peak RSS; weights "
                        f"{s['analytic_memory_mb']['weights_mb']:.2f} MiB + activations "
                        f"{s['analytic_memory_mb']['peak_activations_mb']:.2f} MiB")
    t.add_row("bundle", f"{s['bundle']} ({'verified' if s['verified'] else 'NOT verified'})")
    t.add_row("report", s["report"])
    t.add_row("time", f"{s['timings_s']['total_s'] / 60:.1f} min")
    con.print(t)
    if not s["verified"] or not s["meets_budget_measured"]:
        raise typer.Exit(1)
