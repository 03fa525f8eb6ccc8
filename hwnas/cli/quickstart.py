"""``hwnas quickstart``: the three jobs end to end on embedded defaults."""

from __future__ import annotations

import typer

from hwnas.cli import Output, command
from hwnas.config import QuickstartConfig


@command("quickstart", QuickstartConfig)
def quickstart_cmd(cfg: QuickstartConfig, out: Output) -> None:
    from hwnas.pipeline import quickstart
    from hwnas.report import precision_text

    s = quickstart(cfg, progress=out.say)
    if out.as_json:
        return out.json(s)
    from rich.table import Table

    t = Table("", "", title="hwnas quickstart")
    t.add_row("chosen arch", s["arch"])
    t.add_row("latency budget", f"{s['latency_budget_ms']:.4f} ms")
    t.add_row("latency predicted / measured", f"{s['predicted_ms']:.4f} / {s['measured_ms']:.4f} ms (FP32, on the device)")
    # with a choice the speed-up is the paired one of the runtime × policy row; the two milliseconds here
    # were taken minutes apart on another runtime, so their ratio would mix load with speed
    ratio = "" if s.get("choice") else f"; {s['fp32_ms'] / s['deployed_ms']:.2f}x the FP32 model on this device"
    t.add_row("deployed latency", f"{s['deployed_ms']:.4f} ms now ({precision_text(s['precision'])}{ratio})")
    if s.get("choice"):
        t.add_row("runtime × policy", s["choice"])
    t.add_row("top-1 FP32 / deployed", f"{s['fp32_top1']:.2f} / {s['deployed_top1']:.2f} % (test)")
    t.add_row("memory", f"{s['peak_memory_mb']:.1f} MiB peak RSS; weights "
                        f"{s['analytic_memory_mb']['weights_mb']:.2f} MiB + activations "
                        f"{s['analytic_memory_mb']['peak_activations_mb']:.2f} MiB")
    t.add_row("bundle", f"{s['bundle']} ({'verified' if s['verified'] else 'NOT verified'})")
    t.add_row("report", s["report"])
    t.add_row("time", f"{s['timings_s']['total_s'] / 60:.1f} min")
    out.print(t)
    if not s["verified"] or not s["meets_budget_measured"]:
        raise typer.Exit(1)
