"""Profiling commands: ``profile`` (measure a device), ``profile-info`` (what a profile holds),
``profile-merge`` (join two profiles of the same device)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli import app, console, echo_json


def _int_list(text: Optional[str]) -> Optional[list[int]]:
    from hwnas.errors import ConfigError

    if not text:
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"--resolutions takes comma-separated integers, e.g. 128,160,192; got '{text}'.") from None


def _options(items: list[str]) -> dict[str, str]:
    from hwnas.errors import ConfigError

    out = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"--option takes KEY=VALUE, got '{it}'.")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@app.command("profile")
def profile_cmd(
    space: list[str] = typer.Option(..., "--space", help="Search space to profile (repeat for several)."),
    device: str = typer.Option("onnxruntime-cpu", help="Device backend (see 'hwnas devices')."),
    threads: int = typer.Option(1, help="Runtime threads."),
    out: Path = typer.Option(..., help="Profile directory (created, or resumed if it holds this device's profile)."),
    samples: int = typer.Option(100, help="Random end-to-end subnets (stratified over size and resolution)."),
    reference_set: int = typer.Option(20, help="Fixed reference subnets (the same archs on every device)."),
    repeats: int = typer.Option(10, help="Reference subnets measured again at the end (repeatability)."),
    holdout: int = typer.Option(0, help="Extra subnets measured only to evaluate predictors ('hwnas evaluate'), "
                                "alternating with the samples; never used to fit."),
    resolutions: Optional[str] = typer.Option(None, help="Block-table resolutions, e.g. 128,160,192,224 "
                                              "(default: every 16 px for large spaces, all for small)."),
    ops: bool = typer.Option(True, "--ops/--no-ops", help="Measure the block/op table."),
    kernel_times: bool = typer.Option(True, "--kernel-times/--no-kernel-times",
                                      help="Record per-kernel times of the fused graph where the backend can."),
    energy: bool = typer.Option(True, "--energy/--no-energy", help="Measure energy where a meter exists."),
    quick: bool = typer.Option(False, help="Short timing runs (smoke tests; numbers are noisier)."),
    seed: int = typer.Option(0, help="Seed of the random samples (the reference set never changes)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Super-network weights (default: shipped, else random "
                                              "initialisation — latency does not depend on weight values)."),
    option: list[str] = typer.Option([], "--option", help="Device option KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure a device: block table, end-to-end samples, reference set; resumable (re-run to continue)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.devices.timing import TimingConfig
    from hwnas.pipeline import profile_device
    from hwnas.profiles.quality import describe

    extra = {}
    if quick:
        extra = {"model_timing": TimingConfig(warmup=3, warmup_s=0.0, runs=15, min_runs=5, budget_s=0.1, bursts=3,
                                              burst_s=0.01, min_burst_runs=3),
                 "op_timing": TimingConfig(warmup=2, warmup_s=0.0, runs=10, min_runs=3, budget_s=0.05, bursts=2,
                                           burst_s=0.005, min_burst_runs=2),
                 "retries": 0}
    con = console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=con, disable=as_json, transient=False) as prog:
        task = prog.add_task("starting", total=1.0)

        def progress(desc: str, done: float, total: float) -> None:
            prog.update(task, description=desc[:70].ljust(70), completed=done, total=max(total, 1e-9))

        res = profile_device(out, space, device, threads, _options(option), checkpoint, progress,
                             samples=samples, reference_set=reference_set, repeats=repeats, holdout=holdout,
                             op_resolutions=_int_list(resolutions), ops=ops, seed=seed, kernel_times=kernel_times,
                             energy=energy, **extra)
    if as_json:
        echo_json(res)
        return
    for sp, r in res["spaces"].items():
        secs = r["seconds"]
        con.print(f"{sp}: measured {r['measured']} of {r['planned']} planned ({r['already_stored']} already stored) "
                  f"in {r['wall_s']:.0f} s (ops {secs['ops']:.0f} s, end-to-end {secs['models']:.0f} s); "
                  f"{r['unstable']} flagged unstable; weights: {r['weights']}")
    for line in describe(res["quality"], res["energy"]):
        con.print(line)
    con.print(f"profile: {out}")


@app.command("profile-info")
def profile_info_cmd(profile: Path = typer.Argument(..., help="Profile directory."),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """What a profile holds: device, host, spaces, rows, repeatability, energy, fitted models."""
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.quality import describe, summarize

    prof = DeviceProfile.open(profile)
    q = summarize(prof)
    info = {"device": prof.device_name, "spec": prof.spec.to_dict(), "host": prof.host, "spaces": prof.spaces,
            "reference_ms": prof.reference_ms_by_name, "sessions": prof.sessions, "quality": q,
            "energy": prof.meta.get("energy", {}), "predictors": prof.list_models()}
    if as_json:
        echo_json(info)
        return
    con = console()
    s = prof.spec
    con.print(f"{profile}: {prof.device_name} — {s.hardware}, {s.runtime} {s.runtime_version}, {s.provider}, "
              f"{s.precision}, {s.threads} thread(s), batch {s.batch_size}")
    con.print(f"reference latencies (canonical): "
              + ", ".join(f"{k} {v:.3f} ms" for k, v in prof.reference_ms_by_name.items()))
    con.print(f"{len(prof.sessions)} session(s)")
    for line in describe(q, prof.meta.get("energy", {})):
        con.print(line)
    for m in prof.list_models():
        con.print(f"fitted: {m['space']} {m['target']} {m['name']}")


@app.command("profile-merge")
def profile_merge_cmd(dst: Path = typer.Argument(..., help="Profile to extend."),
                      src: Path = typer.Argument(..., help="Profile of the same device to take rows from.")) -> None:
    """Merge two profiles of the same device (rows rescaled to the destination's reference latencies)."""
    from hwnas.profiles import merge_profiles

    added = merge_profiles(dst, src)
    typer.echo(f"added {added.get('models', 0)} end-to-end and {added.get('ops', 0)} op rows to {dst}")
