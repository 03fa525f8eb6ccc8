"""Build a deployment bundle: subnet → BN-recalibrated FP32 ONNX → quantized under a (searched)
precision policy → compiled for the device → measured there → a bundle with its manifest.

Everything runtime-specific comes from the device: its :meth:`~hwnas.devices.base.Device.quantizer`
writes the quantized variants, its :meth:`~hwnas.devices.base.Device.compile_artifact` the deployed
artifact, and its verbs measure them. Data comes from :func:`hwnas.datasets.open_dataset`:
policy trials are judged on 2,000 validation images, the bundle reports the test split.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.devices.base import Device
from hwnas.errors import ConfigError
from hwnas.exporting.bundle import BundleWriter, DeploymentBundle
from hwnas.exporting.evaluate import DeviceEvaluator
from hwnas.types import (
    AccuracyReport,
    ArchConfig,
    DeploymentManifest,
    LatencyReport,
    MemoryReport,
    PrecisionPolicy,
)

PRECISION_MODES = ("fp32", "int8", "mixed")
SENSITIVITY_IMAGES = 2000
CALIBRATION_IMAGES = 256
DEVICE_FIGURES = ("latency_ms", "memory_mb", "energy_mj")


@dataclass(frozen=True)
class Chosen:
    """The model a bundle deploys, its policy, the trials that chose it and the quantizer's layer names."""

    model: Path
    policy: PrecisionPolicy
    trials: list[dict[str, Any]]
    weighted_layers: list[str]


def build(arch: ArchConfig, out: str | os.PathLike, *, device: Device | Sequence[Device], precision: str = "mixed",
          max_accuracy_drop: float = 0.5, checkpoint: str | os.PathLike | None = None, data=None,
          predicted: dict[str, float] | None = None, predicted_for: str | None = None,
          overwrite: bool = False, lineage: dict[str, Any] | None = None,
          progress: Callable[[str], None] | None = None, float_precisions: Sequence[str] = (),
          mixed_per_runtime: int = 1) -> DeploymentBundle:
    """Export ``arch`` for ``device`` into a bundle at ``out`` (see the module doc).

    ``precision``: ``fp32`` (the float model, in the device's inference precision), ``int8`` (every
    layer) or ``mixed`` (searched per layer group under ``max_accuracy_drop`` points of top-1). Several
    devices: every runtime × policy is tried and the fastest measured within the budget deployed
    (:mod:`hwnas.exporting.choose`; ``float_precisions`` limits the float precisions tried, and
    ``mixed_per_runtime`` the mixed searches). Every latency is this device's milliseconds now: reference
    ratio × the reference latencies measured when the export starts. ``predicted`` figures (the
    search's) are kept only when they were made for this very device (``predicted_for``: its spec id).
    """
    from hwnas.datasets import open_dataset

    if precision not in PRECISION_MODES:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISION_MODES)}, got '{precision}'.")
    if max_accuracy_drop < 0:
        raise ConfigError(f"--max-accuracy-drop must be >= 0 points, got {max_accuracy_drop}.")
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    batch = batch_size(devices)
    say = progress or (lambda msg: None)
    BundleWriter(out, overwrite)  # refuse an existing bundle before any work
    ds = open_dataset(data, arch.space)  # a name, a folder, or a dataset already open
    train, val, test = ds.splits("train", "val", "test")
    work = Path(tempfile.mkdtemp(prefix="hwnas-export-"))
    try:
        fp32, weights = fp32_subnet(arch, checkpoint, train, work, batch)
        say(f"exported {arch.to_str()} (weights: {weights}{f'; batch {batch}' if batch > 1 else ''})")
        calib, sens = train.calibration_inputs(arch.r, CALIBRATION_IMAGES), val.sample(SENSITIVITY_IMAGES)
        if len(devices) > 1:
            plan = plan_choice(devices, arch, fp32, calib, sens, test, precision, max_accuracy_drop, predicted,
                               predicted_for, work, say, float_precisions, mixed_per_runtime)
        else:
            plan = plan_single(devices[0], arch, fp32, calib, sens, test, precision, max_accuracy_drop, predicted,
                               predicted_for, work, say)
        bundle = write_bundle(out, overwrite, arch, plan, fp32, precision, max_accuracy_drop, weights, ds.describe(),
                              test, lineage)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"bundle written to {bundle.path}")
    return bundle


