"""The board side of a remote device: what runs on a machine hwnas is not installed on.

A :class:`BoardRunner` is hosted by a Ray actor on the board (see :mod:`hwnas.devices.remote`).
It constructs one backend (``onnxruntime-cpu``, ``openvino-cpu`` ...) with fixed settings and
runs the ordinary device verbs there — the same timing loop, reference interleaving, peak-memory
and energy meters as on this machine. It needs only numpy, the runtime and Ray: this module and
the device code it imports never import torch, pandas or the ``onnx`` package, and hwnas's device
code reaches the board through Ray's ``runtime_env`` (``py_modules``), not an install.

The wire carries JSON text and raw model bytes only — no pickled hwnas object in either
direction. Models arrive as bytes with their sha256 and are cached on the board's disk by it
(``$HWNAS_CACHE/board/models/<model id>/``); the board checks every file's sha256, accepts only
model file suffixes (ONNX, OpenVINO IR, TVM libraries, TensorRT engines) with plain file names,
and loads nothing else. Errors come back as ``{"error": {"type", "message"}}`` and are raised
on the host as the same :mod:`hwnas.errors` class.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MODEL_SUFFIXES = (".onnx", ".data", ".xml", ".bin", ".so", ".shape", ".engine", ".plan")
"""File suffixes a board accepts: ONNX (and its external data), OpenVINO IR, a TVM library with its
input shape, TensorRT engines. A compiled library is code: see the README's security notes."""


NOT_STAGED = "Model not on this board:"
"""How a board says a model must be sent (again): the host re-sends it and retries."""


def model_id(files: list[dict[str, str]]) -> str:
    """Content id of a model: sha256 over its files' names and sha256s (the first file is loaded)."""
    text = json.dumps([[f["name"], f["sha256"]] for f in files], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str) -> str:
    """A plain model file name with an accepted suffix, or DeviceError."""
    from hwnas.errors import DeviceError

    if not name or name != Path(name).name or name.startswith(".") or not name.endswith(MODEL_SUFFIXES):
        raise DeviceError(f"The board accepts only model files named plainly with one of {', '.join(MODEL_SUFFIXES)}"
                          f"; refused '{name}'.")
    return name


CACHE_MB = 2048
"""Default budget of a board's model cache (MiB; ``HWNAS_BOARD_CACHE_MB``): the models received least
recently are removed first, never the one just received (a profile sends every subnet once)."""


def board_cache() -> Path:
    """Where a board keeps received models (``$HWNAS_CACHE/board``, else the temp dir)."""
    root = os.environ.get("HWNAS_CACHE") or str(Path(tempfile.gettempdir()) / "hwnas-cache")
    return Path(root) / "board"


