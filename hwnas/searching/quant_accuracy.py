"""A quantization-aware accuracy predictor: the FP32 predictor minus learned per-block sensitivities.

Sensitivity is measured on the super-network (APQ's idea, with measured drops instead of a
trained quantization-aware predictor): subnets with every slot active are extracted, and for each
block slot the accuracy drop when only that block is INT8 (the device's own quantizer, real
calibration) is recorded. ``fit`` solves drops ≈ Σ s_slot over every record (ridge, so a slot's
value is the mean of its single-block drops when those are all there is; multi-block records, e.g.
from the closed loop, refine it). ``predict`` = FP32 top-1 − Σ s_slot over the pair's INT8 slots.
Saved as JSON with the records it was fitted on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.types.quant_arch import QuantArch

FORMAT = "hwnas-quant-sensitivity"


def sensitivity_plan(space: str, n_subnets: int, resolution: int, seed: int = 0, mixed: int = 4) -> list[QuantArch]:
    """The pairs to measure: ``n_subnets`` random full-depth subnets at ``resolution``, each with one
    INT8 block per slot, and ``mixed`` random policies with about half the blocks INT8 (single-block
    drops are often below one validation image; drops of many blocks together are not, and the
    ridge fit shares them out over the slots), after the FP32 subnet itself."""
    from hwnas.supernet.spaces import get_space

    sp = get_space(space)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_subnets):
        a = sp.sample(rng, [resolution])
        a = sp.arch(a.ks, a.e, max(sp.depth_choices), resolution)
        out.append(QuantArch.fp32(a))
        out += [QuantArch(a, tuple(i == s for i in range(sp.n_slots))) for s in range(sp.n_slots)]
        out += [QuantArch(a, tuple(rng.random(sp.n_slots) < 0.5)) for _ in range(mixed)]
    return out


class QuantAccuracyPredictor:
    """``predict(qarchs)``: top-1 (%) of each pair = FP32 prediction − summed slot sensitivities."""

    def __init__(self, fp32_predictor, alpha: float = 0.1) -> None:
        self.fp32_predictor, self.alpha = fp32_predictor, float(alpha)

    def fit(self, records: Sequence[dict[str, Any]]) -> QuantAccuracyPredictor:
        """``records``: ``{"pair": QuantArch.to_dict(), "fp32_top1": .., "top1": ..}`` measured drops."""
        if not records:
            raise ConfigError("The sensitivity predictor needs measured records (none given).")
        pairs = [QuantArch.from_dict(r["pair"]) for r in records]
        n = len(pairs[0].int8)
        X = np.array([[float(b) for b in p.int8] for p in pairs])
        y = np.array([float(r["fp32_top1"]) - float(r["top1"]) for r in records])
        # quantizing a block does not make a model better: a negative fit is measurement noise
        self.sensitivity_ = np.maximum(0.0, np.linalg.solve(X.T @ X + self.alpha * np.eye(n), X.T @ y))
        self.space_, self.records_ = pairs[0].space, list(records)
        return self

    def drop(self, qarchs: Sequence[QuantArch]) -> np.ndarray:
        return np.array([float(self.sensitivity_[q.int8_slots()].sum()) for q in qarchs])

    def predict(self, qarchs: Sequence[QuantArch]) -> np.ndarray:
        base = np.asarray(self.fp32_predictor.predict([q.arch for q in qarchs]), dtype=float)
        return base - self.drop(qarchs)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "space": self.space_, "alpha": self.alpha,
                "sensitivity_pts": [float(x) for x in self.sensitivity_], "records": self.records_}

    def save(self, path: str | os.PathLike) -> Path:
        from hwnas.fileio import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, fp32_predictor) -> QuantAccuracyPredictor:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"Cannot read sensitivities '{path}' ({exc}); measure them again.") from None
        if d.get("format") != FORMAT:
            raise ConfigError(f"'{path}' is not an hwnas sensitivity file.")
        self = cls(fp32_predictor, d["alpha"])
        self.space_, self.records_ = d["space"], d["records"]
        self.sensitivity_ = np.array(d["sensitivity_pts"], dtype=float)
        return self
