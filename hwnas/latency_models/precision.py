"""Latency of a (subnet, per-block precision) pair, priced from profiles measured in each precision.

The FP32 end-to-end model of the device (calibrated, fusion-aware: whatever the search uses)
prices the subnet; each INT8 block then adds what the block tables measured in INT8 and in FP32
say it changes: ``latency(pair) = model_fp32(arch) + Σ_{INT8 blocks} (t_int8(block) − t_fp32(block))``.
Both block tables are the profiler's own rows (``ops.parquet``) of two profiles of the same device,
one ``--precision fp32`` and one ``--precision int8`` (its blocks quantized before timing, see
:mod:`hwnas.profiling.precision`), interpolated across resolutions like the additive table.

A block measured alone carries its own conversions at both ends (quantize in, dequantize out), which
an INT8 block between INT8 neighbours does not pay. On OpenVINO at Fashion-MNIST size that is the
whole story: every block alone is slower in INT8 (+2 to +7 µs of 12-22 µs) while the all-INT8 subnet
is 20 % faster than FP32. So the conversions are priced per tensor boundary: a conversion of a
tensor of ``n`` elements costs ``k0 + k1 · n`` ms, fitted (non-negative least squares) on the subnets
both profiles measured end to end — there, ``int8(a) − fp32(a) − Σ_layers Δ_alone`` is minus two
conversions per internal boundary (every layer alone paid one at each end; the INT8 model pays only
at its input and output). A pair then costs

    fp32(arch) + Σ_{INT8 layers} Δ_alone − Σ_{INT8 layers} (c(in) + c(out)) + Σ_{precision changes} c(tensor)
               + n_up · x_up + n_down · x_down

(the INT8 layers: the pair's INT8 blocks, and the head when the last block is INT8 — see
:class:`~hwnas.types.quant_arch.QuantArch`), so an isolated INT8 block costs what it cost alone,
and a run of INT8 layers is credited for the conversions it saves. With fewer than ``MIN_EDGE_ROWS`` shared subnets the conversions are not
priced (``k0 = k1 = 0``: each block's delta as measured alone, an upper bound where neighbours are
INT8 too). A change of precision *inside* the graph costs more than a conversion at a model's
input or output, and not the same both ways: on 24 pairs measured on OpenVINO a change back to
float cost ~42 µs more, a change to INT8 nothing more (``benchmarks/pair_latency.py``). Those two
extras start at 0 and the closed loop refits them, with the scale, on the pairs it measures
(:meth:`PrecisionLatency.rescaled`). The closed loop measures the chosen pairs end to end either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.errors import ProfileError
from hwnas.latency_models.features import pixels, shape_class
from hwnas.latency_models.simple import interpolate, op_table
from hwnas.supernet.spaces import get_space

MIN_EDGE_ROWS = 4
"""Subnets measured end to end in both profiles needed to price conversions (two parameters)."""
MIN_CHANGE_PAIRS = 3
"""Measured pairs that change precision inside the graph needed to refit the extra cost of a change."""


def _elements(layer) -> int:
    """Elements of a layer's output tensor (one image)."""
    return int(layer.out_ch * layer.out_hw**2)


