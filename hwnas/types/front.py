"""Search output: ``Candidate`` and ``ParetoFront`` (saved as ``front.json`` in a run directory)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import ConfigError
from hwnas.types.arch import ArchConfig


@dataclass(frozen=True)
class Candidate:
    """One subnet the search kept: its arch, objective values (units in the names, e.g.
    ``accuracy_top1``, ``latency_ms``, ``memory_mb``), whether it meets the budgets as
    predicted, and — once re-measured on the device — the measured figures."""

    arch: ArchConfig
    objectives: dict[str, float]
    feasible: bool = True
    measured: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_str(), "key": self.arch.key(), "objectives": dict(self.objectives),
                "feasible": self.feasible, "measured": None if self.measured is None else dict(self.measured)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        return cls(ArchConfig.parse(d["arch"]), {k: float(v) for k, v in d["objectives"].items()},
                   bool(d.get("feasible", True)), None if d.get("measured") is None else dict(d["measured"]))


PARETO_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ParetoFront:
    """Non-dominated candidates of a search, with the objective directions and budgets used.

    ``directions`` maps objective name → ``"max"`` or ``"min"``; ``budgets`` maps a
    (minimised) objective name → its upper bound. ``best`` indexes the candidate the
    search recommends (meets every budget, measured where possible), or is None.
    Saved as ``front.json`` in a run directory.
    """

    space: str
    candidates: tuple[Candidate, ...]
    directions: dict[str, str]
    budgets: dict[str, float] = field(default_factory=dict)
    best: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def select(self, **budgets: float) -> Candidate:
        """Best candidate (highest first 'max' objective) with every given objective ≤ its budget,
        e.g. ``front.select(latency_ms=5.0)``; measured values win over predicted ones."""
        from hwnas.errors import BudgetError

        maximise = next((k for k, v in self.directions.items() if v == "max"), None)
        ok = []
        for c in self.candidates:
            vals = {**c.objectives, **(c.measured or {})}
            if all(vals.get(k, math.inf) <= b for k, b in budgets.items()):
                ok.append(c)
        if not ok:
            lo = {k: min((c.measured or {}).get(k, c.objectives.get(k, math.inf)) for c in self.candidates)
                  for k in budgets}
            raise BudgetError(f"No candidate meets {budgets}; the lowest on this front: {lo}.")
        if maximise is None:
            return ok[0]
        return max(ok, key=lambda c: c.objectives.get(maximise, -math.inf))

    def pick(self, which: str | int = "best") -> tuple[int, Candidate]:
        """``(index, candidate)``: the recommended candidate (``"best"``) or the one at an index."""
        if which == "best":
            if self.best is None:
                raise ConfigError("This front has no candidate that meets its budgets as measured; pick one by "
                                  "index (--pick INDEX).")
            return self.best, self.candidates[self.best]
        try:
            i = int(which)
            return i, self.candidates[i]
        except (ValueError, IndexError):
            raise ConfigError(f"--pick must be 'best' or an index 0..{len(self.candidates) - 1}, got '{which}'.") \
                from None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": PARETO_SCHEMA_VERSION, "space": self.space, "directions": dict(self.directions),
                "budgets": dict(self.budgets), "best": self.best, "meta": dict(self.meta),
                "candidates": [c.to_dict() for c in self.candidates]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParetoFront:
        v = d.get("schema_version")
        if v != PARETO_SCHEMA_VERSION:
            raise ConfigError(f"Pareto front has schema_version {v}; this hwnas reads {PARETO_SCHEMA_VERSION}. "
                              "Re-run the search with this version.")
        return cls(d["space"], tuple(Candidate.from_dict(c) for c in d["candidates"]), dict(d["directions"]),
                   dict(d.get("budgets", {})), d.get("best"), dict(d.get("meta", {})))

    def save(self, path) -> None:
        from hwnas.fileio import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> ParetoFront:
        from pathlib import Path

        p = Path(path)
        if p.is_dir():
            p = p / "front.json"
        if not p.is_file():
            raise ConfigError(f"No Pareto front at '{p}': pass a run directory written by 'hwnas search'.")
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"'{p}' is not a readable Pareto front ({exc}).") from None
