"""Profiling commands: ``profile`` (measure a device), ``profile-info`` (what a profile holds),
``profile-merge`` (join two profiles of the same device)."""

from __future__ import annotations

from hwnas.cli import Output, command
from hwnas.config import ProfileConfig, ProfileInfoConfig, ProfileMergeConfig


@command("profile", ProfileConfig)
def profile_cmd(cfg: ProfileConfig, out: Output) -> None:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.pipeline import profile
    from hwnas.profiles.quality import describe

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=out.console, disable=out.as_json,
                  transient=False) as prog:
        task = prog.add_task("starting", total=1.0)

        def progress(desc: str, done: float, total: float) -> None:
            prog.update(task, description=desc[:70].ljust(70), completed=done, total=max(total, 1e-9))

        rep = profile(cfg, progress=progress)
    if out.as_json:
        return out.json(rep.to_dict())
    for sp, r in rep.spaces.items():
        if "history" in r:  # few-shot
            out.print(f"{sp}: few-shot profile from {r['measured']} measurements: {r['model']}; leave-one-out "
                      f"{r['metrics']['within_10']:.0%} within ±10 %, MAPE {r['metrics']['mape']:.1%}"
                      + ("" if r["target_met"] else " (target error not met: raise --few-shot)"))
            continue
        secs = r["seconds"]
        if r["measured"] and r["unstable"] > r["measured"] / 2:
            out.print(f"[yellow]warning: {r['unstable']} of {r['measured']} rows came out unstable: the machine is "
                      f"busy or --threads {cfg.threads} competes with other work; profile on a quieter machine or "
                      "with fewer threads[/yellow]")
        out.print(f"{sp}: measured {r['measured']} of {r['planned']} planned ({r['already_stored']} already stored) "
                  f"in {r['wall_s']:.0f} s (ops {secs['ops']:.0f} s, end-to-end {secs['models']:.0f} s); "
                  f"{r['unstable']} flagged unstable; weights: {r['weights']}")
    for line in describe(rep.quality, rep.energy):
        out.print(line)
    for r in rep.spaces.values():
        if "boards" in r:  # measured on boards of a cluster
            from hwnas.profiling.fleet import describe as fleet_lines

            for line in fleet_lines(r):
                out.print(line)
    out.print(f"profile: {cfg.out}")


@command("profile-info", ProfileInfoConfig)
def profile_info_cmd(cfg: ProfileInfoConfig, out: Output) -> None:
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.quality import describe, summarize

    prof = DeviceProfile.open(cfg.profile)
    q = summarize(prof)
    info = {"device": prof.device_name, "spec": prof.spec.to_dict(), "host": prof.host, "spaces": prof.spaces,
            "reference_ms": prof.reference_ms_by_name, "sessions": prof.sessions, "quality": q,
            "energy": prof.meta.get("energy", {}), "predictors": prof.list_models(), "shipped": prof.shipped,
            "id": prof.content_id()}
    if out.as_json:
        return out.json(info)
    s = prof.spec
    out.print(f"{cfg.profile}: {prof.device_name} — {s.hardware}, {s.runtime} {s.runtime_version}, {s.provider}, "
              f"{s.precision}, {s.threads} thread(s), batch {s.batch_size}" + (" (shipped, read-only)" if prof.shipped else ""))
    host = prof.host
    out.print(f"host: {host.get('cpu')}, {host.get('logical_cores')} logical cores, {host.get('memory_gb')} GiB; ISA "
              f"{', '.join(host.get('isa', [])) or '?'}; {host.get('os')}")
    out.print("reference latencies (canonical): "
              + ", ".join(f"{k} {v:.3f} ms" for k, v in prof.reference_ms_by_name.items()))
    out.print(f"{len(prof.sessions)} session(s)")
    for line in describe(q, prof.meta.get("energy", {})):
        out.print(line)
    for m in prof.list_models():
        out.print(f"fitted: {m['space']} {m['target']} {m['name']}")


@command("profile-merge", ProfileMergeConfig)
def profile_merge_cmd(cfg: ProfileMergeConfig, out: Output) -> None:
    from hwnas.profiles import merge_profiles

    added = merge_profiles(cfg.dst, cfg.src)
    if out.as_json:
        return out.json(added)
    out.print(f"added {added.get('models', 0)} end-to-end and {added.get('ops', 0)} op rows to {cfg.dst}")
