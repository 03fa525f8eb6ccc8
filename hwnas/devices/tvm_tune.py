"""Meta-schedule tuning for the TVM backend, in process, with a tuning database that is reused.

TVM's stock local builder and runner start a worker process per batch whose ``import tvm`` takes
tens of seconds on a small machine, longer than their build timeout: every candidate then fails as
a "build error". :class:`InProcessBuilder` and :class:`InProcessRunner` build and time candidates
in this process instead (the same build and timing functions TVM's workers call).

Records go into meta-schedule's own JSON database (``database_workload.json`` +
``database_tuning_record.json``) in a per-user cache directory keyed by the compilation target,
so subnets that share tasks (the same fused operator at the same shapes) reuse what an earlier
compile measured: a task that already has a record there is not tuned again.

Budgets: ``minutes`` of wall time (tasks are stopped when it runs out) and / or ``trials`` per
task. Progress, with an ETA, goes through a :data:`~hwnas.types.Progress` callback
(``progress(what, done_trials, total_trials)``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, DeviceError
from hwnas.fileio import cache_dir
from hwnas.types import Progress

TRIALS_PER_ITER = 16
"""Candidates measured per task per round (small, so a time budget is kept closely)."""
MAX_TRIALS_PER_TASK = 1000
"""Per-task cap when only a time budget is given."""


@dataclass
class TuneReport:
    """What one tuned compile did: tasks found, reused from the database (not measured again), tuned
    now (given at least one trial; a time budget may leave some untuned: they keep TVM's default
    schedules and are tuned by the next compile that finds them missing); trials; seconds spent."""

    database: str
    tasks: int = 0
    reused: int = 0
    tuned: int = 0
    trials: int = 0
    seconds: float = 0.0
    task_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "tasks": self.tasks, "reused": self.reused, "tuned": self.tuned,
                "trials": self.trials, "seconds": round(self.seconds, 2)}


def database_dir(target, root: str | Path | None = None) -> Path:
    """The tuning database directory for ``target`` (under ``root``, else hwnas's user cache)."""
    key = hashlib.sha256(str(target).encode()).hexdigest()[:16]
    if root is None:
        return cache_dir("tvm", "tuning", key)
    d = Path(root) / key
    d.mkdir(parents=True, exist_ok=True)
    return d


def open_database(target, root: str | Path | None = None):
    """Meta-schedule's JSON database for ``target`` (created empty the first time)."""
    from tvm.s_tir import meta_schedule as ms

    return ms.database.JSONDatabase(work_dir=str(database_dir(target, root)), module_equality="structural")


def _builder_class():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds each candidate in this process (no worker start-up, no build timeout)."""

        def build(self, build_inputs):
            out = []
            for bi in build_inputs:
                try:
                    out.append(BuilderResult(default_export(default_build(bi.mod, bi.target, None)), None))
                except Exception as exc:  # a candidate schedule that does not build is a failed trial
                    out.append(BuilderResult(None, f"in-process build failed: {exc}"[:2000]))
            return out

    return InProcessBuilder


def _runner_class():
    import tvm
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, PyRunner
    from tvm.s_tir.meta_schedule.runner.local_runner import (LocalRunnerFuture, default_alloc_argument,
                                                             default_run_evaluator)

    @derived_object
    class InProcessRunner(PyRunner):
        """Times each built candidate in this process with TVM's own evaluator."""

        def __init__(self, evaluator_config=None) -> None:
            super().__init__()
            self.config = EvaluatorConfig._normalized(evaluator_config or EvaluatorConfig(
                number=3, repeat=1, min_repeat_ms=20, enable_cpu_cache_flush=False))

        def run(self, runner_inputs):
            futures = []
            for ri in runner_inputs:
                try:
                    mod = tvm.runtime.load_module(str(ri.artifact_path))
                    dev = tvm.runtime.device(str(ri.device_type), 0)
                    args = default_alloc_argument(dev, tuple(a.as_json() for a in ri.args_info), 1)
                    futures.append(LocalRunnerFuture(res=[float(c) for c in
                                                          default_run_evaluator(mod, dev, self.config, args)]))
                except Exception as exc:  # a candidate that crashes is a failed trial
                    futures.append(LocalRunnerFuture(error_message=f"in-process run failed: {exc}"[:2000]))
            return futures

    return InProcessRunner


def _progress_callback(n_tasks: int, per_task: int, deadline: float | None, progress: Progress | None, state):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class ReportProgress(PyMeasureCallback):
        """Counts measured trials and reports them with an ETA (from the time budget, else the trial rate)."""

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            if not len(measure_candidates):
                return
            state["trials"] += len(measure_candidates)
            total = n_tasks * per_task
            now = time.perf_counter()
            elapsed = now - state["t0"]
            if deadline is not None:
                eta = max(0.0, deadline - now)
                total = min(total, int(state["trials"] * (elapsed + eta) / max(elapsed, 1e-6)))
            else:
                eta = elapsed / state["trials"] * max(0, total - state["trials"])
            if progress is not None:
                progress(f"TVM tuning {n_tasks} task(s): {state['trials']} trials, ETA {eta:.0f} s",
                         float(state["trials"]), float(max(total, state["trials"])))

    return ReportProgress()


def _strategy(round_trials: int):
    """Evolutionary search sized to a round (TVM's default population of 512 costs ~20 s a round here)."""
    from tvm.s_tir import meta_schedule as ms

    return ms.search_strategy.EvolutionarySearch(population_size=max(32, 8 * round_trials),
                                                 init_min_unmeasured=max(8, round_trials), genetic_num_iters=2)


def _tune_rounds(todo, target, db, per_task: int, deadline: float | None, progress, state, seed: int) -> int:
    """Rounds of up to ``TRIALS_PER_ITER`` trials per task, task by task, until every task has
    ``per_task`` trials or the deadline passes (checked before each task's turn, so a time budget
    is overrun by at most one task's round). Returns how many tasks got at least one trial."""
    from tvm.s_tir import meta_schedule as ms

    work = tempfile.mkdtemp(prefix="hwnas-tvm-tune-")  # the work dir tune_tasks asks for; removed after
    counts = [0] * len(todo)
    exhausted = [False] * len(todo)
    rnd = 0
    while not all(e or c >= per_task for e, c in zip(exhausted, counts)):
        for i, task in enumerate(todo):
            if exhausted[i] or counts[i] >= per_task:
                continue
            if deadline is not None and time.perf_counter() >= deadline:
                shutil.rmtree(work, ignore_errors=True)
                return sum(c > 0 for c in counts)
            n = min(TRIALS_PER_ITER, per_task - counts[i])
            contexts, weights = _contexts([task], _strategy(n), seed + 1000 * rnd + i)
            callbacks = [*ms.MeasureCallback.create("default"),
                         _progress_callback(len(todo), per_task, deadline, progress, state)]
            before = state["trials"]
            try:
                ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work, max_trials_global=n,
                              max_trials_per_task=n, num_trials_per_iter=n, builder=_builder_class()(),
                              runner=_runner_class()(), database=db, measure_callbacks=callbacks,
                              cost_model=cost_model(), task_scheduler="round-robin")
            except Exception as exc:  # TVM's own error types
                raise DeviceError(f"TVM tuning of {task.task_name} failed: {str(exc).splitlines()[0][:300]}") from None
            counts[i] += state["trials"] - before
            exhausted[i] = state["trials"] - before < n  # its search space has nothing new to offer
        rnd += 1
    shutil.rmtree(work, ignore_errors=True)
    return sum(c > 0 for c in counts)


