"""``hwnas search`` composed: profile → a latency model calibrated on the device → objectives and
budgets → search with the closed loop on the device → the super-network's accuracy → a run directory.

Every millisecond of the run is the device's own, now: predictions come from the profile's model
calibrated on the device (:mod:`hwnas.pipeline.predictors`), and the closed loop measures into a
profile of the device created in the run directory (``measurements/``, its reference latencies
measured at the start of the run), so a budget is judged against what the device does today.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hwnas.config import SearchConfig
from hwnas.types import Say

OBJECTIVE_NAMES = {"accuracy": "accuracy_top1", "latency": "latency_ms", "memory": "memory_mb",
                   "energy": "energy_mj", "macs": "macs_m", "params": "params_m"}


def run(cfg: SearchConfig, progress: Say | None = None):
    from hwnas.pipeline.jobs import profile_device
    from hwnas.pipeline.predictors import device_latency_model
    from hwnas.profiles import DeviceProfile
    from hwnas.searching.accuracy import load_accuracy_predictor
    from hwnas.searching.budgets import check_reachable
    from hwnas.searching.run import NSGA2, SearchProblem, Termination, search
    from hwnas.searching.run_dir import save_run
    from hwnas.supernet.spaces import get_space

    if cfg.joint_precision:  # architecture x per-block precision: its own composer
        from hwnas.pipeline.joint import run as joint_run

        return joint_run(cfg, progress)
    say = progress or (lambda msg: None)
    source = DeviceProfile.open(cfg.profile)
    source.check_space(cfg.space)
    dev = profile_device(source, cfg.device, cfg.threads)
    data = search_data(cfg)
    accuracy = load_accuracy_predictor(cfg.space, cfg.accuracy_predictor, data)  # refused before any measuring
    dm = device_latency_model(source, cfg.space, dev, cfg.checkpoint, cfg.latency_model, cfg.calibrate, say)
    objectives, predictors, budgets, limits = search_objectives(cfg, source, dm.model, say, accuracy)
    res = tuple(get_space(cfg.space).resolutions)  # end-to-end samples span them all; the block table interpolates
    check_reachable(cfg.space, predictors, budgets, res)
    problem = SearchProblem(cfg.space, tuple(objectives), budgets, res, limits)
    check = device_check(cfg, dev, dm, predictors, budgets, say) if cfg.closed_loop else None
    front = search(problem, NSGA2(cfg.pop_size, cfg.seed), Termination(generations=cfg.generations), check, say)
    front = final_accuracy(front, cfg, say, data)
    lineage = {"config": cfg.to_dict(), "parent": {"kind": "profile", "path": str(cfg.profile),
                                                   "id": source.content_id()}}
    front = replace(front, meta={**front.meta, "lineage": lineage, "device": {"name": dev.name, **dev.spec().to_dict()},
                                 "device_id": dev.spec().id(), "calibration": dm.note, "calibrated": dm.calibrated,
                                 "predictors": {n: p.name for n, p in predictors.items()},
                                 "data": data.identity() if data is not None else None,
                                 "units": "milliseconds of the device as it ran during the search"})
    save_run(cfg.out, front, cfg.to_dict())
    if cfg.add_to_profile and check is not None:
        add_to_profile(cfg, source, dev, say)
    return front


def search_data(cfg: SearchConfig):
    """The dataset of the run (checked against the space), resolved before anything is measured:
    the accuracy predictor must have been fitted on it and the final candidates are judged on it.
    None when the run names none and judges nothing (``final_eval`` 0)."""
    if cfg.data is None and not cfg.final_eval:
        return None
    from hwnas.datasets import open_dataset

    return open_dataset(cfg.data, cfg.space, cfg.data_options)


def search_objectives(cfg: SearchConfig, prof, latency_model, say: Say, accuracy=None):
    """(objectives, device predictors by name, budgets, budget functions) for a search config;
    ``accuracy``: the accuracy predictor (default: the config's, unchecked against any data)."""
    from hwnas.errors import ConfigError
    from hwnas.latency_models import predictor_for
    from hwnas.searching import objectives as O
    from hwnas.searching.accuracy import load_accuracy_predictor

    unknown = [o for o in cfg.objectives if o not in OBJECTIVE_NAMES]
    if unknown or "accuracy" not in cfg.objectives:
        raise ConfigError(f"--objectives must include 'accuracy' and only use {', '.join(OBJECTIVE_NAMES)}; "
                          f"got {', '.join(cfg.objectives)}.")
    budgets = {k: v for k, v in (("latency_ms", cfg.latency_budget_ms), ("memory_mb", cfg.memory_budget_mb),
                                 ("energy_mj", cfg.energy_budget_mj)) if v is not None}
    needed = sorted({OBJECTIVE_NAMES[o] for o in cfg.objectives if o in ("latency", "memory", "energy")} | set(budgets))
    predictors = {n: latency_model if n == "latency_ms" else predictor_for(prof, cfg.space, n, None, say)
                  for n in needed}
    acc = O.from_predictor("accuracy_top1", accuracy or load_accuracy_predictor(cfg.space, cfg.accuracy_predictor),
                           "max")
    extra = [O.macs(cfg.space) if o == "macs" else O.params(cfg.space) for o in cfg.objectives if o in ("macs", "params")]
    limits = {}
    if cfg.confidence is not None and "latency_ms" in budgets:
        limits["latency_ms"] = O.upper_bound(latency_model, cfg.confidence)
    return [acc] + [O.from_predictor(n, p) for n, p in predictors.items()] + extra, predictors, budgets, limits


def device_check(cfg: SearchConfig, dev, dm, predictors: dict, budgets: dict, say: Say):
    """The closed loop's link to the device: measure into a profile of the device in the run
    directory, and refit the calibration with every new measurement."""
    from hwnas.pipeline.jobs import profiler_for, quiet_torch, subnet_builder
    from hwnas.pipeline.predictors import refit_on_device
    from hwnas.profiling.profiler import open_or_create
    from hwnas.searching.closed_loop import DeviceCheck

    store, _ = open_or_create(Path(cfg.out) / "measurements", dev.name, dev)
    build, _ = subnet_builder(cfg.space, cfg.checkpoint, dev.batch_size)
    measure_archs = profiler_for(dev)[1]  # the boards of a remote device measure in parallel
    quiet_torch()
    domain, why = dev.energy_status()
    metrics = ("latency_ms", "memory_mb") + (("energy_mj",) if domain is not None else ())
    seen: dict[str, tuple] = {}

    def measure(archs):
        rows = measure_archs(store, archs, build, dev, kind="search")
        out = [r.metrics() for r in rows]
        seen.update({a.key(): (a, m["latency_ms"]) for a, m in zip(archs, out)})
        return out

    def refit(archs, measured):
        pts = list(seen.values())
        from hwnas.latency_models.transfer import TransferModel

        if len(pts) + (len(dm.calibration.archs) if dm.calibration is not None else 0) < TransferModel.min_samples:
            say(f"{len(pts)} closed-loop measurement(s): too few to recalibrate the latency model yet")
            return {}
        model = refit_on_device(dm, [a for a, _ in pts], [v for _, v in pts], cfg.space)
        say(f"recalibrated the latency model on {len(pts)} closed-loop measurements: {model.describe()}")
        return {"latency_ms": model}

    uncertain = None
    if "latency_ms" in budgets and getattr(dm.model, "interval_", None) is not None:
        b = budgets["latency_ms"]

        def uncertain(archs, model=dm.model, c=cfg.confidence or 0.9):
            _, lo, hi = model.predict_interval(archs, c)
            return (lo <= b) & (hi > b)

    return DeviceCheck(measure, metrics, refit if "latency_ms" in predictors else None, cfg.top_k,
                       cfg.max_measurements, unmeasurable={"energy_mj": why} if domain is None else {},
                       uncertain=uncertain)


def add_to_profile(cfg: SearchConfig, source, dev, say: Say) -> None:
    from hwnas.errors import ProfileError
    from hwnas.profiles import DeviceProfile, merge_profiles
    from hwnas.profiling.calibration import measured_here

    if not measured_here(source, dev):
        raise ProfileError(f"The closed loop measured {dev.name} on this host; '{cfg.profile}' was measured elsewhere "
                           "(or with other settings): its measurements stay in the run directory.")
    added = merge_profiles(source, DeviceProfile.open(Path(cfg.out) / "measurements"))
    say(f"added {added['models']} measured subnets to {cfg.profile}")


def final_accuracy(front, cfg: SearchConfig, say: Say, data=None):
    """The recommended candidates evaluated on the super-network itself (validation split of
    ``data``, the run's dataset)."""
    if not cfg.final_eval or not front.candidates:
        return front
    from hwnas.supernet import load_supernet
    from hwnas.supernet.evaluate import evaluate_candidates

    train, val = (data or search_data(cfg)).splits("train", "val")
    net, _ = load_supernet(cfg.space, cfg.checkpoint, allow_random=False)
    return evaluate_candidates(front, net, train, val, cfg.final_eval, say)
