"""The small immutable values that flow between hwnas stages.

Units live in the names (``_ms``, ``_mb``, ``_mj``). Every type serialises to a
plain JSON-able dict (``to_dict``/``from_dict``); nothing here imports torch or a
runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from hwnas.errors import ArchError, ConfigError
from hwnas.registry import SPACES


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hex sha256 of the canonical JSON of ``obj`` (sorted keys), first ``n`` chars."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _num(x: float | int) -> float | int:
    """Keep integral expand ratios as ints so 3 and 3.0 hash the same."""
    return int(x) if float(x).is_integer() else float(x)


# --------------------------------------------------------------------------- ArchConfig
@dataclass(frozen=True)
class ArchConfig:
    """One subnet of a named search space.

    Slot-indexed like Once-for-All: ``ks`` and ``e`` hold one value per elastic
    block slot (``n_slots`` = sum of the stages' maximum depths), ``d`` one depth
    per stage, ``r`` the input resolution in pixels. Slots beyond a stage's depth
    are inactive; they are normalised to the smallest choice when the value is
    built, so two configs that describe the same network are equal and share a
    ``key()``. Construction validates every slot against the space and raises
    :class:`~hwnas.errors.ArchError` naming the slot and the allowed values.
    """

    space: str
    ks: tuple[int, ...]
    e: tuple[float, ...]
    d: tuple[int, ...]
    r: int

    def __post_init__(self) -> None:
        sp = SPACES.get(self.space)
        try:
            ks = tuple(int(k) for k in self.ks)
            e = tuple(_num(x) for x in self.e)
            d = tuple(int(x) for x in self.d)
            r = int(self.r)
        except (TypeError, ValueError) as exc:
            raise ArchError(f"Arch for space '{self.space}' has a non-numeric value: {exc}") from None
        ks, e = sp.validate(ks, e, d, r)
        object.__setattr__(self, "ks", ks)
        object.__setattr__(self, "e", e)
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "r", r)

    # -- identity -------------------------------------------------------------
    def key(self) -> str:
        """Stable content hash (16 hex chars) of the network this config describes."""
        return stable_hash(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: str | None = None) -> ArchConfig:
        """Build from hwnas's dict or Once-for-All's (``ks/e/d`` + ``r`` list or ``image_size``)."""
        sp = data.get("space", space)
        if sp is None:
            raise ArchError("Arch dict names no space: add \"space\": \"<name>\" or pass --space.")
        if space is not None and data.get("space", space) != space:
            raise ArchError(f"Arch is for space '{data['space']}', not '{space}'.")
        missing = [k for k in ("ks", "e", "d") if k not in data]
        if missing:
            raise ArchError(f"Arch dict lacks {missing}; expected keys ks, e, d and r (or image_size).")
        r = data.get("r", data.get("image_size"))
        if isinstance(r, (list, tuple)):
            if len(r) != 1:
                raise ArchError(f"Arch 'r' must be one resolution, got {list(r)}.")
            r = r[0]
        if r is None:
            raise ArchError("Arch dict gives no resolution: add \"r\": <pixels>.")
        n_slots, n_stages = SPACES.get(sp).n_slots, len(SPACES.get(sp).stages)
        ks, e, d = data["ks"], data["e"], data["d"]
        # OFA broadcasts ints; do the same, but never guess for short lists.
        ks = [ks] * n_slots if isinstance(ks, (int, float)) else ks
        e = [e] * n_slots if isinstance(e, (int, float)) else e
        d = [d] * n_stages if isinstance(d, (int, float)) else d
        return cls(sp, tuple(ks), tuple(e), tuple(d), int(r))

    def to_str(self) -> str:
        """Readable, parseable form: ``space/r224_k3e3-k5e4_k7e6-k3e3`` (one group per stage)."""
        sp = SPACES.get(self.space)
        groups = []
        for s, (lo, depth) in enumerate(zip(sp.stage_offsets, self.d)):
            del s
            groups.append("-".join(f"k{self.ks[i]}e{_fmt(self.e[i])}" for i in range(lo, lo + depth)))
        return f"{self.space}/r{self.r}_" + "_".join(groups)

    @classmethod
    def parse(cls, text: str, space: str | None = None) -> ArchConfig:
        """Parse ``to_str()`` output, with or without the ``space/`` prefix, or a JSON dict."""
        text = text.strip()
        if text.startswith("{"):
            try:
                return cls.from_dict(json.loads(text), space)
            except json.JSONDecodeError as exc:
                raise ArchError(f"Arch JSON does not parse: {exc}") from None
        if "/" in text:
            name, body = text.split("/", 1)
            if space is not None and name != space:
                raise ArchError(f"Arch '{text}' is for space '{name}', not '{space}'.")
            space = name
        else:
            body = text
        if space is None:
            raise ArchError(f"Arch '{text}' names no space: write '<space>/{text}' or pass --space.")
        sp = SPACES.get(space)
        parts = body.split("_")
        if not parts[0].startswith("r") or len(parts) != len(sp.stages) + 1:
            raise ArchError(
                f"Arch '{text}' is not of the form r<res>_<stage1>_..._<stage{len(sp.stages)}> "
                f"({len(sp.stages)} stages), e.g. {sp.min_arch().to_str()}"
            )
        try:
            r = int(parts[0][1:])
            ks: list[int] = []
            e: list[float] = []
            d: list[int] = []
            for s, group in enumerate(parts[1:]):
                blocks = [b for b in group.split("-") if b]
                d.append(len(blocks))
                for b in blocks:
                    k_txt, e_txt = b[1:].split("e")
                    if not b.startswith("k"):
                        raise ValueError(b)
                    ks.append(int(k_txt))
                    e.append(float(e_txt))
                pad = sp.stages[s].max_depth - len(blocks)
                if pad < 0:
                    raise ArchError(
                        f"Arch '{text}': stage {s + 1} has {len(blocks)} blocks; at most "
                        f"{sp.stages[s].max_depth} allowed."
                    )
                ks += [sp.kernel_choices[0]] * pad
                e += [sp.expand_choices[0]] * pad
        except ArchError:
            raise
        except ValueError:
            raise ArchError(
                f"Arch '{text}' does not parse: each block is k<kernel>e<expand>, e.g. k5e4."
            ) from None
        return cls(space, tuple(ks), tuple(e), tuple(d), r)

    def __str__(self) -> str:
        return self.to_str()


def _fmt(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------- devices
@dataclass(frozen=True)
class DeviceSpec:
    """Identity of a measurement target; ``id()`` hashes everything that changes latency."""

    hardware: str
    runtime: str
    runtime_version: str
    provider: str = "CPU"
    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 1
    options: tuple[tuple[str, str], ...] = ()

    def id(self) -> str:
        return stable_hash(self.to_dict(), 12)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSpec:
        kw = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        kw["options"] = tuple(sorted((str(k), str(v)) for k, v in dict(data.get("options", {})).items()))
        return cls(**kw)


# --------------------------------------------------------------------------- measurements
SPREAD_LIMIT = 0.25
"""(p90 - p10) / median above which a timing is flagged as too noisy to trust."""


@dataclass(frozen=True)
class LatencyStats:
    """Summary of raw latency samples in milliseconds. Quote the median; min/p10 are steadier."""

    median_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    n_runs: int
    n_warmup: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], n_warmup: int) -> LatencyStats:
        import numpy as np

        a = np.asarray(samples_ms, dtype=float)
        if a.size == 0:
            raise ConfigError("No latency samples: raise the run count or the time budget.")
        return cls(
            median_ms=float(np.median(a)),
            min_ms=float(a.min()),
            p10_ms=float(np.percentile(a, 10)),
            p90_ms=float(np.percentile(a, 90)),
            mean_ms=float(a.mean()),
            std_ms=float(a.std()),
            n_runs=int(a.size),
            n_warmup=int(n_warmup),
        )

    @property
    def spread(self) -> float:
        """Relative inter-decile spread, (p90 - p10) / median."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else math.inf

    @property
    def unstable(self) -> bool:
        return self.spread > SPREAD_LIMIT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyStats:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ReferenceRatio:
    """Latency relative to a reference model timed in interleaved bursts.

    ``ratio`` is the median over bursts of (model median / reference median);
    ``ref_median_ms`` is the reference's median over the same bursts;
    ``ratio_spread`` is (p90 - p10) / median of the per-burst ratios.
    """

    ratio: float
    ref_median_ms: float
    ratio_spread: float
    n_bursts: int
    reference: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """One measured model on one device.

    ``normalized_ms`` = ``ref.ratio`` × a session's reference latency: the figure
    that is repeatable across minutes on a drifting machine (see MEASUREMENT notes
    in the README); ``stats`` are the raw timings of this run.
    """

    subject: str
    model_sha256: str
    device_id: str
    stats: LatencyStats
    ref: ReferenceRatio | None = None
    peak_memory_mb: float | None = None
    energy_mj: float | None = None
    energy_note: str = ""
    when: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def normalized_ms(self) -> float | None:
        return None if self.ref is None else self.ref.ratio * self.ref.ref_median_ms

    def to_dict(self) -> dict[str, Any]:
        d = {
            "subject": self.subject,
            "model_sha256": self.model_sha256,
            "device_id": self.device_id,
            "stats": self.stats.to_dict(),
            "ref": None if self.ref is None else self.ref.to_dict(),
            "normalized_ms": self.normalized_ms,
            "unstable": self.stats.unstable,
            "peak_memory_mb": self.peak_memory_mb,
            "energy_mj": self.energy_mj,
            "energy_note": self.energy_note,
            "when": self.when,
        }
        d.update(self.extra)
        return d


# --------------------------------------------------------------------------- search output
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