def _contexts(tasks, strategy, seed: int):
    """One tuning context per task, logging to hwnas's logger (TVM's own per-task file loggers cannot
    be set up twice in one process)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.utils import fork_seed

    log = logging.getLogger("hwnas.tvm_tune")
    contexts = [ms.TuneContext(mod=t.dispatched[0], target=t.target, space_generator="post-order-apply",
                               search_strategy=strategy, task_name=t.task_name, logger=log, rand_state=r,
                               num_threads=1).clone()
                for t, r in zip(tasks, fork_seed(seed, n=len(tasks)))]
    return contexts, [float(t.weight) for t in tasks]


def tune(mod, target, *, minutes: float = 0.0, trials: int = 0, database_root: str | Path | None = None,
         progress: Progress | None = None, seed: int = 0):
    """Tune the tasks of Relax module ``mod`` for ``target`` that the database lacks; return
    ``(database, TuneReport)``. ``minutes`` bounds the wall time, ``trials`` the trials per task."""
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks

    if minutes <= 0 and trials <= 0:
        raise ConfigError("TVM tuning needs a budget: tune_minutes > 0 and / or tune_trials > 0.")
    host_tensor_intrinsics()
    db = open_database(target, database_root)
    report = TuneReport(database=str(database_dir(target, database_root)))
    t0 = time.perf_counter()
    tasks = extract_tasks(fused(mod, target), target)
    report.tasks, report.task_names = len(tasks), [t.task_name for t in tasks]
    todo = [t for t in tasks if not has_record(db, t.dispatched[0])]
    report.reused = report.tasks - len(todo)
    if todo:
        state = {"trials": 0, "t0": t0}
        report.tuned = _tune_rounds(todo, target, db, int(trials) if trials > 0 else MAX_TRIALS_PER_TASK,
                                    t0 + minutes * 60.0 if minutes > 0 else None, progress, state, seed)
        report.trials = state["trials"]
    report.seconds = time.perf_counter() - t0
    return db, report


def host_tensor_intrinsics() -> None:
    """Register the tensor intrinsics of this host's CPU (x86 VNNI/AMX, or Arm dot products) without
    TVM's package import of every target's, whose CUDA part alone parses for 30-70 s here. The
    package stays importable: ``import tvm.s_tir.tensor_intrin.cuda`` still registers CUDA's."""
    import importlib
    import platform
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import tvm.s_tir

    pkg = types.ModuleType(name, "Tensor intrinsics (host CPU only, see hwnas.devices.tvm_tune).")
    pkg.__path__ = [str(Path(tvm.s_tir.__path__[0]) / "tensor_intrin")]
    sys.modules[name] = pkg
    tvm.s_tir.tensor_intrin = pkg
    arm = platform.machine().lower() in ("arm64", "aarch64")
    importlib.import_module(f"{name}.{'arm_cpu' if arm else 'x86'}")