@dataclass(frozen=True)
class Plan:
    """What a bundle deploys and the figures it reports: the device, the chosen model and policy, the
    test-split evaluator on the device's scale, the FP32 top-1 and milliseconds, and the selection
    table when several runtimes were tried."""

    device: Device
    chosen: Chosen
    ev: DeviceEvaluator
    fp32_top1: float
    fp32_ms: float
    predicted: dict
    scale_note: str
    selection: dict[str, Any] | None = None


def plan_single(device: Device, arch: ArchConfig, fp32: Path, calib, sens_split, test, precision: str, budget: float,
                predicted, predicted_for, work: Path, say) -> Plan:
    scale, scale_note, predicted = device_scale(device, predicted, predicted_for, say)
    ev = DeviceEvaluator(device, test, arch.r, scale)
    sens = DeviceEvaluator(device, sens_split, arch.r, ev.scale)
    fp32_top1, fp32_ms = ev.accuracy(fp32), ev.latency(fp32)
    say(f"{device.precision}: top-1 {fp32_top1:.2f} % (test), {fp32_ms:.4f} ms")
    chosen = choose_policy(precision, budget, device, fp32, calib, sens, fp32_ms, work, say)
    return Plan(device, chosen, ev, fp32_top1, fp32_ms, predicted, scale_note)


def plan_choice(devices: Sequence[Device], arch: ArchConfig, fp32: Path, calib, sens_split, test, precision: str,
                budget: float, predicted, predicted_for, work: Path, say, float_precisions, mixed_per_runtime) -> Plan:
    """Every runtime × policy tried (:func:`hwnas.exporting.choose.choose`); the winner on its own scale.
    ``fp32_ms`` is the baseline runtime's FP32 on that scale (the paired speed-up × the winner's ms)."""
    from hwnas.exporting.choose import choose

    evs: dict[tuple[str, str], DeviceEvaluator] = {}

    def evaluator(d: Device) -> DeviceEvaluator:
        return evs.setdefault((d.name, d.precision), DeviceEvaluator(d, sens_split, arch.r, {}))

    ch = choose(devices, fp32, calib, evaluator, budget, precision, work, say, float_precisions, mixed_per_runtime)
    say(f"chose {ch.reason}")
    scale, scale_note, predicted = device_scale(ch.device, predicted, predicted_for, say)
    ev = DeviceEvaluator(ch.device, test, arch.r, scale)
    w = ch.winner
    fp32_top1 = DeviceEvaluator(ch.base_device, test, arch.r).accuracy(fp32)
    fp32_ms = ev.latency(w.model) * w.speedup
    selection = {"devices": [d.name for d in devices], "baseline": ch.baseline, "reason": ch.reason,
                 "budget_pts": budget, "split": "val", "images": len(sens_split), "table": [t.row() for t in ch.table]}
    chosen = Chosen(w.model, w.policy_obj, w.trials, w.weighted_layers)
    return Plan(ch.device, chosen, ev, fp32_top1, fp32_ms, predicted, scale_note, selection)


def batch_size(devices: Sequence[Device]) -> int:
    """The one batch size every device of an export runs (the deployed graph's first dimension); refused
    past the calibration images, which must fill at least one batch."""
    sizes = sorted({d.batch_size for d in devices})
    if len(sizes) > 1:
        raise ConfigError(f"The devices of one export run one batch size; got {', '.join(map(str, sizes))}.")
    if not 1 <= sizes[0] <= CALIBRATION_IMAGES:
        raise ConfigError(f"--batch-size must be 1..{CALIBRATION_IMAGES} (INT8 calibration fills at least one batch "
                          f"of its {CALIBRATION_IMAGES} images), got {sizes[0]}.")
    return sizes[0]


