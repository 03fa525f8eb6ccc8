"""What export produces and verify checks: ``PrecisionPolicy``, ``DeploymentManifest``, ``Verification``.

A precision policy follows torchao's per-module config map: an ordered list of rules, first match
wins, then the default. Layers are the ONNX node names the quantizer sees (e.g.
``/blocks.3/conv/depth_conv/conv/Conv``); a rule's ``pattern`` is an exact name or a regular
expression (``re.fullmatch``). Each runtime's quantizer applies a policy through its own
exclusion mechanism (ORT ``nodes_to_exclude``, NNCF ``IgnoredScope``).

``fallback`` is the float precision of what an INT8 default leaves float (layers no quantizer
touches: activations, pooling, SE multiplies): ``PrecisionPolicy("int8", fallback="bf16")`` is
"INT8 with BF16 for the non-quantized layers". :meth:`PrecisionPolicy.floats` is every float
precision a policy asks for; a runtime with one inference precision per model (OpenVINO) needs
exactly one.

The manifest is the typed record of a deployment bundle: written by build, read by verify,
versioned JSON. Its ``files`` map covers every other file of the bundle; the bundle's
``manifest.sha256`` covers the manifest itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hwnas.errors import BundleError, ConfigError

POLICY_SCHEMA_VERSION = 1
PRECISIONS = ("int8", "fp32", "bf16", "fp16")
QUANTIZED_PRECISIONS = ("int8",)
"""Precisions a model gets by being quantized, not by a runtime setting (a device configured with one
times the quantized models it is handed: :mod:`hwnas.profiling.precision`)."""


@dataclass(frozen=True)
class Rule:
    pattern: str
    precision: str

    def matches(self, name: str) -> bool:
        return name == self.pattern or re.fullmatch(self.pattern, name) is not None


@dataclass(frozen=True)
class PrecisionPolicy:
    default: str = "int8"
    rules: tuple[Rule, ...] = ()
    notes: dict = field(default_factory=dict, compare=False)
    fallback: str = "fp32"

    def __post_init__(self) -> None:
        if self.fallback == "int8":
            raise ConfigError("A policy's fallback is the float precision of non-quantized layers: fp32, bf16 or fp16.")
        for p in [self.default, self.fallback] + [r.precision for r in self.rules]:
            if p not in PRECISIONS:
                raise ConfigError(f"Unknown precision '{p}'; use one of {', '.join(PRECISIONS)}.")
        for r in self.rules:
            try:
                re.compile(r.pattern)
            except re.error as exc:
                raise ConfigError(f"Policy pattern '{r.pattern}' is not a valid regular expression: {exc}.") from None

    @classmethod
    def uniform(cls, precision: str) -> PrecisionPolicy:
        return cls(default=precision)

    def precision_for(self, layer: str) -> str:
        for r in self.rules:
            if r.matches(layer):
                return r.precision
        return self.default

    def precisions(self) -> set[str]:
        return {self.default} | {r.precision for r in self.rules}

    def floats(self) -> set[str]:
        """The float precisions this policy runs layers in (the fallback where the default is INT8)."""
        return ({self.fallback} if self.default == "int8" else {self.default}) | \
            {r.precision for r in self.rules if r.precision != "int8"}

    def float_precision(self) -> str:
        """The one float precision of a policy for a runtime with one per model (raises if it mixes)."""
        floats = self.floats()
        if len(floats) != 1:
            raise ConfigError(f"This policy mixes float precisions {', '.join(sorted(floats))}; this runtime runs "
                              "every non-INT8 layer in one inference precision: keep one float precision besides int8.")
        return next(iter(floats))

    def label(self) -> str:
        """Short name: ``fp32``, ``bf16``, ``int8``, ``int8+bf16`` (all INT8, BF16 elsewhere), ``mixed int8/bf16``."""
        floats = "/".join(sorted(self.floats()))
        if "int8" not in self.precisions():
            return floats
        if self.default == "int8" and not self.rules:
            return "int8" if floats == "fp32" else f"int8+{floats}"
        return f"mixed int8/{floats}"

    def summary(self, layers: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in layers:
            p = self.precision_for(n)
            out[p] = out.get(p, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"schema_version": POLICY_SCHEMA_VERSION, "default": self.default,
                "rules": [{"pattern": r.pattern, "precision": r.precision} for r in self.rules],
                "fallback": self.fallback, "notes": dict(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PrecisionPolicy:
        v = d.get("schema_version")
        if v != POLICY_SCHEMA_VERSION:
            raise ConfigError(f"Precision policy schema_version {v} is not {POLICY_SCHEMA_VERSION}; re-create the "
                              "policy with this hwnas version.")
        return cls(d["default"], tuple(Rule(r["pattern"], r["precision"]) for r in d.get("rules", [])),
                   dict(d.get("notes", {})), d.get("fallback", "fp32"))

    def save(self, path: str | os.PathLike) -> Path:
        from hwnas.fileio import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrecisionPolicy:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(f"Cannot read precision policy '{path}' ({exc}).") from None


# --------------------------------------------------------------------------- the manifest
MANIFEST_FORMAT = "hwnas-deployment-bundle"
MANIFEST_SCHEMA_VERSION = 2


def _build(cls, d: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class AccuracyReport:
    """Top-1 (%) of the FP32 and the deployed model on ``split`` of ``dataset``."""

    split: str
    images: int
    fp32_top1: float
    deployed_top1: float
    max_accuracy_drop: float | None = None

    @property
    def drop_pts(self) -> float:
        return self.fp32_top1 - self.deployed_top1


@dataclass(frozen=True)
class LatencyReport:
    """Milliseconds of the deployed and FP32 models on the device, and how they were put on a scale.

    ``measured_ms`` / ``fp32_ms``: reference ratio × the reference's latency on ``scale``
    (``reference_ms``); ``raw_median_ms`` / ``raw_min_ms``: this run's plain timings;
    ``predicted_ms``: the search's prediction, when it was made for this device.
    """

    measured_ms: float
    fp32_ms: float
    raw_median_ms: float
    raw_min_ms: float
    reference: str
    reference_ms: float
    scale: str
    predicted_ms: float | None = None

    @property
    def speedup_vs_fp32(self) -> float:
        return self.fp32_ms / self.measured_ms


@dataclass(frozen=True)
class MemoryReport:
    """Measured peak resident memory (MiB) of loading and running the deployed model, the analytic
    weights + activations of its graph, and the search's prediction when it applies."""

    peak_rss_mb: float | None
    analytic_mb: dict[str, float]
    predicted_mb: float | None = None