def npy_bytes(x) -> bytes:
    """An array as ``.npy`` bytes (numpy's own format, never a pickle)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x), allow_pickle=False)
    return buf.getvalue()


def npy_array(data: bytes):
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def measurement_dict(m) -> dict[str, Any]:
    """A :class:`~hwnas.types.Measurement` as JSON-able data (``Measurement.to_dict``)."""
    return m.to_dict()


def _reply(fn, *args, **kwargs) -> str:
    """Run ``fn`` and answer JSON: ``{"ok": result}`` or ``{"error": {"type", "message"}}``."""
    from hwnas.errors import HwnasError

    try:
        return json.dumps({"ok": fn(*args, **kwargs)}, default=str)
    except HwnasError as exc:
        return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})
    except ImportError as exc:
        return json.dumps({"error": {"type": "RuntimeMissingError", "message": f"the board lacks a library: {exc}"}})
    except Exception as exc:  # a runtime's own error types: reported, never swallowed
        return json.dumps({"error": {"type": "DeviceError", "message": f"{type(exc).__name__}: {exc}"}})


class BoardRunner:
    """One backend with fixed settings on a board; every method answers JSON (see the module doc)."""

    def __init__(self, board: str, backend: str, settings_json: str) -> None:
        self.board, self.backend = board, backend
        self.settings = json.loads(settings_json)
        self.cache = board_cache() / "models"
        self.device = None
        self._open: dict[str, Any] = {}

    # ------------------------------------------------------------------ identity
    def hello(self) -> str:
        """Construct the backend here and describe it: spec, options, energy meter, host facts."""
        return _reply(self._hello)

    def _hello(self) -> dict[str, Any]:
        import platform

        from hwnas.devices import get_device

        if self.device is None:
            self.device = get_device(self.backend, **self.settings)
        d = self.device
        domain, why = d.energy_status()
        facts = d.host_facts()
        try:
            from importlib import metadata

            facts.setdefault("libraries", {})["ray"] = metadata.version("ray")
        except Exception:  # metadata of an unusual install
            pass
        facts.update({"board": self.board, "hostname": platform.node(), "pid": os.getpid()})
        return {"spec": d.spec().to_dict(), "options": dict(d.options), "runtime": d.runtime,
                "runtime_version": d.runtime_version(), "provider": d.provider(), "hardware": d.hardware(),
                "energy": [domain, why], "host": facts}

    # ------------------------------------------------------------------ models by content
    def has(self, mid: str) -> bool:
        return (self.cache / mid / ".complete").is_file()

    def stage(self, files_json: str, *datas: bytes) -> str:
        """Store one model (``files``: [{name, sha256}], bytes in the same order) after checking each sha256."""
        return _reply(self._stage, json.loads(files_json), datas)

    def _stage(self, files: list[dict[str, str]], datas) -> str:
        from hwnas.errors import DeviceError
        from hwnas.fileio import atomic_write_bytes

        if len(files) != len(datas) or not files:
            raise DeviceError(f"A model arrived with {len(datas)} file(s) for {len(files)} name(s).")
        mid = model_id(files)
        d = self.cache / mid
        d.mkdir(parents=True, exist_ok=True)
        for f, data in zip(files, datas):
            check_name(f["name"])
            got = hashlib.sha256(data).hexdigest()
            if got != f["sha256"]:
                raise DeviceError(f"'{f['name']}' arrived with sha256 {got[:12]}…, not the {f['sha256'][:12]}… it was "
                                  "sent as: refused.")
            tmp = d / f".{f['name']}.tmp"
            tmp.write_bytes(data)  # a cache: no fsync (a model cut short by a crash lacks its marker, and is sent again)
            os.replace(tmp, d / f["name"])
        atomic_write_bytes(d / ".complete", json.dumps(files).encode())  # the marker last
        self._prune(keep=mid)
        return mid

    def _prune(self, keep: str) -> None:
        """Keep the cache within its budget, dropping the least recently used models first."""
        budget = float(os.environ.get("HWNAS_BOARD_CACHE_MB", CACHE_MB)) * 2**20
        entries = []
        for d in self.cache.iterdir():
            done = d / ".complete"
            if d.is_dir() and done.is_file():
                entries.append((done.stat().st_mtime, d, sum(f.stat().st_size for f in d.iterdir())))
        total = sum(e[2] for e in entries)
        for _, d, size in sorted(entries, key=lambda e: e[0]):
            if total <= budget:
                break
            if d.name != keep:
                shutil.rmtree(d, ignore_errors=True)
                total -= size

    def _path(self, mid: str) -> Path:
        from hwnas.errors import DeviceError

        done = self.cache / mid / ".complete"
        if not done.is_file():
            raise DeviceError(f"{NOT_STAGED} {mid[:12]}… (board '{self.board}'): stage it first.")
        os.utime(done)  # recently used: pruned last
        files = json.loads(done.read_text())
        return self.cache / mid / check_name(files[0]["name"])

    def _ref_folder(self, refs: dict[str, str]) -> Path:
        return self.cache.parent / "references" / hashlib.sha256(json.dumps(refs, sort_keys=True).encode()).hexdigest()[:16]

    def add_reference(self, mid: str, name: str, refs_json: str) -> str:
        """Keep staged model ``mid`` as reference ``name`` of the set ``refs`` (name → model id), outside the
        pruned model cache."""
        def run():
            from hwnas.devices.reference import REFERENCES

            if name not in REFERENCES:
                from hwnas.errors import DeviceError

                raise DeviceError(f"Unknown reference '{name}'.")
            folder = self._ref_folder(json.loads(refs_json))
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(mid), folder / f"{name}.onnx")
            return True

        return _reply(run)

    def use_references(self, refs_json: str) -> str:
        """Measure against the host's reference models (name → model id, each added with :meth:`add_reference`):
        the same files, byte for byte, on every board, without building them here."""
        def run():
            from hwnas.devices.measure import ReferenceSet

            self._hello()
            refs = json.loads(refs_json)
            self.device._references = ReferenceSet(self.device, list(refs), self._ref_folder(refs))
            return True

        return _reply(run)

    # ------------------------------------------------------------------ the verbs
    def measure(self, mid: str, kwargs_json: str) -> str:
        return _reply(self._measure, mid, json.loads(kwargs_json))

    def _measure(self, mid: str, kw: dict[str, Any]) -> dict[str, Any]:
        from hwnas.devices.timing import TimingConfig

        import time

        self._hello()
        t0 = time.perf_counter()
        timing = TimingConfig.from_dict(kw["timing"]) if kw.get("timing") else None
        m = self.device.measure(self._path(mid), timing, reference=kw.get("reference", "auto"),
                                energy=bool(kw.get("energy")), subject=kw.get("subject"))
        return {**measurement_dict(m), "board_s": time.perf_counter() - t0}  # what the board itself spent

    def runtime_graph(self, mid: str, kernel_times: bool) -> str:
        def run():
            self._hello()
            return self.device.runtime_graph(self._path(mid), bool(kernel_times))

        return _reply(run)

    def open_model(self, mid: str) -> str:
        """Load a model for :meth:`infer` (accuracy checks) and keep it loaded until :meth:`close_model`."""
        def run():
            self._hello()
            m = self.device.load(self._path(mid))
            self._open[mid] = m
            return list(m.input_shape)

        return _reply(run)

    def infer(self, mid: str, x: bytes) -> bytes:
        """Outputs (``.npy`` bytes) of an open model for one input batch (``.npy`` bytes)."""
        from hwnas.devices.base import batch_outputs

        return npy_bytes(batch_outputs(self._open[mid], npy_array(x)))

    def close_model(self, mid: str) -> str:
        m = self._open.pop(mid, None)
        if m is not None:
            m.close()
        return _reply(lambda: True)

    def compile_artifact(self, mid: str, relpath: str) -> tuple[str, list[bytes]]:
        """Compile for this board: the model is placed at ``relpath`` in a scratch bundle folder; the
        answer lists the files the backend wrote there besides it (paths relative to the folder) and
        their bytes."""
        out: list[bytes] = []

        def run():
            self._hello()
            work = Path(tempfile.mkdtemp(prefix="hwnas-board-bundle-"))
            try:
                rel = Path(relpath)
                if rel.is_absolute() or ".." in rel.parts:
                    from hwnas.errors import DeviceError

                    raise DeviceError(f"Refused artifact path '{relpath}'.")
                src = self._path(mid)
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                placed = set()
                for f in src.parent.iterdir():  # the model with its side files (an IR's .bin)
                    if f.name != ".complete":
                        dst = (work / rel).parent / (rel.name if f == src else f.name)
                        shutil.copyfile(f, dst)
                        placed.add(dst)
                art = self.device.compile_artifact(work / rel, work)
                # what the backend wrote (the host already holds the model it sent)
                files = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file() and p not in placed)
                out.extend((work / p).read_bytes() for p in files)
                return {"runtime": art.runtime, "path": art.path, "note": art.note, "files": files}
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return _reply(run), out


def board_report() -> str:
    """What this board can run: every registered backend, usable here or why not, and the host's facts."""
    def run():
        from hwnas.devices import list_devices
        from hwnas.devices.base import host_facts

        return {"devices": list_devices(), "host": host_facts()}

    return _reply(run)