def fp32_subnet(arch: ArchConfig, checkpoint, calib, work: Path, batch: int = 1) -> tuple[Path, str]:
    """The subnet extracted from trained weights, BN recalibrated on ``calib``, as FP32 ONNX with a
    fixed batch of ``batch`` images."""
    from hwnas.exporting.onnx_export import export_onnx
    from hwnas.supernet import load_supernet
    from hwnas.supernet.evaluate import recalibrate_bn
    from hwnas.supernet.extract import extract

    net, source = load_supernet(arch.space, checkpoint, allow_random=False)
    sub = extract(net, arch)
    recalibrate_bn(sub, calib, arch)
    import torch

    torch.set_num_threads(1)  # torch's idle threads would spin on the cores the runtime is measured on
    return export_onnx(sub, net.space.input_shape(arch, batch), work / "model.fp32.onnx"), source


def device_scale(device: Device, predicted: dict[str, float] | None, predicted_for: str | None,
                 say) -> tuple[dict, str, dict]:
    """``(scale, note, predicted)``: the reference latencies on ``device`` now (every figure of the bundle
    is ratio × these: the device's milliseconds, drift within the export cancelled), and the search's
    predictions where they were made for this device with these settings."""
    from hwnas.profiling.session import reference_latencies
    from hwnas.types import utc_now

    predicted = dict(predicted or {})
    if predicted_for is not None and predicted_for != device.spec().id():
        say(f"the search's device predictions were made for another device or settings, not {device.name} as "
            "configured here: this bundle reports measured figures only")
        predicted = {k: v for k, v in predicted.items() if k not in DEVICE_FIGURES}
    return reference_latencies(device), f"milliseconds of {device.name} at {utc_now()}", predicted


def choose_policy(precision: str, budget_pts: float, device: Device, fp32: Path, calibration, sens: DeviceEvaluator,
                  fp32_ms: float, work: Path, say, gain_cfg=None) -> Chosen:
    """The float model as it is, INT8 everywhere, or the mixed policy searched on the device; the layers
    outside INT8 run in the device's inference precision (``device.precision``: fp32, bf16, fp16).
    Group gains are paired in-context measurements against the float model (:mod:`hwnas.exporting.gains`)."""
    from hwnas.exporting.gains import GainConfig, paired_gain
    from hwnas.exporting.mixed import group_costs, layer_groups, search_policy

    other = device.precision
    if precision == "fp32":
        return Chosen(fp32, PrecisionPolicy.uniform(other), [], [])
    work.mkdir(parents=True, exist_ok=True)
    q = device.quantizer(fp32, work, calibration)
    if q is None:
        raise ConfigError(f"INT8 export is not available for '{device.name}' (devices with a quantizer: "
                          f"{', '.join(quantizing_devices())}); export --precision fp32 for it.")
    if precision == "int8":
        policy = PrecisionPolicy("int8", (), {}, other)
        return Chosen(q.build(policy, work / "model.int8"), policy, [], q.weighted_layers())
    groups = layer_groups(q.layers())
    fp32_val = sens.accuracy(fp32)
    cfg = gain_cfg or GainConfig.quick()  # a screen per group; the chosen policy is then measured end to end
    costs = group_costs(groups, q.build, sens.accuracy, sens.latency, fp32_val, fp32_ms, work, say,
                        gain=lambda p: paired_gain(device, fp32, device, p, cfg), other=other)
    policy, trials, model = search_policy(groups, costs, budget_pts, q.build, sens.accuracy, sens.latency, fp32_val,
                                          fp32_ms, work, progress=say, other=other)
    quantized = "int8" in policy.precisions()
    return Chosen(model if quantized else fp32, policy, [t.__dict__ for t in trials], q.weighted_layers())


