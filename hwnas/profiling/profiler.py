"""The profiler: measure a space's block table, end-to-end samples and reference set on a device.

Backend-agnostic: it takes a :class:`~hwnas.devices.base.Device` and two *builders* — callables
that write an ONNX file for a subnet (``build_model(arch, path)``) or for one layer
(``build_layer(layer_spec, path)``) and return the model to time (:func:`built`) — so it never
imports the super-network (the pipeline and the CLI compose them). Work is planned deterministically from the settings, each finished row
is stored at once (crash-safe journal), and a re-run skips every row already stored: an
interrupted profile resumes where it stopped.

Order of the work: the fixed reference set, the block/op table, the stratified random samples
(alternating with the optional held-out evaluation subnets), then ``repeats`` re-measurements of reference archs (minutes after the first measurement, they
give the device's own repeatability: the floor any latency model is judged against).
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.profiles.profile import DeviceProfile
from hwnas.profiling.sampling import (
    default_op_resolutions,
    holdout_archs,
    op_layers,
    reference_archs,
    stratified_archs,
)
from hwnas.profiles.schema import MODEL_KINDS, ProfileRow, model_row_key, op_row_key
from hwnas.devices.base import Device
from hwnas.types import ArchConfig, Progress

BuildModel = Callable[[ArchConfig, Path], Any]
BuildLayer = Callable[[Any, Path], Any]
# a builder writes an ONNX file at the path it is handed and returns the model to time: that path,
# None (the same), or a model it derived from it (an INT8 profile's quantized IR, see
# hwnas.profiling.precision)
# progress(description, done_units, total_units): a model counts MODEL_UNITS op units

MODEL_UNITS = 8.0


def built(result: Any, path: Path) -> Path:
    """The model a builder asks to be timed (its return value, else the path it was handed)."""
    return Path(result) if isinstance(result, (str, Path)) else path


def _model_timing():
    """End-to-end rows: 10 interleaved bursts of ~40 ms (the ratio's median over more, shorter
    bursts shrugs off a short burst of foreign load better than 6 of 50 ms)."""
    from hwnas.devices.timing import TimingConfig

    return TimingConfig(bursts=10, burst_s=0.04)


def _op_timing():
    from hwnas.devices.timing import TimingConfig

    return TimingConfig.quick()


def smoke_timings() -> dict[str, Any]:
    """Settings for ``--quick`` profiles (smoke tests): short timing runs, no retries; figures are noisier."""
    from hwnas.devices.timing import TimingConfig

    return {"model_timing": TimingConfig(warmup=3, warmup_s=0.0, runs=15, min_runs=5, budget_s=0.1, bursts=3,
                                         burst_s=0.01, min_burst_runs=3),
            "op_timing": TimingConfig(warmup=2, warmup_s=0.0, runs=10, min_runs=3, budget_s=0.05, bursts=2,
                                      burst_s=0.005, min_burst_runs=2),
            "retries": 0}


@dataclass
class ProfileSettings:
    """What to measure for one space (stored in ``device.json`` under ``spaces``)."""

    space: str
    samples: int = 100
    reference_set: int = 20
    repeats: int = 10
    holdout: int = 0  # extra subnets measured only to evaluate predictors (never used to fit)
    op_resolutions: list[int] | None = None  # None: default_op_resolutions(space)
    ops: bool = True
    seed: int = 0
    kernel_times: bool = True
    energy: bool = True
    retries: int = 2  # re-measure a model measured while the machine was disturbed (see session)
    model_timing: Any = field(default_factory=_model_timing)
    op_timing: Any = field(default_factory=_op_timing)

    def __post_init__(self) -> None:
        from hwnas.supernet.spaces import get_space

        sp = get_space(self.space)
        if min(self.samples, self.reference_set, self.repeats, self.holdout) < 0:
            raise ConfigError("samples, reference_set, repeats and holdout must be >= 0.")
        if self.repeats > self.reference_set:
            raise ConfigError(f"repeats ({self.repeats}) re-measure reference archs: at most --reference-set "
                              f"({self.reference_set}).")
        if self.op_resolutions is None:
            self.op_resolutions = default_op_resolutions(self.space)
        bad = [r for r in self.op_resolutions if r not in sp.resolutions]
        if bad:
            raise ConfigError(f"Resolutions {bad} are not in space '{self.space}' ({list(sp.resolutions)}).")

    def to_meta(self) -> dict[str, Any]:
        return {"samples": self.samples, "reference_set": self.reference_set, "repeats": self.repeats,
                "retries": self.retries, "holdout": self.holdout,
                "op_resolutions": list(self.op_resolutions), "seed": self.seed, "ops": self.ops,
                "model_timing": self.model_timing.to_dict(), "op_timing": self.op_timing.to_dict()}


@dataclass(frozen=True)
class Task:
    table: str  # "ops" | "models"
    key: str
    kind: str
    item: Any  # LayerSpec or ArchConfig
    repeat: int = 0


def plan(prof: DeviceProfile, settings: ProfileSettings) -> list[Task]:
    """Every row this profile should hold for ``settings`` (whether or not already measured)."""
    dev = prof.device_id
    refs = reference_archs(settings.space, settings.reference_set)
    tasks = [Task("models", model_row_key(a.key(), dev), "reference", a) for a in refs]
    if settings.ops:
        for layer in op_layers(settings.space, settings.op_resolutions):
            tasks.append(Task("ops", op_row_key(layer.key(), dev), layer.kind, layer))
    samples = stratified_archs(settings.space, settings.samples, settings.seed, exclude=refs)
    held = holdout_archs(settings.space, settings.holdout, settings.seed, exclude=refs + samples)
    # samples and held-out subnets alternate, so both are measured under the same machine conditions
    for i in range(max(len(samples), len(held))):
        for kind, group in (("random", samples), ("holdout", held)):
            if i < len(group):
                tasks.append(Task("models", model_row_key(group[i].key(), dev), kind, group[i]))
    for a in refs[: settings.repeats]:
        tasks.append(Task("models", model_row_key(a.key(), dev, 1), "repeat", a, 1))
    return tasks


def model_identity(arch: ArchConfig, kind: str, repeat: int, device_id: str) -> dict[str, Any]:
    """Identity columns of an end-to-end row."""
    from hwnas.supernet.spaces import get_space

    if kind not in MODEL_KINDS:
        raise ConfigError(f"Unknown row kind '{kind}'; one of {', '.join(MODEL_KINDS)}.")
    sp = get_space(arch.space)
    return {"row_key": model_row_key(arch.key(), device_id, repeat), "space": arch.space, "kind": kind,
            "arch": arch.to_str(), "arch_key": arch.key(), "resolution": arch.r, "macs": sp.macs(arch),
            "params": sp.params(arch), "repeat": repeat}


def op_identity(layer, space: str, device_id: str) -> dict[str, Any]:
    """Identity columns of a block/op row."""
    return {"row_key": op_row_key(layer.key(), device_id), "space": space, "layer_key": layer.key(),
            "layer": json.dumps(asdict(layer), separators=(",", ":")), "layer_kind": layer.kind,
            "in_hw": layer.in_hw, "macs": layer.macs, "params": layer.params}


@dataclass(frozen=True)
class ProfileReport:
    """What one profiling run did: the profile, per-space counts and timings, repeatability, energy."""

    profile: DeviceProfile
    created: bool
    spaces: dict[str, dict[str, Any]]

    @property
    def quality(self) -> dict[str, Any]:
        return self.profile.meta.get("quality", {})

    @property
    def energy(self) -> dict[str, Any]:
        return self.profile.meta.get("energy", {})

    def to_dict(self) -> dict[str, Any]:
        return {"profile": str(self.profile.root), "created": self.created, "spaces": self.spaces,
                "quality": self.quality, "energy": self.energy}


def open_or_create(out: str | Path, device_name: str, device: Device) -> tuple[DeviceProfile, bool]:
    """The profile at ``out``, or a new one for ``device``; returns (profile, created).

    An existing profile must have been made with the same device backend (its exact settings
    are checked when measuring starts); a non-empty directory that is not a profile is refused.
    """
    from hwnas.errors import ProfileError
    from hwnas.profiles.schema import DEVICE_FILE

    out = Path(out)
    if (out / DEVICE_FILE).exists():
        prof = DeviceProfile.open(out)
        if prof.device_name != device_name:
            raise ProfileError(f"Profile '{out}' is for device '{prof.device_name}', not '{device_name}'. "
                               "Use another --out directory.")
        prof.check_writable()
        return prof, False
    return DeviceProfile.create(out, device_name, device.spec(), device.host_facts(), device.options), True


def run_profile(prof: DeviceProfile, device: Device, settings: ProfileSettings, build_model: BuildModel,
                build_layer: BuildLayer | None, progress: Progress | None = None,
                workdir: str | Path | None = None, note: str = "", config: dict | None = None) -> dict[str, Any]:
    """Measure everything :func:`plan` lists that ``prof`` lacks. Returns counts and timings."""
    from hwnas.profiling.session import MeasureSession

    if settings.ops and build_layer is None:
        raise ConfigError("The block table needs a layer builder (build_layer), or pass ops=False.")
    t_start = time.perf_counter()
    with prof.writing("profiling"):
        tasks = plan(prof, settings)
        prof.register_space(settings.space, {
            **settings.to_meta(), "op_keys": [t.item.key() for t in tasks if t.table == "ops"],
            "reference_archs": [t.item.to_str() for t in tasks if t.kind == "reference"]})
        todo = [t for t in tasks if not prof.has_row(t.table, t.key)]
        total, done = _units(tasks), _units(tasks) - _units(todo)
        counts = {"planned": len(tasks), "already_stored": len(tasks) - len(todo), "measured": 0,
                  "unstable": 0, "seconds": {"ops": 0.0, "models": 0.0, "holdout": 0.0, "setup": 0.0}}
        if progress:
            progress("calibrating references", done, total)
        session = MeasureSession(prof, device, energy=settings.energy, kernel_times=settings.kernel_times,
                                 note=note, retries=settings.retries, config=config) if todo else None
        counts["seconds"]["setup"] = time.perf_counter() - t_start
        tmp = Path(tempfile.mkdtemp(prefix="hwnas-profile-", dir=workdir))
        gc.freeze()  # the peak-memory meter collects garbage before each model: skip the long-lived heap
        try:
            for t in todo:
                t0 = time.perf_counter()
                if progress:
                    progress(_describe(t), done, total)
                path = tmp / "model.onnx"
                if t.table == "ops":
                    model = built(build_layer(t.item, path), path)
                    row = session.row("ops", op_identity(t.item, settings.space, prof.device_id), model,
                                      settings.op_timing, energy=False)
                else:
                    model = built(build_model(t.item, path), path)
                    row = session.row("models", model_identity(t.item, t.kind, t.repeat, prof.device_id), model,
                                      settings.model_timing, energy=settings.energy)
                prof.add_row(row)
                remove_models(path, model)
                counts["measured"] += 1
                counts["unstable"] += int(row.derived["unstable"])
                counts["seconds"]["holdout" if t.kind == "holdout" else t.table] += time.perf_counter() - t0
                done += MODEL_UNITS if t.table == "models" else 1.0
        finally:
            gc.unfreeze()
            shutil.rmtree(tmp, ignore_errors=True)
        if progress:
            progress("done", total, total)
        from hwnas.profiles.quality import summarize

        quality = summarize(prof)
        prof.update_meta(quality=quality)
    counts["wall_s"] = time.perf_counter() - t_start
    counts["quality"] = quality
    return counts


def remove_models(*paths: Path) -> None:
    """Delete the models a row was built and timed from, with their side files."""
    from hwnas.devices.base import model_files

    for p in paths:
        if Path(p).is_file():
            for f in model_files(p):
                f.unlink(missing_ok=True)


def _units(tasks: Sequence[Task]) -> float:
    """Progress units: an end-to-end model costs about ``MODEL_UNITS`` block models."""
    return sum(MODEL_UNITS if t.table == "models" else 1.0 for t in tasks)


def _describe(t: Task) -> str:
    if t.table == "ops":
        return f"op {t.item.kind} {t.item.in_hw}x{t.item.in_hw}x{t.item.in_ch}"
    return f"{t.kind} {t.item.to_str().split('/', 1)[1][:40]}"


def measure_archs(prof: DeviceProfile, archs: Sequence[ArchConfig], build_onnx: BuildModel, device,
                  kind: str = "search", timing=None, energy: bool = True, kernel_times: bool = True,
                  retries: int = 2, progress: Progress | None = None,
                  workdir: str | Path | None = None) -> list[ProfileRow]:
    """Measure ``archs`` end to end on ``device`` and append them to ``prof``; returns one row per arch.

    Archs already in the profile are not measured again (their stored row is returned). Used by
    the search's closed loop and by active sampling; ``build_onnx(arch, path)`` writes the ONNX
    file, so the caller decides where weights come from. A space new to the profile is
    registered (without a block table).
    """
    from hwnas.profiling.session import MeasureSession

    timing = timing or _model_timing()
    rows: dict[str, ProfileRow] = {}
    with prof.writing(f"measuring {kind} archs"):
        for sp in sorted({a.space for a in archs}):
            if sp not in prof.spaces:
                prof.register_space(sp, {"samples": 0, "reference_set": 0, "repeats": 0, "op_keys": [],
                                         "ops": False})
        todo = [a for a in archs if not prof.has_row("models", model_row_key(a.key(), prof.device_id))]
        session = MeasureSession(prof, device, energy=energy, kernel_times=kernel_times,
                                 note=f"measure_archs ({kind})", retries=retries) if todo else None
        tmp = Path(tempfile.mkdtemp(prefix="hwnas-measure-", dir=workdir))
        gc.freeze()
        try:
            for i, a in enumerate(dict.fromkeys(todo)):
                if progress:
                    progress(f"{kind} {a.to_str()}", i, len(todo))
                path = tmp / "model.onnx"
                model = built(build_onnx(a, path), path)
                row = session.row("models", model_identity(a, kind, 0, prof.device_id), model, timing, energy)
                prof.add_row(row)
                rows[row.key] = row
                remove_models(path, model)
        finally:
            gc.unfreeze()
            shutil.rmtree(tmp, ignore_errors=True)
    stored = {k: r for k, r in zip(prof.models_df()["row_key"], prof.models_df().to_dict("records"))}
    out = []
    for a in archs:
        k = model_row_key(a.key(), prof.device_id)
        out.append(rows[k] if k in rows else ProfileRow.from_record("models", stored[k]))
    return out