class PrecisionDelta:
    """Per-block latency change INT8 − FP32 (ms), from two block tables of one device, and the cost of
    a precision conversion at a tensor boundary (``edge``: ``k0 + k1 · elements`` ms; see the module doc)."""

    def __init__(self, fp32_table: dict[str, list[tuple[float, float]]],
                 int8_table: dict[str, list[tuple[float, float]]], edge: tuple[float, float] = (0.0, 0.0),
                 edge_fit: dict[str, Any] | None = None, change: tuple[float, float] = (0.0, 0.0),
                 change_fit: dict[str, Any] | None = None) -> None:
        self.fp32_table, self.int8_table = fp32_table, int8_table
        self.edge = (float(edge[0]), float(edge[1]))
        self.edge_fit = edge_fit or {"rows": 0, "note": "conversions not priced: no subnet measured in both"}
        # a change of precision inside the graph (between two layers) costs a conversion and, measured on
        # OpenVINO, more when it goes back to float: ``change`` = the extra ms of a change up (float to
        # INT8) and of one down (INT8 to float), 0 until measured pairs say otherwise
        # (PrecisionLatency.rescaled)
        self.change = (float(change[0]), float(change[1]))
        self.change_fit = change_fit or {"pairs": 0, "note": "in-graph changes priced as conversions"}

    @classmethod
    def from_profiles(cls, fp32_profile, int8_profile, space: str) -> PrecisionDelta:
        for prof, want in ((fp32_profile, "fp32"), (int8_profile, "int8")):
            if prof.spec.precision != want:
                raise ProfileError(f"Profile '{prof.root}' was measured in {prof.spec.precision}, not {want}: give "
                                   f"a profile made with 'hwnas profile --precision {want} --space {space}'.")
        from hwnas.devices.base import host_fingerprint

        d = cls(op_table(fp32_profile, space), op_table(int8_profile, space))
        if host_fingerprint(fp32_profile.host) == host_fingerprint(int8_profile.host):
            d.fit_edges(*_shared_rows(fp32_profile, int8_profile, space))
        else:  # end-to-end rows of two hosts differ by more than conversions
            d.edge_fit = {"rows": 0, "note": "conversions not priced: the FP32 and INT8 profiles were measured on "
                                             "different hosts (or boots)"}
        return d

    def conversion_ms(self, elements: float) -> float:
        return self.edge[0] + self.edge[1] * float(elements)


    def layer_delta_ms(self, layer) -> float:
        """INT8 − FP32 of any layer as measured alone (the block table holds every layer kind)."""
        key = shape_class(layer)
        if key not in self.fp32_table or key not in self.int8_table:
            raise ProfileError(f"The FP32 and INT8 block tables do not both hold block {layer.key()}: profile both "
                               "precisions at the search's resolutions ('hwnas profile --ops --resolutions ...').")
        px = pixels(layer)
        return interpolate(self.int8_table[key], px) - interpolate(self.fp32_table[key], px)

    def fit_edges(self, archs: Sequence, fp32_ms: Sequence[float], int8_ms: Sequence[float]) -> None:
        """Fit ``edge`` on subnets measured end to end all-FP32 and all-INT8 (see the module doc)."""
        from scipy.optimize import nnls

        if len(archs) < MIN_EDGE_ROWS:
            self.edge, self.edge_fit = (0.0, 0.0), {
                "rows": len(archs), "note": f"conversions not priced: {len(archs)} subnet(s) measured in both "
                                            f"precisions, {MIN_EDGE_ROWS} needed"}
            return
        x, r = [], []
        for a, f, q in zip(archs, fp32_ms, int8_ms):
            layers = get_space(a.space).layers(a)
            inner = [_elements(lyr) for lyr in layers[:-1]]  # the tensors between consecutive layers
            x.append([2.0 * len(inner), 2.0 * float(sum(inner))])
            r.append(sum(self.layer_delta_ms(lyr) for lyr in layers) - (q - f))  # what the layers alone overcount
        xa, ra = np.asarray(x), np.asarray(r)
        scale = xa.max(0)
        scale[scale == 0] = 1.0
        coef, _ = nnls(xa / scale, ra)
        coef = coef / scale
        pred = xa @ coef
        self.edge = (float(coef[0]), float(coef[1]))
        self.edge_fit = {"rows": len(archs), "k0_ms": self.edge[0], "k1_ms_per_element": self.edge[1],
                         "residual_ms_median_abs": float(np.median(np.abs(ra - pred))),
                         "overcount_ms_median": float(np.median(ra))}

    def _parts(self, qarch) -> tuple[float, int, int]:
        """``(the change with every conversion priced, changes up inside the graph, changes down)``."""
        layers = get_space(qarch.space).layers(qarch.arch)
        int8 = {s + 1 for s in qarch.int8_slots()}
        last = max(i for i, lyr in enumerate(layers) if lyr.kind == "mbconv")
        # the head (every layer after the last block) runs in the last block's precision
        is8 = [(lyr.kind == "mbconv" and lyr.index in int8) or (i > last and qarch.int8_head)
               for i, lyr in enumerate(layers)]
        # tensor j is layer j's input (0: the model's input, float) and layer j-1's output; the model's
        # output is float too
        tensors = [layers[0].in_ch * layers[0].in_hw**2] + [_elements(lyr) for lyr in layers]
        prec = [False] + is8 + [False]
        total = sum(self.layer_delta_ms(lyr) - self.conversion_ms(tensors[i]) - self.conversion_ms(tensors[i + 1])
                    for i, lyr in enumerate(layers) if is8[i])
        total += sum(self.conversion_ms(tensors[j]) for j in range(len(tensors)) if prec[j] != prec[j + 1])
        n = len(tensors) - 1
        up = sum(1 for j in range(1, n) if prec[j + 1] and not prec[j])
        down = sum(1 for j in range(1, n) if prec[j] and not prec[j + 1])
        return float(total), up, down

    def deltas(self, qarch) -> float:
        """INT8 − FP32 change (ms) of ``qarch``: its INT8 layers (blocks, and the head after an INT8 last
        block) as measured alone, less the conversions they paid alone, plus a conversion wherever the
        precision changes, and the extra cost of each change up or down inside the graph."""
        base, up, down = self._parts(qarch)
        return base + up * self.change[0] + down * self.change[1]

    def to_dict(self) -> dict[str, Any]:
        return {"fp32": {k: [list(p) for p in v] for k, v in self.fp32_table.items()},
                "int8": {k: [list(p) for p in v] for k, v in self.int8_table.items()},
                "edge": list(self.edge), "edge_fit": self.edge_fit,
                "change": list(self.change), "change_fit": self.change_fit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrecisionDelta:
        return cls({k: [tuple(p) for p in v] for k, v in d["fp32"].items()},
                   {k: [tuple(p) for p in v] for k, v in d["int8"].items()}, tuple(d.get("edge", (0.0, 0.0))),
                   d.get("edge_fit"), tuple(d.get("change") or (0.0, 0.0)), d.get("change_fit"))


def _shared_rows(fp32_profile, int8_profile, space: str):
    """Subnets both profiles measured end to end: (archs, FP32 ms, INT8 ms)."""
    from hwnas.types import ArchConfig

    f, q = fp32_profile.models_df(space), int8_profile.models_df(space)
    if not len(f) or not len(q):
        return [], [], []
    fm = f.groupby("arch")["latency_ms"].median()
    qm = q.groupby("arch")["latency_ms"].median()
    common = sorted(set(fm.index) & set(qm.index))
    return [ArchConfig.parse(a) for a in common], [float(fm[a]) for a in common], [float(qm[a]) for a in common]


class PrecisionLatency:
    """``predict(qarchs)`` (ms): the FP32 model's prediction of each subnet plus its INT8 blocks' deltas."""

    def __init__(self, fp32_model, delta: PrecisionDelta, scale: float = 1.0) -> None:
        self.fp32_model, self.delta, self.scale = fp32_model, delta, float(scale)

    def predict(self, qarchs: Sequence) -> np.ndarray:
        base = np.asarray(self.fp32_model.predict([q.arch for q in qarchs]), dtype=float)
        return self.scale * (base + np.array([self.delta.deltas(q) for q in qarchs]))

    def rescaled(self, qarchs: Sequence, measured_ms: Sequence[float]) -> PrecisionLatency:
        """The same model scaled to the closed loop's measurements and, once at least
        ``MIN_CHANGE_PAIRS`` of them change precision inside the graph, with the extra cost of a change
        up and of a change down refitted on them: ``measured ≈ s · (fp32 + INT8 part) + s · (up · x_up +
        down · x_down)``, solved for ``s``, ``x_up``, ``x_down`` (non-negative least squares on relative
        errors). Fewer: the median of measured / predicted."""
        import copy

        from scipy.optimize import nnls

        qarchs, m = list(qarchs), np.asarray(measured_ms, dtype=float)
        base = np.asarray(self.fp32_model.predict([q.arch for q in qarchs]), dtype=float)
        parts = [self.delta._parts(q) for q in qarchs]
        delta = copy.copy(self.delta)
        n_mixed = sum(1 for _, up, down in parts if up or down)
        if n_mixed >= MIN_CHANGE_PAIRS:
            x = np.array([[b + p, up, down] for b, (p, up, down) in zip(base, parts)]) / m[:, None]
            coef, _ = nnls(x, np.ones(len(m)))
            u, v_up, v_down = coef
            if u > 0:
                delta.change = (float(v_up / u), float(v_down / u))
                resid = m * (1.0 - x @ coef)
                delta.change_fit = {"pairs": n_mixed, "up_ms": delta.change[0], "down_ms": delta.change[1],
                                    "residual_ms_median_abs": float(np.median(np.abs(resid)))}
                return PrecisionLatency(self.fp32_model, delta, float(u))
        x_up, x_down = delta.change
        pred = base + np.array([p + up * x_up + down * x_down for p, up, down in parts])  # deltas(), from the parts
        return PrecisionLatency(self.fp32_model, delta, float(np.median(m / np.maximum(pred, 1e-9))))