def cost_model() -> str:
    """XGBoost's cost model where xgboost is installed (it finds fast schedules in far fewer trials),
    else random (candidates are still measured; the database keeps the best)."""
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "random"
    return "xgb"


def has_record(db, task_mod) -> bool:
    """Whether the database holds a measured record of this task (its workload, structurally)."""
    if not db.has_workload(task_mod):
        return False
    return bool(db.get_top_k(db.commit_workload(task_mod), 1))


def compile_tuned(mod, target, db):
    """The Relax VM executable of ``mod`` with the database's best schedules applied (untuned
    operators fall back to TVM's default schedules)."""
    from tvm.s_tir.meta_schedule.relax_integration import compile_relax

    return compile_relax(db, mod, target, None)


def prepare(mod):
    """The imported module as tuning and the tuned build both see it (inference-time op decomposition,
    so batch-norm and friends become plain arithmetic that fuses into its convolution)."""
    from tvm import relax

    return relax.transform.DecomposeOpsForInference()(mod)


def fused(mod, target):
    """``mod`` lowered and fused as :func:`compile_tuned` lowers it before applying the database
    (library dispatch, legalisation, fusion), so the tasks tuned are the ones the build looks up."""
    import tvm
    from tvm import relax
    from tvm.relax import pipeline

    try:
        dispatch = list(pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    seq = [*dispatch, relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
           relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR()]
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(seq)(mod)


def throttled(say, every_s: float = 5.0) -> Progress:
    """A :data:`Progress` that speaks through ``say(line)`` at most every ``every_s`` seconds."""
    last = [0.0]

    def progress(what: str, done: float, total: float) -> None:
        now = time.perf_counter()
        if now - last[0] >= every_s or done >= total:
            last[0] = now
            say(f"{what} ({done:.0f}/{total:.0f})")

    return progress
