"""Commands of the foundation: spaces, devices, arch, export-subnet, measure."""

from __future__ import annotations

from hwnas.cli import Output, command
from hwnas.config import ArchQueryConfig, DevicesConfig, ExportSubnetConfig, MeasureConfig, SpacesConfig


@command("spaces", SpacesConfig)
def spaces_cmd(cfg: SpacesConfig, out: Output) -> None:
    from hwnas.supernet.spaces import get_space, list_spaces

    rows = [get_space(n).summary() for n in list_spaces(cfg.pattern)]
    if out.as_json:
        return out.json(rows)
    from rich.table import Table

    t = Table("space", "input", "slots", "kernel", "expand", "depth", "MMACs")
    for r in rows:
        t.add_row(r["name"], r["input"], str(r["slots"]), str(r["kernel"]), str(r["expand"]), str(r["depth"]),
                  f"{r['macs_m'][0]}..{r['macs_m'][1]}")
    out.print(t)
    for r in rows:
        out.print(f"{r['name']}: {r['description']}")


@command("devices", DevicesConfig)
def devices_cmd(cfg: DevicesConfig, out: Output) -> None:
    from fnmatch import fnmatch

    from hwnas.devices import list_devices

    rows = [r for r in list_devices() if fnmatch(r["name"], cfg.pattern)]
    boards = None
    if cfg.cluster:
        from hwnas.devices.cluster import cluster_boards

        boards = cluster_boards(None if cfg.cluster == "env" else cfg.cluster)
    if out.as_json:
        return out.json(rows if boards is None else {"local": rows, "boards": boards})
    from rich.markup import escape
    from rich.table import Table

    t = Table("device", "available", "version / why not", "description")
    for r in rows:  # escape: "hwnas[gpu]" is not rich markup
        t.add_row(r["name"], "yes" if r["available"] else "no", escape(r["detail"]), escape(r["description"]))
    out.print(t)
    if boards is not None:
        t = Table("board", "kind", "node", "runtimes (as the board reports them)", "cpu")
        for b in boards:
            t.add_row(b["board"], b["kind"] or "-", b["node"], escape(", ".join(b["usable"]) or b.get("busy", "")),
                      escape(str(b.get("cpu", ""))))
        out.print(t)
        out.print(f"use one as --device BACKEND@BOARD (or BACKEND@KIND for a fleet); {len(boards)} board(s)")


@command("arch", ArchQueryConfig)
def arch_cmd(cfg: ArchQueryConfig, out: Output) -> None:
    import numpy as np

    from hwnas.errors import ConfigError
    from hwnas.supernet.spaces import get_space

    sp = get_space(cfg.space)
    if cfg.which == "sample":
        a = sp.sample(np.random.default_rng(cfg.seed), None if cfg.resolution is None else [cfg.resolution])
    elif cfg.which == "min":
        a = sp.min_arch(cfg.resolution)
    elif cfg.which == "max":
        a = sp.max_arch(cfg.resolution)
    else:
        raise ConfigError(f"Unknown arch selector '{cfg.which}': use sample, min or max.")
    if out.as_json:
        return out.json({**a.to_dict(), "arch": a.to_str(), "key": a.key(), "macs": sp.macs(a), "params": sp.params(a)})
    out.line(a.to_str())


@command("export-subnet", ExportSubnetConfig)
def export_subnet_cmd(cfg: ExportSubnetConfig, out: Output) -> None:
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet
    from hwnas.types import ArchConfig

    a = ArchConfig.parse(cfg.arch, cfg.space)
    net, source = load_supernet(a.space, cfg.checkpoint)
    export_subnet(net, a, cfg.out, cfg.batch_size)
    if out.as_json:
        return out.json({"out": str(cfg.out), "arch": a.to_str(), "key": a.key(), "weights": source})
    out.line(f"wrote {cfg.out} ({a.to_str()}, weights: {source})")


@command("measure", MeasureConfig)
def measure_cmd(cfg: MeasureConfig, out: Output) -> None:
    from hwnas.devices.timing import TimingConfig
    from hwnas.errors import ConfigError
    from hwnas.pipeline.jobs import device_from

    if not cfg.model.is_file():
        raise ConfigError(f"Model '{cfg.model}' does not exist.")
    dev = device_from(cfg.device, cfg.threads, cluster=cfg.cluster)
    m = dev.measure(cfg.model, TimingConfig(runs=cfg.runs, budget_s=cfg.budget_s, bursts=cfg.bursts),
                    reference=cfg.reference)
    if out.as_json:
        return out.json({**m.to_dict(), "device": dev.spec().to_dict()})
    s = m.stats
    lines = [f"{cfg.model} on {cfg.device} ({cfg.threads} thread{'s' if cfg.threads > 1 else ''}, "
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
    out.print("\n".join(lines))
