"""Torch-free features of subnets for the predictors: analytic arch features and per-layer shapes.

Everything here derives from :meth:`SearchSpace.layers` (shapes, MACs, parameters), so a
predictor can score tens of thousands of archs per second without exporting anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.supernet.spaces import LayerSpec, get_space
from hwnas.types import ArchConfig

BYTES = 4  # float32


def activation_bytes(layer: LayerSpec) -> int:
    """Bytes of the tensors alive while ``layer`` runs (input, expanded middle, output; the
    input stays alive for a shortcut): a torch-free stand-in for the ONNX lifetime analysis."""
    i = layer.in_ch * layer.in_hw**2
    o = layer.out_ch * layer.out_hw**2
    if layer.kind == "mbconv":
        mid_in = layer.mid_ch * layer.in_hw**2 if layer.expand != 1 else 0
        mid_out = layer.mid_ch * layer.out_hw**2
        return BYTES * (i + max(mid_in + mid_out, mid_out + o))
    return BYTES * (i + o)


ARCH_FEATURES = ("resolution", "macs_m", "params_m", "act_peak_mb", "n_blocks", "n_se_blocks", "sum_mid_ch_k")


def arch_features(archs: Sequence[ArchConfig]) -> np.ndarray:
    """Analytic features per arch, columns :data:`ARCH_FEATURES` + one depth per stage."""
    rows = []
    for a in archs:
        sp = get_space(a.space)
        layers = sp.layers(a)
        mb = [lyr for lyr in layers if lyr.kind == "mbconv"]
        rows.append([a.r, sum(lyr.macs for lyr in layers) / 1e6, sum(lyr.params for lyr in layers) / 1e6,
                     max(activation_bytes(lyr) for lyr in layers) / 2**20, len(mb), sum(lyr.se for lyr in mb),
                     sum(lyr.mid_ch * lyr.kernel**2 * lyr.out_hw**2 for lyr in mb) / 1e6, *a.d])
    return np.asarray(rows, dtype=np.float64)


def encoding(archs: Sequence[ArchConfig]) -> np.ndarray:
    """The space's one-hot arch encoding (resolution, kernel and expand per active slot)."""
    if not archs:
        return np.zeros((0, 0))
    return get_space(archs[0].space).encode(list(archs)).astype(np.float64)


LAYER_FEATURES = ("in_ch", "out_ch", "mid_ch", "in_hw", "out_hw", "kernel", "stride", "se", "hs", "shortcut",
                  "expand", "macs_m", "in_kb", "out_kb", "mid_kb")


def layer_features(layer: LayerSpec) -> list[float]:
    """Shape features of one layer, columns :data:`LAYER_FEATURES`."""
    return [layer.in_ch, layer.out_ch, layer.mid_ch, layer.in_hw, layer.out_hw, layer.kernel, layer.stride,
            float(layer.se), float(layer.act == "h_swish"), float(layer.shortcut), float(layer.expand),
            layer.macs / 1e6, BYTES * layer.in_ch * layer.in_hw**2 / 1e3, BYTES * layer.out_ch * layer.out_hw**2 / 1e3,
            BYTES * layer.mid_ch * layer.out_hw**2 / 1e3]


def shape_class(layer: LayerSpec) -> str:
    """A layer's identity without its spatial size: the same block at another resolution."""
    return "|".join(str(x) for x in (layer.kind, layer.in_ch, layer.out_ch, layer.mid_ch, layer.kernel,
                                     layer.stride, layer.act, layer.se, layer.shortcut, layer.expand))


def pixels(layer: LayerSpec) -> float:
    """Work scale of a layer across resolutions: output pixels (input pixels for a global pool)."""
    return float(layer.in_hw**2 if layer.kind == "pool" else layer.out_hw**2)
