"""The Ray cluster that remote boards join: connecting, what it offers, and the code shipped to boards.

A board is a Ray node that advertises a custom resource named after it, ``hwnas-device:<board>``
(1 unit: one measuring session at a time), and optionally its kind, ``hwnas-kind:<kind>``
(several identical boards form a fleet) and the runtimes it has, ``hwnas-runtime:<backend>``::

    ray start --address HEAD:6379 --resources '{"hwnas-device:orin-1": 1, "hwnas-kind:orin": 1}'

(``hwnas device-join`` does the same and fills in the runtimes it finds.) Nothing needs to be
installed on the board besides Ray, numpy and the runtime: :func:`device_code` copies the part of
hwnas that runs there (the device backends, their timing loop and meters, the artifact types —
no torch, pandas or onnx) into a folder that Ray ships to the board as ``runtime_env``
``py_modules``, cached by content.

The address comes from the caller (``--cluster``), else :func:`use` (a job's config), else
``RAY_ADDRESS``. Ray is imported only here and in :mod:`hwnas.devices.remote`, and only when a
remote device is asked for: without a cluster nothing about Ray is ever imported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, DeviceError

DEVICE_PREFIX = "hwnas-device:"
KIND_PREFIX = "hwnas-kind:"
RUNTIME_PREFIX = "hwnas-runtime:"
NAMESPACE = "hwnas"
CONNECT_WAIT_S = 10
"""Seconds to keep trying to reach the cluster's control service before giving up (Ray's own default
is two minutes; a wrong address or token should fail fast with the fix)."""

DEVICE_CODE = ("__init__.py", "errors.py", "fileio.py", "registry.py", "types", "devices")
"""What of hwnas runs on a board (relative to the package): numpy-only modules plus the backends,
which import their runtime lazily."""

_address: str | None = None


class ClusterError(DeviceError):
    """The cluster cannot be reached, refused this machine, or has no such board."""


def use(address: str | None) -> None:
    """Set the cluster address for remote devices asked for in this process (a job's ``--cluster``)."""
    global _address
    if address:
        _address = str(address)


def address(explicit: str | None = None) -> str | None:
    return explicit or _address or os.environ.get("RAY_ADDRESS") or None


def device_code() -> Path:
    """A folder ``.../hwnas`` holding the board-side code (:data:`DEVICE_CODE`), named by its content
    hash so Ray uploads it once per version."""
    src = Path(__file__).resolve().parent.parent
    files = sorted(p for entry in DEVICE_CODE for p in ([src / entry] if (src / entry).is_file()
                                                          else (src / entry).rglob("*.py")))
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    root = Path(os.environ.get("HWNAS_CACHE", Path(tempfile.gettempdir()) / "hwnas-cache")) / "device-code"
    dst = root / h.hexdigest()[:16] / "hwnas"
    if not (dst / "__init__.py").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="code-", dir=root))
        for p in files:
            (tmp / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, tmp / p.relative_to(src))
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, dst)
        except OSError:  # another process placed the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def runtime_env() -> dict[str, Any]:
    """The job-level ``runtime_env`` that ships the board-side code (Ray uploads local folders only for a
    whole job, at ``ray.init``)."""
    return {"py_modules": [str(device_code())]}


def _ships_device_code(ray) -> bool:
    try:
        env = ray.get_runtime_context().runtime_env or {}
    except Exception:  # an older or unusual Ray context
        return False
    return any(str(m).endswith(".zip") or "hwnas" in str(m) for m in env.get("py_modules", []) or [])


def connect(explicit: str | None = None):
    """The ``ray`` module, connected to the cluster (an existing connection is reused)."""
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(CONNECT_WAIT_S))
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's per-second retry warnings would bury the error
    try:
        import ray
    except ImportError:
        raise ConfigError("Remote devices run through Ray: pip install 'hwnas[ray]'.") from None
    if ray.is_initialized():
        if not _ships_device_code(ray):
            raise ConfigError("Ray is already initialised in this process without hwnas's device code: call "
                              "ray.init(..., runtime_env=hwnas.devices.cluster.runtime_env()), or let hwnas connect.")
        return ray
    addr = address(explicit)
    if not addr:
        raise ConfigError("A remote device (BACKEND@BOARD) needs the Ray cluster its boards joined: pass --cluster "
                          "HEAD:PORT or set RAY_ADDRESS.")
    kw: dict[str, Any] = {}
    host = addr.rsplit(":", 1)[0]
    if host.startswith("127.") and host != "127.0.0.1":  # a loopback cluster (tests): this driver lives there too
        kw["_node_ip_address"] = host
    try:
        ray.init(address=addr, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR",
                 runtime_env=runtime_env(), **kw)
    except ConnectionError as exc:
        cause = str(exc.__cause__ or "")
        if "AuthenticationError" in cause or "InvalidAuthToken" in cause or "Unauthenticated" in cause:
            raise ClusterError(
                f"The Ray cluster at {addr} refused this machine's token: set RAY_AUTH_MODE=token and the "
                "cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token "
                "('ray get-auth-token' on the head prints it).") from None
        raise ClusterError(f"No Ray cluster answers at {addr} (waited {CONNECT_WAIT_S} s): start one with "
                           "'ray start --head' and join boards with 'hwnas device-join', or fix --cluster / "
                           "RAY_ADDRESS.") from None
    return ray


