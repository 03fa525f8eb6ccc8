"""Remote devices: a backend on a board of a Ray cluster is a :class:`~hwnas.devices.base.Device` like any other.

``get_device("onnxruntime-cpu@orin-1")`` returns a :class:`RemoteDevice`; after the ``@`` comes a
board, a kind (every board of it: a fleet) or a comma list of boards (see
:func:`hwnas.devices.cluster.resolve`). Its verbs — ``measure``, ``outputs``, ``runtime_graph``,
``energy_status``, ``host_facts``, ``spec``, ``compile_artifact`` — run on the board through a Ray
actor (:class:`~hwnas.devices.board.BoardRunner`) scheduled with the board's custom resource
``hwnas-device:<board>``, so profiling, the search's closed loop, export and verify work unchanged.
Quantizers run here, on this machine's copy of the same runtime (calibration is arithmetic, not
timing), and the board measures what they wrote.

Models travel through Ray's object store as bytes and are cached on the board by content
(:func:`~hwnas.devices.board.model_id`): each model is sent to a board once. Reference models are
built here and sent too, so every board times the very same files.

A board that dies (its node, raylet or actor) raises :class:`BoardLostError`. A
:class:`RemoteDevice` over several boards runs each verb on its first live board and moves to the
next when one is lost (the lost call is run again there); profiling fans out over the boards
instead (:mod:`hwnas.profiling.fleet`), one session per board.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Artifact, Device, LoadedModel
from hwnas.devices.board import npy_array, npy_bytes
from hwnas.devices.cluster import DEVICE_PREFIX, ClusterError, connect, resolve
from hwnas import errors
from hwnas.errors import ConfigError, DeviceError
from hwnas.types import DeviceSpec, Measurement

START_TIMEOUT_S = 120.0
"""How long a board may take to start hwnas's device code (first use ships it; a busy board — its
one ``hwnas-device:`` unit held by another session — waits that long)."""


class BoardLostError(DeviceError):
    """A board died or became unreachable while working; what it had finished is kept."""


def _raise(reply: str) -> Any:
    """The result of a board's JSON reply, or its error raised as the same hwnas error class."""
    data = json.loads(reply)
    if "error" in data:
        e = data["error"]
        cls = getattr(errors, e.get("type", ""), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.HwnasError)):
            cls = DeviceError
        raise cls(e.get("message", "board error"))
    return data["ok"]