def quantizing_devices() -> list[str]:
    """Registered devices whose backend brings a quantizer."""
    from hwnas.devices import DEVICES, device_class

    out = []
    for name in DEVICES.list():
        try:
            cls = device_class(name)
        except ImportError:
            continue
        if cls.quantizer is not Device.quantizer:
            out.append(name)
    return out


def write_bundle(out, overwrite: bool, arch: ArchConfig, plan: Plan, fp32: Path, precision: str, budget_pts: float,
                 weights: str, dataset: dict, test, lineage) -> DeploymentBundle:
    from hwnas.devices.onnx_memory import analytic_memory

    device, chosen, ev = plan.device, plan.chosen, plan.ev
    top1 = ev.accuracy(chosen.model) if chosen.model != fp32 or device.precision != "fp32" else plan.fp32_top1
    with BundleWriter(out, overwrite) as w:
        w.add_file(fp32, "model.fp32.onnx")
        add_space_definition(w, arch.space)
        deployed = w.add_file(chosen.model, "model.onnx") if chosen.model.suffix == ".onnx" else chosen.model
        art = device.compile_artifact(deployed if deployed.is_relative_to(w.dir) else chosen.model, w.dir)
        chosen.policy.save(w.dir / "policy.json")
        final = ev.measure(w.dir / art.path)
        ran = ran_vs_policy(device.ran_precisions(w.dir / art.path), chosen.policy)
        mem = analytic_memory(w.dir / ("model.onnx" if (w.dir / "model.onnx").exists() else "model.fp32.onnx"))
        ref = final.ref.reference
        manifest = DeploymentManifest(
            arch=arch.to_str(), arch_key=arch.key(), space=arch.space, weights=weights, precision=precision,
            policy="policy.json", policy_summary=chosen.policy.summary(chosen.weighted_layers or _weighted(fp32)),
            deployed=art.path, compiled={"runtime": art.runtime, "artifact": art.path, "note": art.note},
            preprocess={**test.preprocessing(arch.r), "input": "input"},
            device={"name": device.name, **device.spec().to_dict()}, host=device.host_facts(), dataset=dataset,
            accuracy=AccuracyReport("test", len(test), plan.fp32_top1, top1,
                                    budget_pts if precision == "mixed" or plan.selection else None),
            latency=LatencyReport(final.latency_on(ev.scale), plan.fp32_ms, final.stats.median_ms, final.stats.min_ms,
                                  ref, ev.scale[ref], plan.scale_note, plan.predicted.get("latency_ms")),
            memory=MemoryReport(final.peak_memory_mb, mem.to_dict(), plan.predicted.get("memory_mb")),
            policy_search=chosen.trials, lineage=dict(lineage or {}), policy_label=chosen.policy.label(),
            runtime_precisions=ran, selection=plan.selection or {})
        return w.finish(manifest)


SPACE_FILE = "space.json"


def add_space_definition(w: BundleWriter, space: str) -> None:
    """A space derived for the user's data travels with its bundle (``space.json``): a device that
    verifies or runs the bundle need not have trained it."""
    from hwnas.registry import SPACES

    if SPACES.entry(space).meta.get("derived"):
        from hwnas.fileio import atomic_write_json
        from hwnas.supernet.derive import space_to_dict
        from hwnas.supernet.spaces import get_space

        atomic_write_json(w.dir / SPACE_FILE, {**space_to_dict(get_space(space)),
                                               "derived_from": SPACES.entry(space).meta.get("derived_from", "")})


def ran_vs_policy(ran: dict[str, Any] | None, policy: PrecisionPolicy) -> dict[str, Any]:
    """What ran, with the layers whose runtime precision differs from the policy's (runtimes keep some
    layers float on their own, e.g. a first convolution; the manifest says so rather than hiding it)."""
    from hwnas.devices.precision import mismatches

    if not ran:
        return {}
    return {**ran, "mismatches": mismatches(policy, ran["layers"])}


def _weighted(model: Path) -> list[str]:
    from hwnas.devices.base import weighted_layers

    return weighted_layers(model)
