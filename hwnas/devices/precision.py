"""Which precisions the host CPU can run, and what a runtime really ran.

A float precision other than FP32 needs instructions the CPU may lack: BF16 needs AVX512-BF16 or
AMX-BF16 (x86) or the Arm ``bf16`` feature; FP16 needs AVX512-FP16 or AMX-FP16 (x86) or Arm
``asimdhp``. Runtimes do not refuse a missing one — OpenVINO silently runs such layers in f32 —
so hwnas reads the ISA from the host facts (:func:`hwnas.devices.base.host_facts`) and refuses
up front, with one line that names the fix, then confirms after compiling with what ran.

"What ran" is a per-layer map from the runtime's own executed graph (OpenVINO's runtime model,
ONNX Runtime's optimised graph): layer name → ``int8`` / ``fp32`` / ``bf16`` / ``fp16``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.errors import ConfigError

FLOAT_ISA = {"bf16": ("avx512_bf16", "amx_bf16", "bf16"), "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}
"""Any one of these CPU flags lets the CPU compute in that float precision natively."""

ELEMENT = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8", "fp32": "fp32",
           "int8": "int8", "fp16": "fp16"}
"""Runtime element type names → policy precision names."""


def host_float_precisions(facts: Mapping[str, Any]) -> tuple[str, ...]:
    """Float precisions the host of ``facts`` computes natively (FP32 always)."""
    isa = set(facts.get("isa", []))
    return ("fp32",) + tuple(p for p, flags in FLOAT_ISA.items() if isa & set(flags))


def require_float_precision(device: str, precision: str, facts: Mapping[str, Any], runtime_note: str = "") -> None:
    """One clear line when ``precision`` needs instructions the host lacks (nothing is run)."""
    if precision in host_float_precisions(facts) or precision not in FLOAT_ISA:
        return
    flags = "/".join(f for f in FLOAT_ISA[precision] if f not in ("bf16", "asimdhp"))
    raise ConfigError(f"{device} cannot run {precision} on this CPU ({facts.get('cpu', '?')}): it lacks {flags} "
                      f"(ISA: {', '.join(facts.get('isa', [])) or 'unknown'}){runtime_note}; use --precision "
                      f"fp32 or int8 here, or a CPU with {flags}.")


def ran_record(layers: Mapping[str, str], source: str) -> dict[str, Any]:
    """The manifest's record of what ran: per-layer precisions, their counts and where they were read."""
    from collections import Counter

    return {"source": source, "summary": dict(sorted(Counter(layers.values()).items())), "layers": dict(layers)}


def mismatches(policy, layers: Mapping[str, str]) -> list[str]:
    """Layers that ran (as the runtime names them) in another precision than ``policy`` asks — a
    report, since runtimes may keep a layer float on their own."""
    return [f"{n}: asked {policy.precision_for(n)}, ran {got}" for n, got in layers.items()
            if got != policy.precision_for(n)]
