"""``ArchConfig``: one subnet of a named search space, and the content hash every artifact id uses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwnas.errors import ArchError
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
        for lo, depth in zip(sp.stage_offsets, self.d):
            groups.append("-".join(f"k{self.ks[i]}e{_fmt(self.e[i])}" for i in range(lo, lo + depth)))
        return f"{self.space}/r{self.r}_" + "_".join(groups)

    @classmethod
    def parse(cls, text: str, space: str | None = None) -> ArchConfig:
        """Parse ``to_str()`` output, with or without the ``space/`` prefix, a JSON dict (OFA's
        ``ks/e/d/r`` form too), or the path of a JSON file holding one."""
        text = text.strip()
        if text.endswith(".json"):
            from pathlib import Path

            p = Path(text)
            if p.is_file():
                try:
                    return cls.from_dict(json.loads(p.read_text()), space)
                except json.JSONDecodeError as exc:
                    raise ArchError(f"Arch file '{p}' is not JSON: {exc}") from None
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
