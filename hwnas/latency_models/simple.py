"""The two baselines: ``flops`` (latency ∝ MACs) and ``lut`` (Once-for-All's additive block table).

``lut`` sums, over a subnet's layers, the latency of each layer measured alone (the profile's
block/op table). Resolutions between the profiled grid points are interpolated linearly in the
layer's output pixels (input pixels for the global pool) between the two nearest measured
sizes of the same block (same channels, kernel, stride, expand, SE, activation, shortcut);
beyond the grid the two nearest points are extrapolated. Like OFA it ignores what happens
between layers (fused activations across blocks, layout changes, framework overhead per
run), which is why it is a baseline and ``hybrid`` corrects it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hwnas.errors import ProfileError
from hwnas.latency_models.base import LatencyModel
from hwnas.latency_models.features import pixels, shape_class
from hwnas.supernet.spaces import LayerSpec, get_space


class FlopsModel(LatencyModel):
    """``y = slope × MACs``, least squares through the origin (the naive baseline)."""

    name = "flops"
    description = "latency proportional to MACs, fitted on the end-to-end samples"
    targets = ("latency_ms", "energy_mj", "peak_memory_mb", "analytic_memory_mb")
    min_samples = 2

    def __init__(self) -> None:
        pass

    def _fit(self, archs, y, profile) -> None:
        sp = get_space(self.space_)
        x = np.array([sp.macs(a) for a in archs], dtype=np.float64) / 1e6
        self.slope_ = float(x @ y / (x @ x))

    def _predict(self, archs):
        sp = get_space(self.space_)
        return self.slope_ * np.array([sp.macs(a) for a in archs], dtype=np.float64) / 1e6

    def _state(self) -> dict[str, Any]:
        return {"slope_per_mmac": self.slope_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.slope_ = float(state["slope_per_mmac"])


def op_table(profile, space: str, target: str = "latency_ms") -> dict[str, list[tuple[float, float]]]:
    """``shape_class → sorted [(pixels, value)]`` from the profile's block/op rows for ``space``."""
    ops = profile.ops_df(space)
    if not len(ops):
        raise ProfileError(f"Profile '{profile.root}' has no block/op table for space '{space}': profile it with "
                           f"'hwnas profile --space {space} --ops --out {profile.root}'.")
    table: dict[str, list[tuple[float, float]]] = {}
    for layer_json, v in zip(ops["layer"], ops[target]):
        if v is None or not np.isfinite(v):
            continue
        layer = LayerSpec(**json.loads(layer_json))
        table.setdefault(shape_class(layer), []).append((pixels(layer), float(v)))
    return {k: sorted(set(v)) for k, v in table.items()}


def interpolate(points: list[tuple[float, float]], px: float) -> float:
    """Linear in pixels between the two nearest measured sizes (extrapolated beyond; one point: ∝ pixels)."""
    if len(points) == 1:
        p0, v0 = points[0]
        return v0 * px / p0 if p0 > 0 else v0
    for p, v in points:
        if p == px:
            return v
    xs = np.array([p for p, _ in points])
    i = int(np.searchsorted(xs, px))
    i = min(max(i, 1), len(points) - 1)
    (p0, v0), (p1, v1) = points[i - 1], points[i]
    return float(v0 + (v1 - v0) * (px - p0) / (p1 - p0))


class LutModel(LatencyModel):
    """Additive block table (Once-for-All): the sum of per-layer latencies measured alone."""

    name = "lut"
    description = "sum of the block/op table (layers measured alone), interpolated across resolutions"
    targets = ("latency_ms",)
    min_samples = 0
    needs_profile = True

    def __init__(self) -> None:
        pass

    def _fit(self, archs, y, profile) -> None:
        self.table_ = op_table(profile, self.space_)
        sp = get_space(self.space_)
        missing = {shape_class(layer) for layer in sp.all_layers(list(sp.resolutions))} - set(self.table_)
        if missing:
            raise ProfileError(f"The block table of '{profile.root}' lacks {len(missing)} layer configurations of "
                               f"'{self.space_}' (e.g. {sorted(missing)[0]}); re-run 'hwnas profile --space "
                               f"{self.space_} --out {profile.root}' to complete it.")

    def layer_values(self, arch) -> list[float]:
        return [interpolate(self.table_[shape_class(layer)], pixels(layer)) for layer in get_space(arch.space).layers(arch)]

    def _predict(self, archs):
        return np.array([sum(self.layer_values(a)) for a in archs])

    def _state(self) -> dict[str, Any]:
        return {"table": {k: [list(p) for p in v] for k, v in self.table_.items()}}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.table_ = {k: [tuple(p) for p in v] for k, v in state["table"].items()}
