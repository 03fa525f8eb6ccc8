"""The only module that composes stages (super-network → ONNX → device → profile → models).

Each job has its own clearly separated section of functions; the CLI and benchmarks call them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# =========================================================================== profiling a device


def layer_onnx_builder(batch_size: int = 1) -> Callable[[Any, Path], Path]:
    """``build(layer_spec, path)``: one layer as a standalone ONNX model (block/op table)."""

    def build(spec, path):
        from hwnas.exporting.onnx_export import export_onnx
        from hwnas.supernet.static import build_layer

        return export_onnx(build_layer(spec), (batch_size, spec.in_ch, spec.in_hw, spec.in_hw), path)

    return build


def subnet_onnx_builder(space: str, checkpoint: str | os.PathLike | None = None,
                        batch_size: int = 1) -> tuple[Callable[[Any, Path], Path], str]:
    """``(build(arch, path), weights source)``: subnets of ``space`` exported to ONNX.

    Weights: ``checkpoint``, else the ones shipped for the space, else a fresh initialisation
    (latency, memory and energy do not depend on the weights' values).
    """
    from hwnas.exporting.onnx_export import export_subnet
    from hwnas.supernet import load_supernet

    net, source = load_supernet(space, checkpoint)

    def build(arch, path):
        return export_subnet(net, arch, path, batch_size)

    return build, source


def quiet_torch() -> None:
    """One torch thread while profiling: torch's idle worker threads would otherwise spin on the
    cores the measured runtime uses right after each export."""
    import torch

    torch.set_num_threads(1)


def open_profile_for_device(out: str | os.PathLike, device_name: str, device) -> tuple[Any, bool]:
    """Open the profile at ``out`` or create it for ``device``; returns (profile, created).

    An existing profile must have been made with the same device backend (its exact settings
    are checked when measuring starts); a non-empty directory that is not a profile is refused.
    """
    from hwnas.devices.base import host_facts
    from hwnas.errors import ProfileError
    from hwnas.profiles import DeviceProfile
    from hwnas.profiles.schema import DEVICE_FILE

    out = Path(out)
    if (out / DEVICE_FILE).exists():
        prof = DeviceProfile.open(out)
        if prof.device_name != device_name:
            raise ProfileError(f"Profile '{out}' is for device '{prof.device_name}', not '{device_name}'. "
                               "Use another --out directory.")
        return prof, False
    return DeviceProfile.create(out, device_name, device.spec(), host_facts(), device.options), True


def parse_option(value: Any) -> Any:
    """A device option as stored (a string) back to its value: ``"0"`` → 0, ``"true"`` → True."""
    import json

    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def profile_device(out: str | os.PathLike, spaces: Sequence[str], device: str = "onnxruntime-cpu",
                   threads: int = 1, device_options: dict[str, Any] | None = None,
                   checkpoint: str | os.PathLike | None = None, progress=None, **settings: Any) -> dict[str, Any]:
    """Profile ``device`` for each of ``spaces`` into the profile directory ``out``.

    ``settings`` go to :class:`~hwnas.profiling.profiler.ProfileSettings` (samples, reference_set,
    repeats, op_resolutions, ops, seed, kernel_times, energy, model_timing, op_timing). Resumable:
    running it again measures only what is missing. Returns per-space counts and timings.
    """
    from hwnas.devices import get_device
    from hwnas.profiling.profiler import ProfileSettings, run_profile

    dev = get_device(device, threads=threads, **(device_options or {}))
    plans = [ProfileSettings(space=s, **settings) for s in spaces]  # validate everything before measuring
    prof, created = open_profile_for_device(out, device, dev)
    quiet_torch()
    results: dict[str, Any] = {"profile": str(out), "created": created, "spaces": {}}
    for ps in plans:
        build_model, source = subnet_onnx_builder(ps.space, checkpoint, dev.batch_size)
        res = run_profile(prof, dev, ps, build_model, layer_onnx_builder(dev.batch_size) if ps.ops else None,
                          progress=(lambda d, a, b, s=ps.space: progress(f"{s}: {d}", a, b)) if progress else None,
                          note=f"weights: {source}")
        res["weights"] = source
        results["spaces"][ps.space] = res
    results["quality"] = prof.meta.get("quality", {})
    results["energy"] = prof.meta.get("energy", {})
    return results


def measure_archs_on_device(profile: str | os.PathLike, archs, kind: str = "search", device: str | None = None,
                            checkpoint: str | os.PathLike | None = None, progress=None, **kwargs: Any):
    """Measure ``archs`` end to end on the profile's own device and append them (closed loop)."""
    from hwnas.devices import get_device
    from hwnas.profiles import DeviceProfile
    from hwnas.profiling import measure_archs

    prof = DeviceProfile.open(profile)
    spec = prof.spec
    dev = get_device(device or prof.device_name, threads=spec.threads, batch_size=spec.batch_size,
                     precision=spec.precision, **{k: parse_option(v) for k, v in prof.device_options.items()})
    quiet_torch()
    builders = {}
    for sp in {a.space for a in archs}:
        builders[sp] = subnet_onnx_builder(sp, checkpoint, dev.batch_size)[0]
    return measure_archs(prof, archs, lambda a, p: builders[a.space](a, p), dev, kind=kind, progress=progress,
                         **kwargs)


# =========================================================================== exporting to a device


def export_bundle(arch, out: str | os.PathLike, device: str = "onnxruntime-cpu", precision: str = "mixed",
                  max_accuracy_drop: float = 0.5, checkpoint: str | os.PathLike | None = None, threads: int = 1,
                  predicted: dict[str, float] | None = None, data_dir: str | os.PathLike | None = None,
                  overwrite: bool = False, source_run: str | None = None, progress=None,
                  profile: str | os.PathLike | None = None) -> dict[str, Any]:
    """Subnet → BN-recalibrated ONNX → quantized under a (searched) precision policy → compiled for the
    device → measured there → a deployment bundle at ``out``. Returns the manifest.

    ``precision``: ``fp32``, ``int8`` (every layer) or ``mixed`` (searched per layer group under
    ``max_accuracy_drop`` points of top-1 on the validation split). Accuracy is reported on the
    Fashion-MNIST test set; latency is measured on ``device`` interleaved with a reference model.
    """
    import json
    import tempfile

    from hwnas.devices import get_device
    from hwnas.devices.base import host_facts
    from hwnas.devices.measure import ReferenceSet
    from hwnas.devices.onnx_memory import analytic_memory
    from hwnas.errors import ConfigError
    from hwnas.exporting import quantize_ort
    from hwnas.exporting.bundle import BundleWriter
    from hwnas.exporting.compile import compile_for
    from hwnas.exporting.evaluate import DeviceEvaluator
    from hwnas.exporting.mixed import group_costs, layer_groups, search_policy
    from hwnas.exporting.onnx_export import export_onnx
    from hwnas.exporting.policy import PrecisionPolicy
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset
    from hwnas.supernet.evaluate import recalibrate_bn
    from hwnas.supernet.extract import extract

    if precision not in ("fp32", "int8", "mixed"):
        raise ConfigError(f"--precision must be fp32, int8 or mixed, got '{precision}'.")
    if max_accuracy_drop < 0:
        raise ConfigError(f"--max-accuracy-drop must be >= 0 points, got {max_accuracy_drop}.")
    say = progress or (lambda msg: None)
    dev = get_device(device, threads=threads)
    BundleWriter(out, overwrite)  # refuse an existing bundle before any work
    train, val, test = get_dataset(data_dir, arch.space).splits("train", "val", "test")
    net, source = load_supernet(arch.space, checkpoint, allow_random=False)
    sub = extract(net, arch)
    recalibrate_bn(sub, train, arch)
    quiet_torch()
    work = Path(tempfile.mkdtemp(prefix="hwnas-export-"))
    fp32 = export_onnx(sub, net.space.input_shape(arch), work / "model.fp32.onnx")
    say(f"exported {arch.to_str()} (weights: {source})")

    def inputs(ds, n=None):
        return ds.inputs(arch.r, n)

    refs = ReferenceSet(dev)
    canonical, scale_note = profile_scale(profile, dev)
    if profile is not None and not canonical:  # predictions for another device/settings do not apply here
        predicted = {k: v for k, v in (predicted or {}).items() if k not in ("latency_ms", "memory_mb", "energy_mj")}
        say(f"the search's device predictions are for the device of {profile}, not {dev.name} with these "
            "settings: this bundle reports measured latency only")
    ev = DeviceEvaluator(dev, refs, inputs(test), test.labels, canonical=dict(canonical))
    sens = DeviceEvaluator(dev, refs, inputs(val, 2000), val.labels[:2000], canonical=ev.canonical)
    fp32_test = ev.accuracy(fp32)
    fp32_ms = ev.latency(fp32)
    say(f"fp32: top-1 {fp32_test:.2f} % (test), {fp32_ms:.4f} ms")
    deployed, policy, trials = fp32, PrecisionPolicy.uniform("fp32"), []
    if precision != "fp32":
        calib = inputs(train, 256)
        build, nodes, suffix = _quantizer(dev, fp32, work, calib)
        if precision == "int8":
            policy = PrecisionPolicy.uniform("int8")
            deployed = build(policy, work / f"model.int8{suffix}")
        else:
            groups = layer_groups(nodes)
            fp32_val = sens.accuracy(fp32)
            costs = group_costs(groups, build, sens.accuracy, sens.latency, fp32_val, fp32_ms, work, say)
            policy, trials, chosen = search_policy(groups, costs, max_accuracy_drop, build, sens.accuracy,
                                                   sens.latency, fp32_val, fp32_ms, work, progress=say)
            deployed = chosen if policy.default != "fp32" or policy.rules else fp32
    dep_test = ev.accuracy(deployed) if deployed != fp32 else fp32_test
    with BundleWriter(out, overwrite) as w:
        w.add_file(fp32, "model.fp32.onnx")
        if deployed.suffix == ".xml":  # an OpenVINO IR quantized by NNCF
            w.add_file(deployed, "openvino/model.xml")
            w.add_file(deployed.with_suffix(".bin"), "openvino/model.bin")
            compiled = {"runtime": dev.runtime, "artifact": "openvino/model.xml", "note": "NNCF INT8 IR"}
        else:
            w.add_file(deployed, "model.onnx")
            compiled = compile_for(dev, w.dir / "model.onnx", w.dir)
        policy.save(w.dir / "policy.json")
        final = ev.measure(w.dir / compiled["artifact"])
        mem = analytic_memory(w.dir / ("model.onnx" if (w.dir / "model.onnx").exists() else "model.fp32.onnx"))
        manifest = {
            "arch": arch.to_str(), "arch_key": arch.key(), "space": arch.space, "weights": source,
            "source_run": source_run,
            "precision": precision, "policy": "policy.json",
            "policy_summary": policy.summary(quantize_ort.quantizable_layers(fp32)),
            "deployed": compiled["artifact"], "compiled": compiled,
            "preprocess": {**test.preprocessing(arch.r), "input": "input"},
            "device": {"name": dev.name, **dev.spec().to_dict()}, "host": host_facts(),
            "accuracy": {"split": "test", "images": int(len(test)), "fp32_top1": fp32_test,
                         "deployed_top1": dep_test, "drop_pts": fp32_test - dep_test,
                         "max_accuracy_drop": max_accuracy_drop if precision == "mixed" else None},
            "latency": {"predicted_ms": (predicted or {}).get("latency_ms"), "fp32_ms": fp32_ms,
                        "measured_ms": final["normalized_ms"], "raw_median_ms": final["median_ms"],
                        "raw_min_ms": final["min_ms"], "reference": final["reference"],
                        "reference_ms": ev.canonical[final["reference"]], "speedup_vs_fp32": fp32_ms / final["normalized_ms"],
                        "scale": scale_note},
            "memory": {"peak_rss_mb": final["peak_memory_mb"], "analytic_mb": mem.to_dict(),
                       "predicted_mb": (predicted or {}).get("memory_mb")},
            "policy_search": trials and [t.__dict__ for t in trials],
        }
        path = w.finish(manifest)
    say(f"bundle written to {path}")
    return json.loads((Path(out) / "manifest.json").read_text())


def profile_scale(profile: str | os.PathLike | None, dev) -> tuple[dict[str, float], str]:
    """``(canonical reference latencies, note)`` an export measures on: the profile's when ``profile``
    was measured on this device with these settings (so the bundle's figures sit on the scale of the
    search's predictions and closed-loop measurements), else none — the export's own first reference
    measurement becomes the scale.
    """
    if profile is None:
        return {}, "reference-normalised on this export's own scale"
    from hwnas.profiles import DeviceProfile

    prof = DeviceProfile.open(profile)
    if prof.device_id == dev.spec().id() and prof.reference_ms_by_name:
        return prof.reference_ms_by_name, f"reference-normalised on the scale of profile {profile}"
    return {}, f"reference-normalised on this export's own scale (profile {profile} was measured on another device)"


def _quantizer(dev, fp32: Path, work: Path, calib):
    """(build(policy, path) → quantized model, node names a policy addresses, file suffix) for the device's runtime."""
    from hwnas.errors import ConfigError
    from hwnas.exporting import quantize_ort

    if dev.runtime == "onnxruntime":
        pre = quantize_ort.preprocess(fp32, work / "model.pre.onnx")
        return (lambda pol, path: quantize_ort.quantize(pre, path, pol, calib),
                [n for n, _ in quantize_ort.node_names(pre)], ".onnx")
    if dev.runtime == "openvino":
        from hwnas.exporting import quantize_openvino

        return (lambda pol, path: quantize_openvino.quantize(fp32, Path(path).with_suffix(".xml"), pol, calib),
                [n for n, _ in quantize_ort.node_names(fp32)], ".xml")
    raise ConfigError(f"INT8 export is not available for '{dev.name}' (ONNX Runtime and OpenVINO are); "
                      "export --precision fp32 for it.")


def verify_bundle(bundle: str | os.PathLike, device: str | None = None, latency_tolerance: float = 0.15,
                  accuracy_tolerance: float = 0.1, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check hashes, then re-measure accuracy and latency on the device and compare with the manifest."""
    from hwnas.devices import get_device
    from hwnas.devices.measure import ReferenceSet
    from hwnas.exporting.bundle import check_hashes, read_manifest
    from hwnas.exporting.evaluate import DeviceEvaluator
    from hwnas.datasets import get_dataset

    b = Path(bundle)
    m = read_manifest(b)
    check_hashes(b, m)
    d = m["device"]
    dev = get_device(device or d["name"], threads=d["threads"])
    test = get_dataset(data_dir, m["space"]).split("test")
    pp = m["preprocess"]
    x = test.inputs(pp["resolution"])
    lat = m["latency"]
    ev = DeviceEvaluator(dev, ReferenceSet(dev), x, test.labels, canonical={lat["reference"]: lat["reference_ms"]})
    acc = ev.accuracy(b / m["deployed"])
    meas = ev.measure(b / m["deployed"], reference=lat["reference"])
    lat_err = meas["normalized_ms"] / lat["measured_ms"] - 1.0
    acc_err = acc - m["accuracy"]["deployed_top1"]
    checks = {
        "hashes": True,
        "accuracy": {"manifest": m["accuracy"]["deployed_top1"], "measured": acc, "diff_pts": acc_err,
                     "ok": abs(acc_err) <= accuracy_tolerance},
        "latency": {"manifest_ms": lat["measured_ms"], "measured_ms": meas["normalized_ms"],
                    "raw_median_ms": meas["median_ms"], "rel_diff": lat_err, "ok": abs(lat_err) <= latency_tolerance},
    }
    checks["ok"] = checks["accuracy"]["ok"] and checks["latency"]["ok"]
    return checks


# =========================================================================== searching under a budget

OBJECTIVE_NAMES = {"accuracy": "accuracy_top1", "latency": "latency_ms", "memory": "memory_mb",
                   "energy": "energy_mj", "macs": "macs_m", "params": "params_m"}
MEASURED_COLUMNS = {"latency_ms": "latency_ms", "memory_mb": "peak_memory_mb", "energy_mj": "energy_mj"}


def device_predictor(prof, space: str, target: str, model: str | None = None, say=None):
    """The profile's stored predictor for ``target``; fits and stores one (hybrid, else e2e) if none exists."""
    from hwnas.errors import ProfileError
    from hwnas.latency_models import fit_latency_model, load_latency_model

    try:
        return load_latency_model(prof, model, target=target, space=space)
    except ProfileError as exc:
        if "stores no fitted" not in str(exc):
            raise
    last = None
    for name in ([model] if model else ["hybrid", "e2e"]):
        try:
            m = fit_latency_model(prof, name, target=target, space=space)
        except ProfileError as exc:
            last = exc
            continue
        prof.save_model(m)
        if say:
            say(f"fitted a '{name}' {target} model on the profile (none was stored)")
        return m
    raise last  # type: ignore[misc]


def reachable_range(space, predictor, resolutions, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Predicted (min, max) over the smallest/largest subnets and ``n`` random ones."""
    import numpy as np

    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    rng = np.random.default_rng(seed)
    archs = [sp.min_arch(min(resolutions)), sp.max_arch(max(resolutions))]
    archs += [sp.sample(rng, resolutions) for _ in range(n)]
    p = np.asarray(predictor.predict(archs), dtype=float)
    return float(p.min()), float(p.max())


def search_under_budget(space: str, profile: str | os.PathLike, out: str | os.PathLike,
                        latency_budget_ms: float | None = None, memory_budget_mb: float | None = None,
                        energy_budget_mj: float | None = None,
                        objectives: Sequence[str] = ("accuracy", "latency"), seed: int = 0,
                        generations: int = 40, pop_size: int = 60, closed_loop: bool = True, top_k: int = 3,
                        max_measurements: int = 12, latency_model: str | None = None,
                        accuracy_predictor: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
                        final_eval: int = 3, data_dir: str | os.PathLike | None = None, progress=None) -> dict[str, Any]:
    """Search ``space`` under budgets with predictors from ``profile``; re-measure on the device.

    Writes ``front.json`` (ParetoFront), ``front.parquet``, ``checks.parquet`` (predicted vs
    measured), ``search.json`` and Pareto plots into ``out``. Returns a summary.
    """
    import numpy as np
    import pandas as pd

    from hwnas.errors import BudgetError, ConfigError
    from hwnas.fileio import atomic_write_json
    from hwnas.profiles import DeviceProfile
    from hwnas.searching import objectives as O
    from hwnas.searching.accuracy import load_accuracy_predictor
    from hwnas.searching.algorithms import Termination
    from hwnas.searching.closed_loop import closed_loop as run_loop
    from hwnas.searching.front import plot_front
    from hwnas.supernet.spaces import get_space

    say = progress or (lambda msg: None)
    sp = get_space(space)
    unknown = [o for o in objectives if o not in OBJECTIVE_NAMES]
    if unknown or "accuracy" not in objectives:
        raise ConfigError(f"--objectives must include 'accuracy' and only use {', '.join(OBJECTIVE_NAMES)}; "
                          f"got {', '.join(objectives)}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prof = DeviceProfile.open(profile)
    prof.check_space(space)
    res = list(sp.resolutions)  # end-to-end samples span them all; the block table interpolates
    budgets = {k: v for k, v in (("latency_ms", latency_budget_ms), ("memory_mb", memory_budget_mb),
                                 ("energy_mj", energy_budget_mj)) if v is not None}
    needed = {OBJECTIVE_NAMES[o] for o in objectives if o in ("latency", "memory", "energy")} | set(budgets)
    predictors = {n: device_predictor(prof, space, n, latency_model if n == "latency_ms" else None, say)
                  for n in sorted(needed)}
    for n, b in budgets.items():
        lo, hi = reachable_range(space, predictors[n], res)
        if b < lo:
            raise BudgetError(f"The smallest subnet of '{space}' is predicted at {lo:.4g} {n.split('_')[-1]} on this "
                              f"device; budgets from {lo:.4g} to {hi:.4g} are reachable (asked: {b:g}).")
    acc_pred = load_accuracy_predictor(space, accuracy_predictor)
    acc = O.from_predictor("accuracy_top1", acc_pred, "max")
    extra = [O.macs(space) if o == "macs" else O.params(space) for o in objectives if o in ("macs", "params")]
    # objectives the user asked for but that carry no budget still shape the front
    loop_preds = {n: p for n, p in predictors.items()}

    def measure(archs):
        rows = measure_archs_on_device(profile, archs, kind="search", checkpoint=checkpoint)
        return [{n: float(r[c]) for n, c in MEASURED_COLUMNS.items() if n in loop_preds and r.get(c) is not None
                 and not pd.isna(r.get(c))} for r in rows]

    def refit(archs, measured):
        p2 = DeviceProfile.open(profile)
        new = {}
        for n, old in loop_preds.items():
            from hwnas.latency_models import fit_latency_model

            m = fit_latency_model(p2, old.name, target=n, space=space)
            p2.save_model(m)
            new[n] = m
        say(f"refitted {', '.join(new)} on {len(archs)} new measurements")
        return new

    term = Termination(generations=generations)
    if closed_loop:
        rep = run_loop(space, acc, loop_preds, budgets, measure, refit, extra, term, pop_size, top_k,
                       max_measurements, seed=seed, resolutions=res, progress=say)
        front, checks, met = rep.front, rep.checks, rep.met
    else:
        from hwnas.searching.algorithms import nsga2
        from hwnas.searching.front import build_front
        from hwnas.searching.objectives import Constraint
        from hwnas.searching.problem import ArchProblem

        objs = [acc] + [O.from_predictor(n, p) for n, p in loop_preds.items()] + extra
        by = {o.name: o for o in objs}
        pr = ArchProblem(space, objs, [Constraint(n, by[n].fn, b) for n, b in budgets.items()], res)
        front = build_front(pr, nsga2(pr, term, pop_size, seed))
        checks, met = [], front.best is not None
    # the final candidates evaluated on the super-network itself (BN recalibrated, validation split)
    if final_eval and front.candidates:
        from dataclasses import replace

        from hwnas.supernet import load_supernet
        from hwnas.datasets import get_dataset
        from hwnas.supernet.evaluate import evaluate_subnet

        train, val = get_dataset(data_dir, space).splits("train", "val")
        net, _ = load_supernet(space, checkpoint, allow_random=False)
        order = ([front.best] if front.best is not None else []) + [
            i for i, c in enumerate(front.candidates) if c.measured is not None and i != front.best]
        cands = list(front.candidates)
        for i in order[:final_eval]:
            a = evaluate_subnet(net, cands[i].arch, train, val)
            cands[i] = replace(cands[i], measured={**(cands[i].measured or {}), "accuracy_top1": a})
            say(f"{cands[i].arch.to_str()}: {a:.2f} % on the super-network (predicted "
                f"{cands[i].objectives['accuracy_top1']:.2f} %)")
        front = replace(front, candidates=tuple(cands))
    meta = {**front.meta, "profile": str(profile), "seed": seed, "objectives": list(objectives),
            "resolutions": res, "predictors": {n: getattr(p, "name", type(p).__name__) for n, p in predictors.items()},
            "generations": generations, "pop_size": pop_size}
    from dataclasses import replace as _replace

    front = _replace(front, meta=meta)
    front.save(out / "front.json")
    table = pd.DataFrame([{**{"arch": c.arch.to_str(), "feasible": c.feasible}, **c.objectives,
                           **{f"measured_{k}": v for k, v in (c.measured or {}).items()}} for c in front.candidates])
    table.to_parquet(out / "front.parquet", index=False)
    if checks:
        pd.DataFrame(checks).to_parquet(out / "checks.parquet", index=False)
    plots = []
    for n in [x for x in front.directions if x != "accuracy_top1"]:
        plots.append(str(plot_front(front, n, "accuracy_top1", out / f"pareto_{n}.png", budgets=budgets)))
    summary = {"front": str(out / "front.json"), "candidates": len(front.candidates), "met": met,
               "best": None if front.best is None else front.candidates[front.best].to_dict(), "budgets": budgets,
               "checks": checks, "plots": plots, "rounds": front.meta.get("closed_loop", {}).get("rounds", [])}
    atomic_write_json(out / "search.json", summary)
    return summary


# =========================================================================== the whole job: quickstart

SHIPPED_PROFILES = Path(__file__).resolve().parent / "data" / "profiles"


def matching_shipped_profile(space: str, device) -> Path | None:
    """A shipped profile measured on this very CPU with the same runtime, version and settings, if any."""
    import json

    from hwnas.devices.base import cpu_model

    if not SHIPPED_PROFILES.is_dir():
        return None
    spec_id = device.spec().id()
    for d in sorted(p for p in SHIPPED_PROFILES.iterdir() if (p / "device.json").is_file()):
        meta = json.loads((d / "device.json").read_text())
        if meta.get("spec_id") == spec_id and meta.get("host", {}).get("cpu") == cpu_model() \
                and space in meta.get("spaces", {}):
            return d
    return None


def quickstart(out: str | os.PathLike = "runs/quickstart", space: str = "fmnist-mbv3",
               latency_budget_ms: float | None = None, device: str = "onnxruntime-cpu", threads: int = 1,
               samples: int = 60, reference_set: int = 10, repeats: int = 5, ops: bool = False,
               max_accuracy_drop: float = 0.5, generations: int = 25, pop_size: int = 50, seed: int = 0,
               reuse_shipped: bool = True, progress=None) -> dict[str, Any]:
    """The three jobs end to end on this machine: profile → fit/evaluate → search → export → verify.

    Writes ``out/profile``, ``out/search``, ``out/bundle`` and ``out/report.md`` (+ PNGs).
    Returns the summary table as a dict.
    """
    import shutil
    import time

    import numpy as np

    from hwnas.devices import get_device
    from hwnas.errors import ConfigError
    from hwnas.fileio import atomic_write_json
    from hwnas.latency_models import fit_latency_model
    from hwnas.latency_models.metrics import evaluate_models, plot_predictions
    from hwnas.profiles import DeviceProfile
    from hwnas.report import write_report
    from hwnas.types import ParetoFront

    say = progress or (lambda msg: None)
    t0 = time.time()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "quickstart.json").exists() \
            and not (out / "profile").exists():
        raise ConfigError(f"'{out}' exists and is not a quickstart run: choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    dev = get_device(device, threads=threads)
    prof_dir = out / "profile"
    shipped = matching_shipped_profile(space, dev) if reuse_shipped else None
    # 1. profile
    t = time.time()
    if shipped is not None and not prof_dir.exists():
        shutil.copytree(shipped, prof_dir, ignore=shutil.ignore_patterns("*.lock"))
        say(f"[1/5] reusing the shipped profile '{shipped.name}': same CPU ({dev.hardware()}), runtime "
            f"{dev.spec().runtime} {dev.spec().runtime_version}, {threads} thread(s)")
        profile_note = f"shipped profile {shipped.name} (host and runtime match)"
    else:
        say(f"[1/5] profiling this CPU with {device} ({threads} thread(s)): {samples} subnets + "
            f"{reference_set} reference archs{' + block table' if ops else ''}")
        res = profile_device(prof_dir, [space], device, threads, samples=samples, reference_set=reference_set,
                             repeats=repeats, ops=ops, progress=None)
        profile_note = f"quick profile: {res['spaces'][space].get('measured', '?')} measurements"
    timings["profile_s"] = time.time() - t
    prof = DeviceProfile.open(prof_dir)
    # 2. latency model: fit, store, evaluate
    t = time.time()
    name = "hybrid" if ops or not prof.ops_df().empty else "e2e"
    model = fit_latency_model(prof, name, space=space)
    prof.save_model(model)
    ev = evaluate_models(prof, ["flops", name], space=space)
    plots = plot_predictions(ev, out / "latency")
    m = ev["models"][name]
    say(f"[2/5] latency model '{name}': {m['within_10']:.0%} within ±10 %, Kendall τ {m['kendall_tau']:.3f} "
        f"({ev['protocol']})")
    timings["fit_s"] = time.time() - t
    # 3. search
    t = time.time()
    if latency_budget_ms is None:
        lat = prof.models_df(space)["latency_ms"].to_numpy(dtype=float)
        latency_budget_ms = float(np.round(np.percentile(lat, 50), 4))
        say(f"[3/5] no budget given: using the profile's median subnet latency, {latency_budget_ms:g} ms")
    else:
        say(f"[3/5] searching under {latency_budget_ms:g} ms")
    s = search_under_budget(space, prof_dir, out / "search", latency_budget_ms, seed=seed, generations=generations,
                            pop_size=pop_size, latency_model=name, progress=say)
    timings["search_s"] = time.time() - t
    front = ParetoFront.load(out / "search")
    if front.best is None:
        from hwnas.errors import BudgetError

        raise BudgetError(f"No subnet met {latency_budget_ms:g} ms when measured; see {out / 'search'} and try a "
                          "larger --latency-budget-ms.")
    best = front.candidates[front.best]
    # 4. export
    t = time.time()
    say(f"[4/5] exporting {best.arch.to_str()} with a searched mixed-precision policy")
    bundle = out / "bundle"
    manifest = export_bundle(best.arch, bundle, device, "mixed", max_accuracy_drop, threads=threads,
                             predicted=dict(best.objectives), overwrite=True, source_run=f"{out / 'search'} [best]",
                             progress=say, profile=prof_dir)
    timings["export_s"] = time.time() - t
    # 5. verify
    t = time.time()
    check = verify_bundle(bundle)
    timings["verify_s"] = time.time() - t
    say(f"[5/5] verify: hashes ok, accuracy {'ok' if check['accuracy']['ok'] else 'MISMATCH'}, latency "
        f"{'ok' if check['latency']['ok'] else 'MISMATCH'} ({check['latency']['rel_diff']:+.1%})")
    timings["total_s"] = time.time() - t0
    summary = {
        "space": space, "device": device, "threads": threads, "profile": profile_note,
        "arch": best.arch.to_str(), "latency_budget_ms": latency_budget_ms,
        "predicted_ms": best.objectives.get("latency_ms"), "measured_ms": (best.measured or {}).get("latency_ms"),
        "deployed_ms": manifest["latency"]["measured_ms"], "fp32_ms": manifest["latency"]["fp32_ms"],
        "fp32_top1": manifest["accuracy"]["fp32_top1"], "deployed_top1": manifest["accuracy"]["deployed_top1"],
        "precision": manifest["policy_summary"], "peak_memory_mb": manifest["memory"]["peak_rss_mb"],
        "analytic_memory_mb": manifest["memory"]["analytic_mb"], "bundle": str(bundle), "verified": check["ok"],
        "meets_budget_measured": (best.measured or {}).get("latency_ms", np.inf) <= latency_budget_ms,
        "latency_model": {k: m[k] for k in ("within_5", "within_10", "kendall_tau", "mape")},
        "timings_s": timings,
    }
    report = write_report(out, summary, front, ev, plots, manifest)
    summary["report"] = str(report)
    atomic_write_json(out / "quickstart.json", summary)
    return summary
