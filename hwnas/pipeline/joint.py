"""``hwnas search --joint-precision`` composed: FP32 latency model + per-precision block tables →
quantization-aware accuracy predictor from sensitivities measured on the super-network → joint
evolution → closed loop measuring (arch, policy) pairs on the device → a run directory whose best
pair is exported as a bundle (its ``policy.json`` is the pair's per-block policy).

Stage logic lives in :mod:`hwnas.searching.joint`, :mod:`hwnas.searching.quant_accuracy`,
:mod:`hwnas.latency_models.precision` and :mod:`hwnas.profiling.precision`; this module wires them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hwnas.types import Say
from hwnas.types.quant_arch import QuantArch

CALIBRATION_IMAGES = 128


class PairEvaluator:
    """Accuracy and latency of (arch, policy) pairs on a device: each subnet extracted from the trained
    super-network (BN recalibrated) once, quantized by the device's quantizer under the pair's policy."""

    def __init__(self, space: str, device, checkpoint=None, data=None, val_images: int = 1000,
                 seed: int = 0, test_images: int | None = None) -> None:
        from hwnas.datasets import open_dataset
        from hwnas.exporting.evaluate import DeviceEvaluator

        self.space, self.device, self.checkpoint = space, device, checkpoint
        self.ds = open_dataset(data, space)  # a name, a folder, or a dataset already open
        self.train, val, self.test = self.ds.splits("train", "val", "test")
        self.val = val.sample(val_images, seed)
        self.test = self.test if test_images is None else self.test.sample(test_images, seed)
        self.work = Path(tempfile.mkdtemp(prefix="hwnas-joint-"))
        self._fp32: dict[str, tuple[Path, Any]] = {}
        self.scale: dict[str, float] = {}
        self._ev = {}
        self._make_ev = DeviceEvaluator

    def evaluator(self, split_name: str, r: int):
        key = (split_name, r)
        if key not in self._ev:
            self._ev[key] = self._make_ev(self.device, self.val if split_name == "val" else self.test, r, self.scale)
        return self._ev[key]

    def fp32(self, arch) -> tuple[Path, Any]:
        from hwnas.exporting.build import fp32_subnet

        k = arch.key()
        if k not in self._fp32:
            d = self.work / k
            d.mkdir(parents=True, exist_ok=True)
            path, _ = fp32_subnet(arch, self.checkpoint, self.train, d)
            q = self.device.quantizer(path, d, self.train.calibration_inputs(arch.r, CALIBRATION_IMAGES))
            self._fp32[k] = (path, q)
        return self._fp32[k]

    def model(self, pair: QuantArch) -> Path:
        path, q = self.fp32(pair.arch)
        if not pair.int8_slots():
            return path
        out = path.parent / f"{pair.key()}{q.suffix}"
        if not out.exists():
            from hwnas.profiling.precision import quiet_ort

            with quiet_ort():
                q.build(pair.policy(), out)
        return out

    def accuracy(self, pair: QuantArch, split: str = "val") -> float:
        return self.evaluator(split, pair.r).accuracy(self.model(pair))

    def confidence(self, pair: QuantArch) -> float:
        """Mean probability (%) the model gives the true class over the validation images: top-1's
        continuous counterpart, which resolves drops far below one image (INT8 drops of single blocks
        here are 0.0-0.2 pt of top-1, within the noise of a few thousand images)."""
        import numpy as np

        labels: list = []

        def inputs():
            for x, y in self.val.batches(pair.r):
                labels.append(y)
                yield x

        probs = []
        for o in self.device.outputs(self.model(pair), inputs()):
            z = np.exp(o - o.max(1, keepdims=True))
            probs.append(z / z.sum(1, keepdims=True))
        p, y = np.concatenate(probs), np.concatenate(labels)
        return float(p[np.arange(len(y)), y].mean() * 100.0)

    def latency(self, pair: QuantArch) -> float:
        return self.evaluator("val", pair.r).latency(self.model(pair))

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def measure_sensitivity(pe: PairEvaluator, n_subnets: int, resolution: int, seed: int = 0,
                        say: Say | None = None) -> list[dict]:
    """Accuracy drop (points of :meth:`PairEvaluator.confidence`, the continuous form of top-1) of each
    block slot quantized alone and of a few mixed policies, on ``n_subnets`` full-depth subnets (records)."""
    from hwnas.searching.quant_accuracy import sensitivity_plan

    records, base = [], {}
    for p in sensitivity_plan(pe.space, n_subnets, resolution, seed):
        top1 = pe.confidence(p)
        if not p.int8_slots():
            base[p.arch.key()] = top1
            continue
        records.append({"pair": p.to_dict(), "fp32_top1": base[p.arch.key()], "top1": top1})
        say and say(f"sensitivity: {p.to_str()}: {base[p.arch.key()] - top1:+.2f} pt")
    return records


def quant_predictor(space: str, pe: PairEvaluator, fp32, sensitivity: Path | None = None,
                    n_subnets: int = 3, resolution: int | None = None, out: Path | None = None, say: Say | None = None):
    """The quantization-aware predictor over the FP32 predictor ``fp32``: from ``sensitivity`` (a saved
    file) or measured now (saved at ``out``)."""
    from hwnas.searching.quant_accuracy import QuantAccuracyPredictor
    from hwnas.supernet.spaces import get_space

    if sensitivity is not None:
        return QuantAccuracyPredictor.load(sensitivity, fp32)
    r = resolution or max(get_space(space).resolutions)
    qp = QuantAccuracyPredictor(fp32).fit(measure_sensitivity(pe, n_subnets, r, say=say))
    if out is not None:
        qp.save(out)
    return qp


def pair_latency(fp32_model, fp32_profile, int8_profile, space: str):
    """The pair latency model: FP32 end-to-end model + INT8−FP32 block deltas of the two profiles, with the
    conversions at precision changes priced from the subnets both measured end to end."""
    from hwnas.latency_models.precision import PrecisionDelta, PrecisionLatency

    return PrecisionLatency(fp32_model, PrecisionDelta.from_profiles(fp32_profile, int8_profile, space))


def search_pairs(space: str, qp, lat, budget_ms: float, measure, ev, resolutions, precision: bool = True,
                 top_k: int = 3, max_measurements: int = 12, say: Say | None = None, rounds: int = 2):
    """Joint (or FP32-only, ``precision=False``) evolution, then the closed loop on the device; in
    later rounds the evolution runs again on the latency model rescaled to what was measured (a
    block table summed in isolation overestimates a fused subnet), spending what is left of
    ``max_measurements``. Returns every measured pair, those meeting the budget first."""
    from dataclasses import replace

    from hwnas.searching.joint import evolve, verify

    state, done = {"lat": lat}, []

    def rescore(pairs, measured):
        state["lat"] = lat.rescaled([v.pair for v in done] + list(pairs), [v.measured_ms for v in done] + list(measured))
        return state["lat"].predict

    for rnd in range(rounds):
        left = max_measurements - len(done)
        if left <= 0:
            break
        seen = {v.pair.key() for v in done}
        ranked = [x for x in evolve(space, qp.predict, lambda ps: state["lat"].predict(ps), budget_ms,
                                    replace(ev, seed=ev.seed + 1000 * rnd), resolutions, precision)
                  if x[0].key() not in seen]
        k = top_k if rnd == rounds - 1 else max(1, top_k // 2)
        done += verify(ranked, measure, budget_ms, k, left if rnd == rounds - 1 else max(1, left // 2), rescore, say)
        state["lat"] = lat.rescaled([v.pair for v in done], [v.measured_ms for v in done])
    ok = sorted((v for v in done if v.meets_budget), key=lambda v: -v.predicted_top1)
    return ok + [v for v in done if not v.meets_budget]


def export_pair(pe: PairEvaluator, pair: QuantArch, out: Path, overwrite: bool = False,
                lineage: dict | None = None, say: Say | None = None):
    """A deployment bundle of ``pair`` (its per-block policy in ``policy.json``), measured on the test split."""
    from hwnas.exporting.build import Chosen, Plan, write_bundle
    from hwnas.exporting.evaluate import DeviceEvaluator
    from hwnas.profiling.session import reference_latencies
    from hwnas.types import utc_now

    fp32, q = pe.fp32(pair.arch)
    scale = pe.scale or reference_latencies(pe.device)
    ev = DeviceEvaluator(pe.device, pe.test, pair.r, scale)
    fp32_top1, fp32_ms = ev.accuracy(fp32), ev.latency(fp32)
    chosen = Chosen(pe.model(pair), pair.policy(), [], q.weighted_layers() if pair.int8_slots() else [])
    plan = Plan(pe.device, chosen, ev, fp32_top1, fp32_ms, {}, f"milliseconds of {pe.device.name} at {utc_now()}")
    bundle = write_bundle(out, overwrite, pair.arch, plan, fp32, "mixed", 0.0, "shipped", pe.ds.describe(), pe.test,
                          {"joint_pair": pair.to_dict(), **(lineage or {})})
    say and say(f"bundle of {pair.to_str()} written to {bundle.path}")
    return bundle


def pair_from_bundle(path: Path) -> QuantArch:
    """The (arch, policy) pair a bundle deploys, read back from its manifest and ``policy.json``."""
    from hwnas.exporting.bundle import DeploymentBundle
    from hwnas.types import ArchConfig, PrecisionPolicy

    b = DeploymentBundle.open(path)  # refuses a bundle whose manifest or files were edited
    m = b.manifest
    return QuantArch.from_policy(ArchConfig.parse(m.arch, m.space), PrecisionPolicy.load(b.file(m.policy)))


def run(cfg, progress: Say | None = None):
    """``hwnas search --joint-precision``: a run directory (``front.json`` of the verified pairs,
    ``joint.json`` with their policies, ``sensitivity.json``) and a bundle of the best pair."""
    from hwnas.datasets import open_dataset
    from hwnas.pipeline.jobs import profile_device, quiet_torch
    from hwnas.pipeline.predictors import device_latency_model
    from hwnas.profiles import DeviceProfile
    from hwnas.searching.accuracy import load_accuracy_predictor
    from hwnas.searching.joint import Evolution

    say = progress or (lambda msg: None)
    check_joint(cfg)
    data = open_dataset(cfg.data, cfg.space, cfg.data_options)
    fp32_predictor = load_accuracy_predictor(cfg.space, cfg.accuracy_predictor, data)  # refused before measuring
    source, int8 = DeviceProfile.open(cfg.profile), DeviceProfile.open(cfg.int8_profile)
    source.check_space(cfg.space)
    dev = profile_device(source, cfg.device, cfg.threads)
    dm = device_latency_model(source, cfg.space, dev, cfg.checkpoint, cfg.latency_model, cfg.calibrate, say)
    lat = pair_latency(dm.model, source, int8, cfg.space)
    fit = lat.delta.edge_fit
    say("INT8 blocks priced from the block tables; conversions: " + (
        f"{fit['k0_ms'] * 1e3:.2f} µs + {fit['k1_ms_per_element'] * 1e6:.3f} ns per element, from {fit['rows']} subnets "
        "measured in both precisions" if "k0_ms" in fit else fit["note"]))
    quiet_torch()
    pe = PairEvaluator(cfg.space, dev, cfg.checkpoint, data, seed=cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        qp = quant_predictor(cfg.space, pe, fp32_predictor, cfg.sensitivity, cfg.sensitivity_subnets,
                             out=out / "sensitivity.json", say=say)
        verified = search_pairs(cfg.space, qp, lat, cfg.latency_budget_ms, pe.latency,
                                Evolution(cfg.pop_size, cfg.generations, seed=cfg.seed), None, True, cfg.top_k,
                                cfg.max_measurements, say)
        front = save_joint_run(cfg, verified, dev, dm)
        if verified and verified[0].meets_budget:
            export_pair(pe, verified[0].pair, out / "bundle", overwrite=True,
                        lineage={"parent": {"kind": "run", "path": str(out)}}, say=say)
    finally:
        pe.close()
    return front


def check_joint(cfg) -> None:
    from hwnas.errors import ConfigError

    if cfg.latency_budget_ms is None or cfg.int8_profile is None:
        raise ConfigError("--joint-precision needs --latency-budget-ms MS and --int8-profile DIR (a profile made "
                          "with 'hwnas profile --precision int8 --space SPACE --out DIR').")
    if set(cfg.objectives) != {"accuracy", "latency"} or cfg.memory_budget_mb or cfg.energy_budget_mj:
        raise ConfigError("--joint-precision searches accuracy and latency only: drop the other objectives/budgets.")


def save_joint_run(cfg, verified, dev, dm):
    """front.json (pairs as candidates: predicted objectives, measured latency) + joint.json (the policies)."""
    from hwnas.fileio import atomic_write_json
    from hwnas.searching.run_dir import save_run
    from hwnas.types import Candidate, ParetoFront

    cands = tuple(Candidate(v.pair.arch, {"accuracy_top1": v.predicted_top1, "latency_ms": v.predicted_ms},
                            v.meets_budget, {"latency_ms": v.measured_ms}) for v in verified)
    best = 0 if verified and verified[0].meets_budget else None
    front = ParetoFront(cfg.space, cands, {"accuracy_top1": "max", "latency_ms": "min"},
                        {"latency_ms": cfg.latency_budget_ms}, best,
                        {"joint_precision": [v.to_dict() for v in verified], "device_id": dev.spec().id(),
                         "calibration": dm.note, "lineage": {"config": cfg.to_dict()}})
    save_run(cfg.out, front, cfg.to_dict())
    atomic_write_json(Path(cfg.out) / "joint.json", [{**v.to_dict(), "policy": v.pair.policy().to_dict()}
                                                      for v in verified])
    return front
