"""Apache TVM (0.27, Relax) on the host CPU through LLVM.

``load`` imports an ONNX file with the Relax ONNX frontend, compiles it for the host target
(``llvm`` with this CPU's ``mcpu``, so AVX-512/VNNI are used where present) and runs it in the
Relax virtual machine; a compiled shared library (``.so`` written by :meth:`compile_artifact`)
loads directly. Compilation is untuned (seconds) unless the device options ask for
meta-schedule tuning (``tune_minutes`` and / or ``tune_trials`` per task; ``tuning_db``: the
database root, default hwnas's user cache): then the tasks the tuning database lacks are tuned in
process (:mod:`hwnas.devices.tvm_tune`) and the build applies the database's best schedules, so a
profile or a bundle measured with ``--option tune_minutes=5`` times tuned builds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Artifact, Device, LoadedModel, onnx_input_shape, random_input
from hwnas.errors import ConfigError, DeviceError
from hwnas.types import Progress


def host_target(threads: int):
    import tvm

    cpu = tvm.get_global_func("target.llvm_get_system_cpu", allow_missing=True)
    mcpu = cpu() if cpu is not None else "generic"
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": threads})


class TVMModel(LoadedModel):
    def __init__(self, executable, input_shape: tuple[int, ...]) -> None:
        import tvm
        from tvm import relax

        self.input_shape = input_shape
        self.dev = tvm.cpu()
        self.vm = relax.VirtualMachine(executable, self.dev)
        self._x = tvm.runtime.tensor(random_input(input_shape), self.dev)
        self.vm.set_input("main", self._x)

    def run(self) -> None:
        self.vm.invoke_stateful("main")

    def infer(self, x: np.ndarray) -> np.ndarray:
        import tvm

        out = self.vm["main"](tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), self.dev))
        out = out[0] if not hasattr(out, "numpy") else out
        return out.numpy()

    def close(self) -> None:
        self.vm = None


class TVMLLVM(Device):
    name = "tvm-llvm"
    runtime = "tvm"
    extra = "tvm"
    description = "Apache TVM (Relax), compiled for the host CPU with LLVM (meta-schedule tuning optional)"
    tunable = True

    def __init__(self, threads: int = 1, precision: str = "fp32", batch_size: int = 1, tune_minutes: float = 0.0,
                 tune_trials: int = 0, tuning_db: str = "", **options: Any) -> None:
        super().__init__(threads, precision, batch_size, tune_minutes=float(tune_minutes),
                         tune_trials=int(tune_trials), tuning_db=str(tuning_db or ""), **options)
        if float(tune_minutes) < 0 or int(tune_trials) < 0:
            raise ConfigError(f"tune_minutes and tune_trials must be >= 0 (got {tune_minutes}, {tune_trials}).")
        self.tune_progress: Progress | None = None  # progress(what, done, total) of tuning, set by the caller
        self.last_tuning: dict[str, Any] | None = None  # what the last tuned compile did (TuneReport.to_dict())
        os.environ["TVM_NUM_THREADS"] = str(self.threads)
        import tvm

        cfg = tvm.get_global_func("runtime.config_threadpool", allow_missing=True)
        if cfg is not None:
            cfg(0, self.threads)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import tvm
        except ImportError:
            return False, "apache-tvm is not installed"
        except Exception as exc:  # a broken native library
            return False, f"apache-tvm fails to import ({type(exc).__name__}: {exc})"
        return True, tvm.__version__

    def runtime_version(self) -> str:
        import tvm

        return tvm.__version__

    def hardware(self) -> str:
        from hwnas.devices.base import cpu_model

        return f"{cpu_model()} ({host_target(self.threads).attrs.get('mcpu', 'generic')})"

    @property
    def tuned(self) -> bool:
        return float(self.options["tune_minutes"]) > 0 or int(self.options["tune_trials"]) > 0

    def compile(self, onnx_path: Path):
        import onnx
        import tvm
        from tvm.relax.frontend.onnx import from_onnx

        target = host_target(self.threads)
        try:
            mod = from_onnx(onnx.load(str(onnx_path)), keep_params_in_input=False)
            if not self.tuned:
                return tvm.compile(mod, target=target)
        except Exception as exc:  # TVM raises its own error types for unsupported graphs
            raise DeviceError(f"TVM cannot compile '{onnx_path.name}': {str(exc).splitlines()[0][:300]}") from None
        return self._compile_tuned(mod, target, onnx_path)

    def _compile_tuned(self, mod, target, onnx_path: Path):
        from hwnas.devices import tvm_tune

        mod = tvm_tune.prepare(mod)
        db, report = tvm_tune.tune(mod, target, minutes=float(self.options["tune_minutes"]),
                                   trials=int(self.options["tune_trials"]),
                                   database_root=self.options["tuning_db"] or None, progress=self.tune_progress)
        self.last_tuning = report.to_dict()
        try:
            return tvm_tune.compile_tuned(mod, target, db)
        except Exception as exc:  # TVM's own error types
            raise DeviceError(f"TVM cannot compile '{onnx_path.name}' with its tuning records: "
                              f"{str(exc).splitlines()[0][:300]}") from None

    def load(self, path: str | os.PathLike) -> TVMModel:
        import tvm

        path = Path(path)
        if not path.is_file():
            raise DeviceError(f"Model '{path}' does not exist.")
        if path.suffix == ".so":
            shape_file = path.with_suffix(".shape")
            if not shape_file.is_file():
                raise DeviceError(f"'{path}' has no '{shape_file.name}' beside it (the input shape).")
            shape = tuple(int(x) for x in shape_file.read_text().split(","))
            return TVMModel(tvm.runtime.load_module(str(path)), shape)
        return TVMModel(self.compile(path), onnx_input_shape(path))

    def compile_artifact(self, model: Path, bundle_dir: Path) -> Artifact:
        """A shared library for this host (``tvm/model.so`` + ``model.shape``), for a bundle."""
        out = bundle_dir / "tvm" / "model.so"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.compile(model).export_library(str(out))
        out.with_suffix(".shape").write_text(",".join(str(d) for d in onnx_input_shape(model)))
        how = (f"tuned: {self.last_tuning['tasks']} tasks, {self.last_tuning['reused']} reused from the database, "
               f"{self.last_tuning['trials']} trials" if self.tuned and self.last_tuning else "untuned")
        return Artifact(self.runtime, "tvm/model.so", f"TVM Relax library for {host_target(self.threads)} ({how})")