class BoardDevice(Device):
    """One backend on one board (see the module doc)."""

    extra = "ray"
    description = "a backend on a board of a Ray cluster"

    def __init__(self, backend: str, board: str, threads: int = 1, precision: str = "fp32", batch_size: int = 1,
                 cluster: str | None = None, start_timeout_s: float = START_TIMEOUT_S, **options: Any) -> None:
        from hwnas.devices import device_class

        cls = device_class(backend)  # an unknown backend fails here, before the cluster is reached
        self.backend, self.board, self.name = backend, board, f"{backend}@{board}"
        self.runtime = cls.runtime
        super().__init__(threads, precision, batch_size, **options)
        ray = self._ray = connect(cluster)
        from hwnas.devices.board import BoardRunner

        settings = {"threads": self.threads, "precision": precision, "batch_size": self.batch_size, **options}
        actor = ray.remote(BoardRunner).options(  # the device code comes with the job (cluster.runtime_env)
            resources={DEVICE_PREFIX + board: 1}, num_cpus=0, max_restarts=0, max_concurrency=1)
        self._actor = actor.remote(board, backend, json.dumps(settings))
        self._staged: set[str] = set()
        self._refs_sent = False
        try:
            self._facts = self._call("hello", timeout=start_timeout_s)
        except Exception:  # release the board's unit whatever went wrong (a runtime missing there ...)
            self.close()
            raise
        self.options = dict(self._facts["options"])

    @classmethod
    def available(cls) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return False, "ray is not installed"
        return True, ""

    # ------------------------------------------------------------------ talking to the board
    def _call(self, method: str, *args: Any, timeout: float | None = None, raw: bool = False) -> Any:
        ray = self._ray
        try:
            out = ray.get(getattr(self._actor, method).remote(*args), timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"Board '{self.board}' did not answer within {timeout:.0f} s: it is busy (another "
                               "session holds it), or cannot start hwnas's device code (see its Ray logs).") from None
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError, ray.exceptions.RaySystemError) as exc:
            why = str(exc).splitlines()[0][:200]
            raise BoardLostError(f"Board '{self.board}' was lost ({type(exc).__name__}: {why}); what it finished is "
                                 "kept — re-run to resume once it is back, or use other boards.") from None
        except ray.exceptions.RayTaskError as exc:  # an error outside the board's JSON replies
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise DeviceError(f"Board '{self.board}' failed in {method}: {type(cause).__name__}: "
                              f"{str(cause).splitlines()[-1][:300]}") from None
        return out if raw else _raise(out)

    def _on_model(self, model, method: str, *args: Any, raw: bool = False) -> Any:
        """``method(model id, *args)`` on the board, sending the model first where the board lacks it (it
        may have dropped it from its cache since)."""
        from hwnas.devices.board import NOT_STAGED

        mid = self._stage(model)
        try:
            out = self._call(method, mid, *args, raw=raw)
            if raw and isinstance(out, tuple) and NOT_STAGED in out[0]:
                raise DeviceError(out[0])
            return out
        except DeviceError as exc:
            if NOT_STAGED not in str(exc):
                raise
            self._staged.discard(mid)
            return self._call(method, self._stage(model), *args, raw=raw)

    def _stage(self, model: str | os.PathLike) -> str:
        """The board-side id of ``model``, sending its bytes the first time this board sees it."""
        from hwnas.devices.board import model_id
        from hwnas.fileio import file_sha256

        from hwnas.devices.base import model_files

        paths = model_files(model)
        files = [{"name": p.name, "sha256": file_sha256(p)} for p in paths]
        mid = model_id(files)
        if mid not in self._staged:
            if not self._call("has", mid, raw=True):
                refs = [self._ray.put(p.read_bytes()) for p in paths]
                self._call("stage", json.dumps(files), *refs)
            self._staged.add(mid)
        return mid

    def _send_references(self) -> None:
        """Send this machine's reference models (built here, the same bytes everywhere) once."""
        if self._refs_sent:
            return
        from hwnas.devices.reference import REFERENCES, reference_onnx

        from hwnas.devices.board import model_id
        from hwnas.fileio import file_sha256

        paths = {name: reference_onnx(name) for name in REFERENCES}
        ids = {n: model_id([{"name": p.name, "sha256": file_sha256(p)}]) for n, p in paths.items()}
        for name, path in paths.items():
            self._on_model(path, "add_reference", name, json.dumps(ids))
        self._call("use_references", json.dumps(ids))
        self._refs_sent = True

    # ------------------------------------------------------------------ identity
    def spec(self) -> DeviceSpec:
        return DeviceSpec.from_dict(self._facts["spec"])

    def runtime_version(self) -> str:
        return self._facts["runtime_version"]

    def provider(self) -> str:
        return self._facts["provider"]

    def hardware(self) -> str:
        return self._facts["hardware"]

    def host_facts(self) -> dict[str, Any]:
        """The board's CPU, ISA, memory, OS and library versions (measured there), with its board name."""
        return dict(self._facts["host"])

    def energy_status(self) -> tuple[str | None, str]:
        domain, why = self._facts["energy"]
        return domain, why

    def energy_meter(self):
        return None  # the meter lives on the board; energy_status says what it measures

    def load(self, onnx_path: str | os.PathLike) -> LoadedModel:
        raise DeviceError(f"'{self.name}' runs models on its board: use its verbs (measure, outputs, runtime_graph).")

    # ------------------------------------------------------------------ the verbs
    def measure(self, model: str | os.PathLike, timing=None, reference: str = "auto", energy: bool = False,
                subject: str | None = None) -> Measurement:
        from dataclasses import asdict

        self._send_references()
        kw = {"timing": asdict(timing) if timing is not None else None, "reference": reference, "energy": energy,
              "subject": subject or Path(model).stem}
        d = self._on_model(model, "measure", json.dumps(kw))
        from hwnas.types import MEASUREMENT_COLUMNS

        extra = {k: v for k, v in d.items() if k not in MEASUREMENT_COLUMNS
                 and k not in ("subject", "device_id", "normalized_ms")}
        m = Measurement.from_columns(d, d["subject"], d["device_id"])
        from dataclasses import replace

        return replace(m, extra={**extra, "board": self.board})

    def outputs(self, model: str | os.PathLike, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        self._on_model(model, "open_model")
        mid = self._stage(model)
        try:
            for x in batches:
                yield npy_array(self._call("infer", mid, npy_bytes(np.asarray(x, dtype=np.float32)), raw=True))
        finally:
            try:
                self._call("close_model", mid)
            except BoardLostError:
                pass

    def runtime_graph(self, model: str | os.PathLike, kernel_times: bool = False) -> dict[str, Any] | None:
        return self._on_model(model, "runtime_graph", bool(kernel_times))

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        """Compiled on the board, for the board (its CPU, its runtime build); the files come back into the bundle."""
        model, bundle_dir = Path(model), Path(bundle_dir)
        rel = model.relative_to(bundle_dir) if model.is_relative_to(bundle_dir) else Path(model.name)
        reply, datas = self._on_model(model, "compile_artifact", str(rel), raw=True)
        info = _raise(reply)
        for relpath, data in zip(info["files"], datas):
            p = bundle_dir / relpath
            if ".." in Path(relpath).parts or Path(relpath).is_absolute():
                raise DeviceError(f"Board '{self.board}' returned a file outside the bundle: '{relpath}'.")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return Artifact(info["runtime"], info["path"], f"{info['note']} (compiled on board {self.board})")

    def quantizer(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray):
        """The backend's quantizer, run on this machine (it needs the runtime here too); the board measures
        what it writes."""
        from hwnas.devices import get_device

        local = get_device(self.backend, threads=self.threads, precision=self.precision, batch_size=self.batch_size)
        return local.quantizer(fp32_onnx, workdir, calibration)

    def close(self) -> None:
        """Release the board (its ``hwnas-device:`` unit) for other sessions."""
        actor, self._actor = getattr(self, "_actor", None), None
        if actor is not None:
            try:
                self._ray.kill(actor)
            except Exception:  # the board may already be gone
                pass


class RemoteDevice(Device):
    """A backend on one or more boards of one kind: verbs run on the first live board (see the module doc)."""

    extra = "ray"
    description = "a backend on boards of a Ray cluster"

    def __init__(self, backend: str, target: str, threads: int = 1, precision: str = "fp32", batch_size: int = 1,
                 cluster: str | None = None, **options: Any) -> None:
        from hwnas.devices import device_class

        cls = device_class(backend)
        self.backend, self.target, self.name, self.runtime = backend, target, f"{backend}@{target}", cls.runtime
        super().__init__(threads, precision, batch_size, **options)
        names = resolve(target, connect(cluster))
        self.boards: list[BoardDevice] = []
        try:
            for b in names:
                self.boards.append(BoardDevice(backend, b, threads, precision, batch_size, cluster, **options))
        except Exception:
            self.close()
            raise
        _check_same(self.boards)
        self.options = dict(self.boards[0].options)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return BoardDevice.available()

    def live(self) -> list[BoardDevice]:
        return [b for b in self.boards if b._actor is not None]

    def _first(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        for b in self.live():
            try:
                return getattr(b, verb)(*args, **kwargs)
            except BoardLostError:
                b._actor = None
        raise BoardLostError(f"Every board of '{self.name}' was lost: re-run once one is back.")

    def drop(self, board: BoardDevice) -> None:
        """Stop using a board (it was lost)."""
        board._actor = None

    def spec(self) -> DeviceSpec:
        return self.boards[0].spec()

    def runtime_version(self) -> str:
        return self.boards[0].runtime_version()

    def provider(self) -> str:
        return self.boards[0].provider()

    def hardware(self) -> str:
        return self.boards[0].hardware()

    def host_facts(self) -> dict[str, Any]:
        facts = dict(self.live()[0].host_facts() if self.live() else self.boards[0].host_facts())
        facts["boards"] = [b.board for b in self.boards]
        return facts

    def energy_status(self) -> tuple[str | None, str]:
        return self.boards[0].energy_status()

    def energy_meter(self):
        return None

    def load(self, onnx_path: str | os.PathLike) -> LoadedModel:
        return self.boards[0].load(onnx_path)

    def measure(self, model, timing=None, reference: str = "auto", energy: bool = False,
                subject: str | None = None) -> Measurement:
        return self._first("measure", model, timing, reference, energy, subject)

    def outputs(self, model, batches):
        return self._first("outputs", model, batches)  # a generator: failover happens before the first batch only

    def runtime_graph(self, model, kernel_times: bool = False):
        return self._first("runtime_graph", model, kernel_times)

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        return self._first("compile_artifact", model, bundle_dir)

    def quantizer(self, fp32_onnx: Path, workdir: Path, calibration: np.ndarray):
        return self.boards[0].quantizer(fp32_onnx, workdir, calibration)

    def close(self) -> None:
        for b in getattr(self, "boards", []):
            b.close()


def _check_same(boards: list[BoardDevice]) -> None:
    """Boards measured into one profile must run the same runtime build with the same settings."""
    ref = boards[0].spec()
    for b in boards[1:]:
        if b.spec().id() != ref.id():
            a, o = ref.to_dict(), b.spec().to_dict()
            diff = ", ".join(f"{k}: {a[k]} vs {o[k]}" for k in a if a[k] != o[k])
            raise ConfigError(f"Boards '{boards[0].board}' and '{b.board}' differ ({diff}): they cannot share a "
                              f"profile. Name one board (BACKEND@{boards[0].board}) or align them.")


def remote_device(name: str, **kwargs: Any) -> RemoteDevice:
    """``BACKEND@TARGET`` → a :class:`RemoteDevice` (see :func:`hwnas.devices.get_device`)."""
    backend, _, target = name.partition("@")
    if not backend or not target:
        raise ConfigError(f"A remote device is BACKEND@BOARD (or @KIND), e.g. onnxruntime-cpu@orin-1; got '{name}'.")
    return RemoteDevice(backend, target, **kwargs)
