"""``kernel``: nn-Meter-style prediction from the kernels the runtime really runs.

The profile records, for every end-to-end sample, the runtime's optimised graph with per-kernel
times (ORT: fused ``Conv`` with its activation and often the residual ``Sum``, SE as
``ReduceMean`` + two 1×1 convs + ``Mul`` with layout reorders around it, ...). Each kernel is
attributed to the network layer and *role* it implements from its node name (``expand``,
``dw``, ``se``, ``project``, ``add``, ``stem``, ``final_expand``, ``pool``, ``feature_mix``,
``classifier``); layout-conversion kernels that carry no name go to their SE neighbour, else
to the next named kernel. Kernel times measured under the profiler are inflated, so each
sample's kernel times are rescaled to sum to its measured (normalised) latency: what is
learned is each kernel's share of a real end-to-end run, fusion and layout changes included.

One gradient-boosted regressor per role, on the layer's shape features, predicts that role's
time; which roles a layer has (e.g. whether its residual add is a separate kernel) is the
fusion pattern learned from the recorded graphs, per layer signature. A subnet's latency is the
sum over its layers' roles — thousands of kernel samples harvested from ~100 end-to-end runs.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

import numpy as np

from hwnas.errors import ProfileError
from hwnas.latency_models.base import LatencyModel
from hwnas.latency_models.features import layer_features
from hwnas.latency_models.gbdt import Gbdt
from hwnas.supernet.spaces import LayerSpec, get_space

_ROLES = [(re.compile(r"^/first_conv/"), "stem"),
          (re.compile(r"^/blocks\.(\d+)/conv/inverted_bottleneck/"), "expand"),
          (re.compile(r"^/blocks\.(\d+)/conv/depth_conv/se/"), "se"),
          (re.compile(r"^/blocks\.(\d+)/conv/depth_conv/"), "dw"),
          (re.compile(r"^/blocks\.(\d+)/conv/point_linear/"), "project"),
          (re.compile(r"^/blocks\.(\d+)/"), "add"),
          (re.compile(r"^/final_expand_layer/"), "final_expand"),
          (re.compile(r"^/global_avg_pool/"), "pool"),
          (re.compile(r"^/feature_mix_layer/"), "feature_mix"),
          (re.compile(r"^/(classifier/|Flatten)"), "classifier")]
_HEAD = {"stem": 0, "final_expand": -4, "pool": -3, "feature_mix": -2, "classifier": -1}


def _named_role(node: str, n_layers: int) -> tuple[int, str] | None:
    for pat, role in _ROLES:
        m = pat.match(node)
        if m:
            if role in _HEAD:
                return _HEAD[role] % n_layers, role
            return 1 + int(m.group(1)), role
    return None


def attribute_kernels(kernels: list[dict[str, Any]], n_layers: int) -> dict[tuple[int, str], float]:
    """``(layer index, role) → summed kernel µs`` for one recorded graph (see the module doc)."""
    named = [_named_role(k["node"], n_layers) for k in kernels]
    out: dict[tuple[int, str], float] = defaultdict(float)
    for i, k in enumerate(kernels):
        lr = named[i]
        if lr is None:
            prev = next((named[j] for j in range(i - 1, -1, -1) if named[j] is not None), None)
            nxt = next((named[j] for j in range(i + 1, len(named)) if named[j] is not None), None)
            if prev is not None and prev[1] == "se":
                lr = prev
            elif nxt is not None:
                lr = nxt
            else:
                lr = prev
        if lr is not None:
            out[lr] += float(k["us"])
    return out


def signature(layer: LayerSpec) -> str:
    return f"{layer.kind}|x{int(layer.expand != 1)}|se{int(layer.se)}|sc{int(layer.shortcut)}"


class KernelModel(LatencyModel):
    """Sum of per-kernel-role predictions, learned from the runtime's recorded kernel times."""

    name = "kernel"
    description = "sum of fused-kernel times (roles learned from the runtime's optimised graphs)"
    targets = ("latency_ms",)
    min_samples = 20
    needs_profile = True

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 8,
                 min_child_samples: int = 5) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples

    def _fit(self, archs, y, profile) -> None:
        rows = profile.models_df(self.space_)
        graphs = dict(zip(rows["arch_key"], rows["runtime_graph"]))
        sp = get_space(self.space_)
        feats: dict[str, list[list[float]]] = defaultdict(list)
        vals: dict[str, list[float]] = defaultdict(list)
        seen: dict[str, int] = defaultdict(int)
        present: dict[tuple[str, str], int] = defaultdict(int)
        used = 0
        for a, target in zip(archs, y):
            g = json.loads(graphs.get(a.key()) or "null") or {}
            kernels = g.get("kernels")
            if not kernels or "us" not in kernels[0]:
                continue
            layers = sp.layers(a)
            times = attribute_kernels(kernels, len(layers))
            scale = target / sum(times.values())  # profiled kernel µs → share of the measured ms
            for layer in layers:
                seen[signature(layer)] += 1
            for (li, role), us in times.items():
                layer = layers[li]
                present[(signature(layer), role)] += 1
                feats[role].append(layer_features(layer))
                vals[role].append(us * scale)
            used += 1
        if used < self.min_samples:
            raise ProfileError(f"Model 'kernel' needs per-kernel times of at least {self.min_samples} end-to-end "
                               f"samples of '{self.space_}'; the profile has {used} (re-profile with --kernel-times "
                               "on a backend that reports kernel times, or use the lut, e2e or hybrid model).")
        self.template_ = {sig: sorted(r for (s, r), n in present.items() if s == sig and n >= 0.5 * cnt)
                          for sig, cnt in seen.items()}
        self.roles_ = {role: Gbdt(self.n_estimators, self.learning_rate, self.num_leaves, self.min_child_samples)
                       .fit(np.asarray(feats[role]), np.asarray(vals[role])) for role in feats}
        self.n_kernel_samples_ = int(sum(len(v) for v in vals.values()))

    def role_predictions(self, archs) -> list[dict[tuple[int, str], float]]:
        """Per arch: ``(layer index, role) → predicted ms``."""
        sp = get_space(self.space_)
        jobs: dict[str, list[tuple[int, int, list[float]]]] = defaultdict(list)
        for ai, a in enumerate(archs):
            for li, layer in enumerate(sp.layers(a)):
                roles = self.template_.get(signature(layer))
                if roles is None:
                    raise ProfileError(f"Model 'kernel' never saw a layer like {layer.key()} in the recorded graphs; "
                                       "profile more end-to-end samples of this space.")
                for role in roles:
                    jobs[role].append((ai, li, layer_features(layer)))
        out: list[dict[tuple[int, str], float]] = [{} for _ in archs]
        for role, items in jobs.items():
            pred = self.roles_[role].predict(np.asarray([f for _, _, f in items]))
            for (ai, li, _), v in zip(items, pred):
                out[ai][(li, role)] = float(v)
        return out

    def _predict(self, archs):
        return np.array([sum(d.values()) for d in self.role_predictions(archs)])

    def _state(self) -> dict[str, Any]:
        return {"template": self.template_, "roles": {r: g.to_dict() for r, g in self.roles_.items()},
                "n_kernel_samples": self.n_kernel_samples_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.template_ = {k: list(v) for k, v in state["template"].items()}
        self.roles_ = {r: Gbdt.from_dict(d) for r, d in state["roles"].items()}
        self.n_kernel_samples_ = int(state.get("n_kernel_samples", 0))
