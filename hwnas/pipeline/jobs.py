"""The jobs, composed from the stages. Each is a short sequence of calls into them:

* :func:`profile`  — device backend + super-network → ONNX builders → the profiler → a device profile;
* :func:`search`   — profile → predictors → objectives → search with the closed loop → a run directory;
* :func:`export`   — a run's candidate (or an arch) → :func:`hwnas.exporting.build` → a deployment bundle;
* :func:`verify`   — a bundle → :func:`hwnas.exporting.verify` on its device;
* :func:`quickstart` — all of them on embedded defaults (:mod:`hwnas.pipeline.end_to_end`).

Every job takes its config (:mod:`hwnas.config`) or the config's fields as keyword arguments, and
records the config and the content id of its parent artifact (profile → run → bundle).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hwnas.config import Config, ExportConfig, ProfileConfig, QuickstartConfig, SearchConfig, VerifyConfig
from hwnas.types import Progress, Say

C = TypeVar("C", bound=Config)

def configure(cls: type[C], config: C | None, fields: dict[str, Any]) -> C:
    """``config`` with ``fields`` applied (or a new one from ``fields``), checked complete."""
    if config is not None and not isinstance(config, cls):
        from hwnas.errors import ConfigError

        raise ConfigError(f"Pass a {cls.__name__}, or its fields as keyword arguments (got {type(config).__name__}).")
    cfg = cls(**fields) if config is None else config.replace(**fields) if fields else config
    cfg.check_complete()
    return cfg


# =========================================================================== building ONNX models
def subnet_builder(space: str, checkpoint: str | os.PathLike | None = None,
                   batch_size: int = 1) -> tuple[Callable[[Any, Path], Path], str]:
    """``(build(arch, path), weights source)``: subnets of ``space`` exported to ONNX. Weights:
    ``checkpoint``, else the shipped ones, else a fresh initialisation (latency, memory and energy
    do not depend on the weights' values)."""
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet

    net, source = load_supernet(space, checkpoint)
    return (lambda arch, path: export_subnet(net, arch, path, batch_size)), source


def layer_builder(batch_size: int = 1) -> Callable[[Any, Path], Path]:
    """``build(layer_spec, path)``: one layer as a standalone ONNX model (block/op table)."""

    def build(spec, path):
        from hwnas.exporting.onnx_export import export_onnx
        from hwnas.supernet.static import build_layer

        return export_onnx(build_layer(spec), (batch_size, spec.in_ch, spec.in_hw, spec.in_hw), path)

    return build


def quiet_torch() -> None:
    """One torch thread while measuring: torch's idle workers would spin on the measured runtime's cores."""
    import torch

    torch.set_num_threads(1)


def device_from(name: str, threads: int = 1, options: dict[str, Any] | None = None, cluster: str | None = None,
                **settings: Any):
    """The device ``name`` (``BACKEND@BOARD``: on boards of the Ray cluster at ``cluster`` / RAY_ADDRESS)."""
    from hwnas.devices import get_device, is_remote, parse_options

    if is_remote(name):
        from hwnas.devices.cluster import use

        use(cluster)
        settings["cluster"] = cluster
    return get_device(name, threads=threads, **settings, **parse_options(options or {}))


def use_cluster(cluster: str | None) -> None:
    """Remote devices named later in this job (a profile's, a manifest's) reach the cluster at ``cluster``."""
    if cluster:
        from hwnas.devices.cluster import use

        use(cluster)


def profiler_for(dev):
    """``(run_profile, measure_archs)`` for a device: fanned out over the boards of a remote one."""
    from hwnas.devices import is_remote

    if is_remote(dev.name):
        from hwnas.profiling import fleet

        return fleet.run_fleet_profile, fleet.measure_archs
    from hwnas.profiling import profiler

    return profiler.run_profile, profiler.measure_archs


def profile_device(prof, name: str | None = None, threads: int | None = None):
    """The device a profile was measured on, with the settings it records — or another device
    (``name``, ``threads``) to use the profile for, with that device's own defaults."""
    spec = prof.spec
    if name is None or name == prof.device_name:
        return device_from(prof.device_name, threads or spec.threads, prof.device_options,
                           batch_size=spec.batch_size, precision=spec.precision)
    return device_from(name, threads or spec.threads, batch_size=spec.batch_size)


# =========================================================================== 1. profile a device
def profile(config: ProfileConfig | None = None, /, *, progress: Progress | None = None, **fields: Any):
    """Profile a device for each space of the config into its profile directory (resumable); with
    ``few_shot``, from a few measurements and the ``from_profiles`` of other devices."""
    from hwnas.profiling.precision import in_precision
    from hwnas.profiling.profiler import ProfileReport, ProfileSettings, open_or_create, smoke_timings

    cfg = configure(ProfileConfig, config, fields)
    dev = device_from(cfg.device, cfg.threads, cfg.device_options, cfg.cluster, precision=cfg.precision)
    run_profile = profiler_for(dev)[0]
    extra = smoke_timings() if cfg.quick else {}
    plans = [ProfileSettings(space=s, samples=cfg.samples, reference_set=cfg.reference_set, repeats=cfg.repeats,
                             holdout=cfg.holdout, op_resolutions=list(cfg.resolutions) or None, ops=cfg.ops,
                             seed=cfg.seed, kernel_times=cfg.kernel_times, energy=cfg.energy, **extra)
             for s in cfg.space]  # every space validated before anything is measured
    prof, created = open_or_create(cfg.out, cfg.device, dev)
    quiet_torch()
    spaces = {}
    try:
        for ps in plans:
            build_model, weights = subnet_builder(ps.space, cfg.checkpoint, dev.batch_size)
            build_model = in_precision(dev, build_model)  # INT8 rows: models quantized before timing
            if cfg.few_shot:
                from hwnas.profiling.few_shot import few_shot_profile

                say = (lambda msg: progress(msg, 0, 1)) if progress else None
                spaces[ps.space] = {**few_shot_profile(prof, dev, ps.space, cfg.from_profiles, build_model,
                                                       cfg.few_shot, cfg.target_error, cfg.seed, say),
                                    "weights": weights}
                continue
            bar = (lambda d, a, b, s=ps.space: progress(f"{s}: {d}", a, b)) if progress else None
            build_layer = in_precision(dev, layer_builder(dev.batch_size) if ps.ops else None)
            spaces[ps.space] = {**run_profile(prof, dev, ps, build_model, build_layer, bar,
                                              note=f"weights: {weights}", config=cfg.to_dict()),
                                "weights": weights}
    finally:
        dev.close()  # a remote device releases its boards
    return ProfileReport(type(prof).open(prof.root), created, spaces)


def measure_archs(prof, archs, kind: str = "search", checkpoint: str | os.PathLike | None = None,
                  progress: Progress | None = None, device=None, **kwargs: Any):
    """Measure ``archs`` end to end on the profile's own device (``device``: that device, already open)
    and append them (closed loop, active sampling); boards of a remote device measure in parallel."""
    dev = device or profile_device(prof)
    measure = profiler_for(dev)[1]
    quiet_torch()
    from hwnas.profiling.precision import in_precision

    builders = {sp: in_precision(dev, subnet_builder(sp, checkpoint, dev.batch_size)[0])
                for sp in {a.space for a in archs}}  # an INT8 device times quantized subnets
    return measure(prof, archs, lambda a, p: builders[a.space](a, p), dev, kind=kind, progress=progress, **kwargs)


# =========================================================================== 2. search under a budget
def search(config: SearchConfig | None = None, /, *, progress: Say | None = None, **fields: Any):
    """Search the config's space under its budgets, for its device (the profile's, calibrated there),
    verified on that device; writes the run directory and returns the :class:`~hwnas.types.ParetoFront`."""
    from hwnas.pipeline.search_run import run

    cfg = configure(SearchConfig, config, fields)
    use_cluster(cfg.cluster)
    return run(cfg, progress)


# =========================================================================== 3. export, and verify
def export(config: ExportConfig | None = None, /, *, progress: Say | None = None, **fields: Any):
    """Export the config's subnet (a run's candidate, or an arch) for its device into a bundle."""
    from hwnas.datasets import open_dataset
    from hwnas.exporting.build import build

    cfg = configure(ExportConfig, config, fields)
    arch, predicted, predicted_for, parent = export_subject(cfg)
    data = open_dataset(cfg.data, arch.space, cfg.data_options) if cfg.data_options else cfg.data
    return build(arch, cfg.out, device=export_devices(cfg, progress), precision=cfg.precision,
                 max_accuracy_drop=cfg.max_accuracy_drop, checkpoint=cfg.checkpoint, data=data,
                 predicted=predicted, predicted_for=predicted_for, overwrite=cfg.overwrite,
                 lineage={"config": cfg.to_dict(), "parent": parent}, progress=progress,
                 float_precisions=cfg.float_precision, mixed_per_runtime=cfg.mixed_per_runtime)


def export_devices(cfg: ExportConfig, progress=None):
    """The export's device, or the devices to choose among (``auto`` / a comma list)."""
    from hwnas.errors import ConfigError
    from hwnas.exporting.choose import device_names, is_choice

    if is_choice(cfg.device):
        if cfg.tune_minutes:
            raise ConfigError("--tune-minutes tunes one compiling device: use it with --device tvm-llvm, not with "
                              f"'{cfg.device}'.")
        return [device_from(n, cfg.threads, cluster=cfg.cluster, batch_size=cfg.batch_size)
                for n in device_names(cfg.device, cfg.threads)]
    if len(cfg.float_precision) > 1:
        raise ConfigError("One device runs one float precision: give one --float-precision, or --device auto / a "
                          "comma list to try several.")
    prec = {"precision": cfg.float_precision[0]} if cfg.float_precision else {}
    dev = device_from(cfg.device, cfg.threads, tuning_options(cfg.device, cfg.tune_minutes), cluster=cfg.cluster,
                      batch_size=cfg.batch_size, **prec)
    if cfg.tune_minutes and progress is not None:
        from hwnas.devices.tvm_tune import throttled

        dev.tune_progress = throttled(progress)
    return dev


def tuning_options(device: str, minutes: float) -> dict[str, Any]:
    """Device options asking ``device`` to tune its compiled builds for ``minutes`` (none for 0)."""
    if not minutes:
        return {}
    from hwnas.devices import device_class, is_remote
    from hwnas.errors import ConfigError

    backend = device.split("@")[0]
    if minutes < 0 or not (is_remote(device) or getattr(device_class(backend), "tunable", False)):
        raise ConfigError(f"--tune-minutes {minutes} needs a positive time and a compiling backend (tvm-llvm); "
                          f"'{device}' runs models as they are. Drop --tune-minutes or use --device tvm-llvm.")
    return {"tune_minutes": minutes}


def export_subject(cfg: ExportConfig):
    """(arch, predicted figures, the device they were predicted for, parent record) of what an export names."""
    from hwnas.errors import ConfigError

    if cfg.run is not None:
        from hwnas.searching.run_dir import run_id
        from hwnas.types import ParetoFront

        front = ParetoFront.load(cfg.run)
        idx, cand = front.pick(cfg.pick)
        return (cand.arch, dict(cand.objectives), front.meta.get("device_id"),
                {"kind": "run", "path": str(cfg.run), "id": run_id(cfg.run), "candidate": idx})
    if cfg.arch is not None:
        from hwnas.types import ArchConfig

        arch = ArchConfig.parse(cfg.arch, cfg.space)
        return arch, None, None, {"kind": "arch", "id": arch.key()}
    raise ConfigError("Give --run RUN_DIR or --arch ARCH.")


def verify(config: VerifyConfig | None = None, /, **fields: Any):
    """Verify the config's bundle on its device: integrity, then accuracy and latency re-measured."""
    from hwnas.exporting.verify import verify as run_verify

    cfg = configure(VerifyConfig, config, fields)
    use_cluster(cfg.cluster)
    dev = device_from(cfg.device, cluster=cfg.cluster) if cfg.device else None
    return run_verify(cfg.bundle, dev, cfg.latency_tolerance, cfg.accuracy_tolerance, cfg.data, cfg.data_options)


def quickstart(config: QuickstartConfig | None = None, /, *, progress: Say | None = None, **fields: Any):
    """The three jobs end to end on embedded defaults (see :mod:`hwnas.pipeline.end_to_end`)."""
    from hwnas.pipeline.end_to_end import run

    return run(configure(QuickstartConfig, config, fields), progress)