def boards(ray=None) -> list[dict[str, Any]]:
    """Every board the cluster's live nodes advertise: name, kind, runtimes, node address and CPUs."""
    ray = ray or connect()
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        kinds = sorted(k[len(KIND_PREFIX):] for k in res if k.startswith(KIND_PREFIX))
        runtimes = sorted(k[len(RUNTIME_PREFIX):] for k in res if k.startswith(RUNTIME_PREFIX))
        for k in sorted(res):
            if k.startswith(DEVICE_PREFIX):
                out.append({"board": k[len(DEVICE_PREFIX):], "kind": kinds[0] if kinds else "", "runtimes": runtimes,
                            "node": n.get("NodeManagerAddress", ""), "node_id": n.get("NodeID", ""),
                            "cpus": res.get("CPU", 0.0)})
    return out


def describe(found: list[dict[str, Any]]) -> str:
    """One line: what the cluster offers."""
    if not found:
        return "no node advertises an hwnas-device: resource (join boards with 'hwnas device-join')"
    parts = [b["board"] + (f" (kind {b['kind']})" if b["kind"] else "") for b in found]
    return "boards " + ", ".join(parts)


def resolve(target: str, ray=None) -> list[str]:
    """Board names for ``target``: a board, a kind (every board of it), or a comma list of boards."""
    found = boards(ray)
    names = {b["board"] for b in found}
    kinds: dict[str, list[str]] = {}
    for b in found:
        if b["kind"]:
            kinds.setdefault(b["kind"], []).append(b["board"])
    out = []
    for t in [t.strip() for t in target.split(",") if t.strip()]:
        if t in names:
            out.append(t)
        elif t in kinds:
            out += sorted(kinds[t])
        else:
            from hwnas.errors import did_you_mean

            raise ClusterError(f"No board or kind '{t}' in the Ray cluster.{did_you_mean(t, names | set(kinds))} "
                               f"It has: {describe(found)}.")
    return list(dict.fromkeys(out))


def probe(board: str, timeout_s: float = 60.0, ray=None) -> dict[str, Any]:
    """Ask ``board`` itself what it can run (:func:`~hwnas.devices.board.board_report`); ``{"busy": ...}``
    when a session holds it or it does not answer within ``timeout_s``."""
    import json

    from hwnas.devices.board import board_report

    ray = ray or connect()
    task = ray.remote(board_report).options(num_cpus=0, resources={DEVICE_PREFIX + board: 0.001})
    ref = task.remote()
    try:
        data = json.loads(ray.get(ref, timeout=timeout_s))
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        return {"busy": f"no answer within {timeout_s:.0f} s (a session holds the board, or it is starting)"}
    except ray.exceptions.RayError as exc:
        return {"busy": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return data.get("ok") or {"busy": data.get("error", {}).get("message", "error")}


def join_command(board: str, address: str | None = None, kind: str | None = None, num_cpus: int = 0,
                 node_ip: str | None = None, block: bool = True) -> list[str]:
    """The ``ray start`` command that joins this machine as ``board``: its ``hwnas-device:`` unit, its kind
    and an ``hwnas-runtime:`` tag per backend usable here."""
    import json
    import shutil
    import sys

    from hwnas.devices import list_devices

    addr = address or os.environ.get("RAY_ADDRESS")
    if not addr:
        raise ConfigError("Give the cluster's head: --address HEAD:PORT (or set RAY_ADDRESS).")
    if not board or any(c in board for c in ",@: "):
        raise ConfigError(f"A board name is one word without ',', '@', ':' or spaces; got '{board}'.")
    res = {DEVICE_PREFIX + board: 1}
    if kind:
        res[KIND_PREFIX + kind] = 1
    for d in list_devices():
        if d["available"]:
            res[RUNTIME_PREFIX + d["name"]] = 1
    ray_cli = Path(sys.executable).with_name("ray")
    cmd = [str(ray_cli) if ray_cli.exists() else (shutil.which("ray") or "ray"), "start", "--address", addr,
           "--num-cpus", str(int(num_cpus)), "--resources", json.dumps(res, sort_keys=True)]
    if node_ip:
        cmd += ["--node-ip-address", node_ip]
    return cmd + (["--block"] if block else [])


def cluster_boards(explicit: str | None = None, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every board of the cluster with what it reports it can run (:func:`probe`)."""
    ray = connect(explicit)
    out = []
    for b in boards(ray):
        rep = probe(b["board"], timeout_s, ray)
        usable = [d["name"] + " " + d["detail"] for d in rep.get("devices", []) if d["available"]]
        out.append({**b, "usable": usable, "cpu": rep.get("host", {}).get("cpu", ""),
                    **({"busy": rep["busy"]} if "busy" in rep else {}), "host": rep.get("host", {})})
    return out
