"""``QuantArch``: a subnet and the precision of each of its blocks, searched together (APQ, SimQ-NAS).

The genome extends :class:`~hwnas.types.ArchConfig` by one bit per elastic block slot: INT8 or
FP32. Bits of inactive slots are normalised to FP32, so two values that describe the same
deployed model are equal and share a ``key()``. The stem and the static first block stay FP32
(few MACs, the most sensitive layers). The head (final expand, pool, feature mix, classifier)
follows the last block: INT8 when it is. A float head after an INT8 block is the one mix OpenVINO
runs slower than all-FP32 — measured on a Fashion-MNIST subnet at r28 on the AMX Xeon: all-INT8 184
µs, every block INT8 with the head in FP32 294 µs, FP32 249 µs (the feature-mix layer alone in FP32:
299 µs) — and it is not what ``export --precision int8`` deploys, so it is not a pair.

A QuantArch *is* a :class:`~hwnas.types.PrecisionPolicy` over the exported subnet: the exported
ONNX names block ``k`` of the subnet (in execution order, 0 the static first block) ``/blocks.k/...``,
so each INT8 slot becomes the rule ``/blocks\\.k/.*`` → int8 on an FP32 default (and the head's
rule ``HEAD`` when the last block is INT8) — the policy a
deployment bundle records (``policy.json``) and any runtime's quantizer applies. :meth:`from_policy`
reads the bits back from such a policy, so a pair round-trips through the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwnas.errors import ArchError
from hwnas.registry import SPACES
from hwnas.types.arch import ArchConfig, stable_hash
from hwnas.types.deploy import PrecisionPolicy, Rule


HEAD = r"/(final_expand_layer|global_avg_pool|feature_mix_layer|classifier)/.*|/Flatten"
"""The exported subnet's layers after the last block (their ONNX names)."""
HEAD_PROBES = ("/final_expand_layer/conv/Conv", "/feature_mix_layer/conv/Conv", "/classifier/linear/Gemm")


def active_blocks(arch: ArchConfig) -> list[tuple[int, int]]:
    """``(position in the exported subnet, slot)`` of each active elastic block, in execution order."""
    sp = SPACES.get(arch.space)
    out, k = [], 1  # position 0 is the static first block
    for lo, depth in zip(sp.stage_offsets, arch.d):
        for j in range(depth):
            out.append((k, lo + j))
            k += 1
    return out


@dataclass(frozen=True)
class QuantArch:
    """A subnet (``arch``) and which of its block slots run INT8 (``int8``: one bool per slot)."""

    arch: ArchConfig
    int8: tuple[bool, ...]

    def __post_init__(self) -> None:
        n = len(self.arch.ks)
        bits = tuple(bool(b) for b in self.int8)
        if len(bits) != n:
            raise ArchError(f"QuantArch needs one precision bit per block slot ({n}), got {len(bits)}.")
        active = {slot for _, slot in active_blocks(self.arch)}
        object.__setattr__(self, "int8", tuple(b and i in active for i, b in enumerate(bits)))

    @classmethod
    def fp32(cls, arch: ArchConfig) -> QuantArch:
        return cls(arch, (False,) * len(arch.ks))

    @classmethod
    def all_int8(cls, arch: ArchConfig) -> QuantArch:
        return cls(arch, (True,) * len(arch.ks))

    @property
    def space(self) -> str:
        return self.arch.space

    @property
    def r(self) -> int:
        return self.arch.r

    def int8_slots(self) -> list[int]:
        return [i for i, b in enumerate(self.int8) if b]

    @property
    def int8_head(self) -> bool:
        """The head runs INT8: the last active block does (see the module doc)."""
        return self.int8[active_blocks(self.arch)[-1][1]]

    def key(self) -> str:
        return stable_hash(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "int8_slots": self.int8_slots()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QuantArch:
        try:
            arch = ArchConfig.from_dict(d["arch"])
            slots = {int(s) for s in d["int8_slots"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchError(f"QuantArch dict lacks or mistypes a field ({exc}): it needs 'arch' and 'int8_slots'.") \
                from None
        return cls(arch, tuple(i in slots for i in range(len(arch.ks))))

    def to_str(self) -> str:
        """The arch string and the precision of each active block, e.g. ``...|q:8-f-8-8``."""
        return f"{self.arch.to_str()}|q:" + "-".join("8" if self.int8[s] else "f" for _, s in active_blocks(self.arch))

    def __str__(self) -> str:
        return self.to_str()

    def policy(self) -> PrecisionPolicy:
        """The precision policy that deploys this pair: INT8 rules for its INT8 blocks (and the head when
        the last block is INT8), FP32 elsewhere."""
        pos = dict((s, k) for k, s in active_blocks(self.arch))
        rules = tuple(Rule(rf"/blocks\.{pos[s]}/.*", "int8") for s in self.int8_slots())
        rules += (Rule(HEAD, "int8"),) if self.int8_head else ()
        return PrecisionPolicy("fp32", rules, {"quant_arch": self.to_dict()})

    @classmethod
    def from_policy(cls, arch: ArchConfig, policy: PrecisionPolicy) -> QuantArch:
        """The bits a policy gives ``arch``'s blocks (a block is INT8 when the policy maps its layers to
        int8); refuses a policy that quantizes part of a block, the stem, or a head whose precision is
        not the last block's."""
        bits = [False] * len(arch.ks)
        for k, s in active_blocks(arch):
            probe = [f"/blocks.{k}/conv/Conv", f"/blocks.{k}/inverted_bottleneck/conv/Conv",
                     f"/blocks.{k}/point_linear/conv/Conv"]
            got = {policy.precision_for(n) for n in probe}
            if len(got) > 1:
                raise ArchError(f"Policy quantizes block {k} only in part ({sorted(got)}); a QuantArch holds one "
                                "precision per block.")
            bits[s] = got == {"int8"}
        if policy.precision_for("/first_conv/conv/Conv") != "fp32" or any(
                not re.fullmatch(r"/blocks\\\.\d+/\.\*", r.pattern) and r.pattern != HEAD for r in policy.rules):
            raise ArchError("Policy is not a per-block INT8/FP32 policy of a QuantArch (its rules must be "
                            "'/blocks\\.K/.*' and the head's on an FP32 default).")
        q = cls(arch, tuple(bits))
        head = {policy.precision_for(n) for n in HEAD_PROBES}
        if head != {"int8" if q.int8_head else "fp32"}:
            raise ArchError(f"Policy runs the head in {sorted(head)} after a last block in "
                            f"{'int8' if q.int8_head else 'fp32'}; a QuantArch's head follows its last block.")
        return q
