"""Latency of a (subnet, per-block precision) pair, priced from profiles measured in each precision.

The FP32 end-to-end model of the device (calibrated, fusion-aware: whatever the search uses)
prices the subnet; each INT8 block then adds what the block tables measured in INT8 and in FP32
say it changes: ``latency(pair) = model_fp32(arch) + Σ_{INT8 blocks} (t_int8(block) − t_fp32(block))``.
Both block tables are the profiler's own rows (``ops.parquet``) of two profiles of the same device,
one ``--precision fp32`` and one ``--precision int8`` (its blocks quantized before timing, see
:mod:`hwnas.profiling.precision`), interpolated across resolutions like the additive table. A block
measured alone carries its own Q/DQ at both ends, so the delta is an upper bound on the INT8 cost
where neighbours are INT8 too — the closed loop measures the chosen pairs end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ProfileError
from hwnas.latency_models.features import pixels, shape_class
from hwnas.latency_models.simple import interpolate, op_table
from hwnas.supernet.spaces import get_space


class PrecisionDelta:
    """Per-block latency change INT8 − FP32 (ms), from two block tables of one device."""

    def __init__(self, fp32_table: dict[str, list[tuple[float, float]]],
                 int8_table: dict[str, list[tuple[float, float]]]) -> None:
        self.fp32_table, self.int8_table = fp32_table, int8_table

    @classmethod
    def from_profiles(cls, fp32_profile, int8_profile, space: str) -> PrecisionDelta:
        for prof, want in ((fp32_profile, "fp32"), (int8_profile, "int8")):
            if prof.spec.precision != want:
                raise ProfileError(f"Profile '{prof.root}' was measured in {prof.spec.precision}, not {want}: give "
                                   f"a profile made with 'hwnas profile --precision {want} --space {space}'.")
        return cls(op_table(fp32_profile, space), op_table(int8_profile, space))

    def block_delta_ms(self, layer) -> float:
        key = shape_class(layer)
        if key not in self.fp32_table or key not in self.int8_table:
            raise ProfileError(f"The FP32 and INT8 block tables do not both hold block {layer.key()}: profile both "
                               "precisions at the search's resolutions ('hwnas profile --ops --resolutions ...').")
        px = pixels(layer)
        return interpolate(self.int8_table[key], px) - interpolate(self.fp32_table[key], px)

    def deltas(self, qarch) -> float:
        """Summed INT8 − FP32 change (ms) of ``qarch``'s INT8 blocks."""
        layers = {lyr.index: lyr for lyr in get_space(qarch.space).layers(qarch.arch) if lyr.kind == "mbconv"}
        return float(sum(self.block_delta_ms(layers[s + 1]) for s in qarch.int8_slots()))

    def to_dict(self) -> dict[str, Any]:
        return {"fp32": {k: [list(p) for p in v] for k, v in self.fp32_table.items()},
                "int8": {k: [list(p) for p in v] for k, v in self.int8_table.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrecisionDelta:
        return cls({k: [tuple(p) for p in v] for k, v in d["fp32"].items()},
                   {k: [tuple(p) for p in v] for k, v in d["int8"].items()})


class PrecisionLatency:
    """``predict(qarchs)`` (ms): the FP32 model's prediction of each subnet plus its INT8 blocks' deltas."""

    def __init__(self, fp32_model, delta: PrecisionDelta, scale: float = 1.0) -> None:
        self.fp32_model, self.delta, self.scale = fp32_model, delta, float(scale)

    def predict(self, qarchs: Sequence) -> np.ndarray:
        base = np.asarray(self.fp32_model.predict([q.arch for q in qarchs]), dtype=float)
        return self.scale * (base + np.array([self.delta.deltas(q) for q in qarchs]))

    def rescaled(self, qarchs: Sequence, measured_ms: Sequence[float]) -> PrecisionLatency:
        """The same model scaled to the closed loop's measurements (median measured / predicted)."""
        pred = self.predict(qarchs) / self.scale
        ratio = float(np.median(np.asarray(measured_ms, dtype=float) / np.maximum(pred, 1e-9)))
        return PrecisionLatency(self.fp32_model, self.delta, ratio)

