"""A per-layer precision policy: layer name / pattern / default → precision.

The shape follows torchao's per-module config map: an ordered list of rules, first match
wins, then the default. Layers are the ONNX node names the quantizer sees (e.g.
``/blocks.3/conv/depth_conv/conv/Conv``); a rule's ``pattern`` is either an exact name or a
regular expression (``re.fullmatch``). Precisions: ``int8``, ``fp32``, ``fp16`` (GPU
runtimes; CPUs keep fp32). Saved as versioned JSON; the quantizers apply a policy through
their own exclusion mechanism (ORT ``nodes_to_exclude``, NNCF ``IgnoredScope``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hwnas.errors import ConfigError

SCHEMA_VERSION = 1
PRECISIONS = ("int8", "fp32", "fp16")


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

    def __post_init__(self) -> None:
        for p in [self.default] + [r.precision for r in self.rules]:
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

    @classmethod
    def with_exceptions(cls, default: str, names: Iterable[str], precision: str, **notes) -> PrecisionPolicy:
        """``default`` everywhere except the exact ``names``, which get ``precision``."""
        return cls(default, tuple(Rule(re.escape(n), precision) for n in sorted(names)), dict(notes))

    def precision_for(self, layer: str) -> str:
        for r in self.rules:
            if r.matches(layer):
                return r.precision
        return self.default

    def layers_at(self, layers: Iterable[str], precision: str) -> list[str]:
        return [n for n in layers if self.precision_for(n) == precision]

    def summary(self, layers: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in layers:
            p = self.precision_for(n)
            out[p] = out.get(p, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "default": self.default,
                "rules": [{"pattern": r.pattern, "precision": r.precision} for r in self.rules],
                "notes": dict(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> PrecisionPolicy:
        v = d.get("schema_version")
        if v != SCHEMA_VERSION:
            raise ConfigError(f"Precision policy schema_version {v} is not {SCHEMA_VERSION}; re-create the policy "
                              "with this hwnas version.")
        return cls(d["default"], tuple(Rule(r["pattern"], r["precision"]) for r in d.get("rules", [])),
                   dict(d.get("notes", {})))

    def save(self, path: str | os.PathLike) -> Path:
        from hwnas.fileio import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrecisionPolicy:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(f"Cannot read precision policy '{path}' ({exc}).") from None
