"""Cluster commands: ``device-join`` (this machine becomes a board of a Ray cluster)."""

from __future__ import annotations

from hwnas.cli import Output, command
from hwnas.config import DeviceJoinConfig


@command("device-join", DeviceJoinConfig)
def device_join_cmd(cfg: DeviceJoinConfig, out: Output) -> None:
    import shlex
    import subprocess

    from hwnas.devices.cluster import join_command

    cmd = join_command(cfg.board, cfg.address, cfg.board_kind, cfg.num_cpus, cfg.node_ip, cfg.block)
    if out.as_json:
        out.json({"command": cmd})
    else:
        out.line("running: " + " ".join(shlex.quote(c) for c in cmd))
        out.line("anyone who can reach this cluster with its token can run code on this board "
                 "(see the README's security notes)")
    raise SystemExit(subprocess.call(cmd))
