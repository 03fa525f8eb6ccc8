"""A real Ray cluster on this machine's loopback addresses: try remote boards without hardware, test and benchmark.

Every node is ``ray start ... --block`` in its own session (process group), on its own 127.x.y.z
address (Linux answers the whole 127.0.0.0/8 on the loopback device; Ray rewrites 127.0.0.1 to the
machine's outward address, so the nodes use others). Token authentication is on with a fresh
token. A board node can run another Python (e.g. an environment with only numpy, the runtime and
Ray) and be pinned to CPU cores (``taskset``). :meth:`LoopbackCluster.stop` kills exactly the
processes this cluster started: each node's process group, then the Ray workers whose
``RAY_RAYLET_PID`` names one of its raylets. Linux only.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """Head and boards under ``root`` (logs, Ray's temp dir, each board's cache); ``board_py`` the Python
    board nodes run (default: this one)."""

    def __init__(self, root: Path, board_py: Path | None = None) -> None:
        self.root, self.board_py = Path(root), Path(board_py or sys.executable)
        self.root.mkdir(parents=True, exist_ok=True)
        net = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}"
        self.head_ip, self._next_ip = f"{net}.2", (net, 3)
        self.port = _free_port()
        self.address = f"{self.head_ip}:{self.port}"
        self.token = secrets.token_hex(24)
        self.nodes: dict[str, subprocess.Popen] = {}
        self.raylets: set[int] = set()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}, **extra)
        return env

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.nodes[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start_head(self, timeout_s: float = 90.0) -> None:
        """Start the head and wait until it says it runs (boards joining earlier give up)."""
        ray = Path(sys.executable).with_name("ray")
        self._start("head", [str(ray), "start", "--head", "--node-ip-address", self.head_ip, "--port", str(self.port),
                             "--num-cpus", "1", "--include-dashboard", "false", "--temp-dir", str(self.root / "ray"),
                             "--disable-usage-stats", "--block"], self.env())
        self._wait_started("head", timeout_s)

    def _wait_started(self, name: str, timeout_s: float) -> None:
        """Until the node says it runs: nodes started at once race for the same free ports."""
        t_end = time.time() + timeout_s
        log = self.root / f"{name}.log"
        while b"Ray runtime started" not in log.read_bytes():
            if self.nodes[name].poll() is not None or time.time() > t_end:
                raise RuntimeError(f"node {name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)

    def add_board(self, board: str, kind: str = "tiny", cores: str | None = None, **env: str) -> None:
        """A board node advertising ``hwnas-device:<board>`` and ``hwnas-kind:<kind>``; ``cores`` pins it
        (``taskset -c``), e.g. ``"1"``; ``env`` adds environment variables for its processes."""
        net, n = self._next_ip
        self._next_ip = (net, n + 1)
        ray = self.board_py.with_name("ray")
        res = json.dumps({f"hwnas-device:{board}": 1, f"hwnas-kind:{kind}": 1})
        pin = ["taskset", "-c", cores] if cores is not None else []
        self._start(board, pin + [str(ray), "start", "--address", self.address, "--node-ip-address", f"{net}.{n}",
                                  "--num-cpus", "1", "--resources", res, "--disable-usage-stats", "--block"],
                    self.env(HWNAS_CACHE=str(self.root / f"cache-{board}"), **env))
        self._wait_started(board, 90.0)

    def wait_for(self, boards: list[str], timeout_s: float = 90.0) -> None:
        from hwnas.devices import cluster

        t_end = time.time() + timeout_s
        while time.time() < t_end:
            for name in ["head", *boards]:
                p = self.nodes.get(name)
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"node {name} exited: {(self.root / f'{name}.log').read_text()[-2000:]}")
            try:
                have = {b["board"] for b in cluster.boards(cluster.connect(self.address))}
            except Exception:  # the head is still starting
                have = set()
            if set(boards) <= have:
                self._note_raylets()
                return
            time.sleep(1.0)
        raise TimeoutError(f"boards {boards} did not join within {timeout_s} s")

    def _children(self, pid: int) -> list[int]:
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == pid:
                    out.append(int(p.name))
        return out

    def _note_raylets(self) -> None:
        for p in self.nodes.values():
            self.raylets.update(self.raylet_of(p.pid))

    def raylet_of(self, pid: int) -> list[int]:
        out = []
        for c in self._children(pid):
            try:
                if b"raylet/raylet" in Path(f"/proc/{c}/cmdline").read_bytes():
                    out.append(c)
            except OSError:
                continue
        return out

    def raylet(self, board: str) -> int:
        """The process id of a board node's raylet (kill it to take the board down hard)."""
        return self.raylet_of(self.nodes[board].pid)[0]

    def stop(self) -> None:
        for p in self.nodes.values():
            self.raylets.update(self.raylet_of(p.pid))
        for p in self.nodes.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the node's own session: ray start, gcs, raylet, agents
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
        raylets = {str(r).encode() for r in self.raylets}
        for proc in Path("/proc").iterdir():  # workers started by our raylets (they run in sessions of their own)
            if not proc.name.isdigit():
                continue
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(b"RAY_RAYLET_PID=") and e.split(b"=", 1)[1] in raylets for e in env):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