@dataclass(frozen=True)
class DeploymentManifest:
    """Everything a bundle claims. ``files`` (relative path → sha256) covers every other file;
    ``lineage`` holds the export config and the id of the parent artifact (the search run, or
    the arch given directly)."""

    arch: str
    arch_key: str
    space: str
    weights: str
    precision: str
    policy: str
    policy_summary: dict[str, int]
    deployed: str
    compiled: dict[str, Any]
    preprocess: dict[str, Any]
    device: dict[str, Any]
    host: dict[str, Any]
    dataset: dict[str, Any]
    accuracy: AccuracyReport
    latency: LatencyReport
    memory: MemoryReport
    policy_search: list[dict[str, Any]] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)
    policy_label: str = ""  # fp32, bf16, int8, int8+bf16, mixed int8/bf16
    runtime_precisions: dict[str, Any] = field(default_factory=dict)  # what ran, per layer (runtime's own graph)
    selection: dict[str, Any] = field(default_factory=dict)  # runtimes × policies tried, when several were
    files: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy"]["drop_pts"] = self.accuracy.drop_pts
        d["latency"]["speedup_vs_fp32"] = self.latency.speedup_vs_fp32
        return {"format": MANIFEST_FORMAT, "schema_version": MANIFEST_SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "manifest") -> DeploymentManifest:
        if d.get("format") != MANIFEST_FORMAT:
            raise BundleError(f"{source} is not an hwnas deployment manifest.")
        if d.get("schema_version") != MANIFEST_SCHEMA_VERSION:
            raise BundleError(f"{source} has bundle schema_version {d.get('schema_version')}; this hwnas reads "
                              f"{MANIFEST_SCHEMA_VERSION}. Re-export the bundle with this version.")
        try:
            body = {k: v for k, v in d.items() if k not in ("format", "schema_version")}
            body["accuracy"] = _build(AccuracyReport, body["accuracy"])
            body["latency"] = _build(LatencyReport, body["latency"])
            body["memory"] = _build(MemoryReport, body["memory"])
            return _build(cls, body)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{source} lacks or mistypes a field ({exc}); re-export the bundle.") from None


@dataclass(frozen=True)
class Check:
    """One re-measured claim: the manifest's figure, today's, their difference and the verdict."""

    manifest: float
    measured: float
    diff: float
    tolerance: float
    ok: bool


@dataclass(frozen=True)
class Verification:
    """The result of verifying a bundle on a device: integrity first (a failed integrity check
    raises instead), then accuracy (points) and latency (relative difference)."""

    bundle: str
    device: str
    accuracy: Check
    latency: Check
    latency_ms: float
    raw_median_ms: float
    hashes: bool = True

    @property
    def ok(self) -> bool:
        return self.hashes and self.accuracy.ok and self.latency.ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
