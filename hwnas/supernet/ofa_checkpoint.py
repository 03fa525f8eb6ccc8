"""Load official Once-for-All MobileNetV3 checkpoints (and hwnas's own) from a local file.

Accepted layouts: ``{'state_dict': ...}`` or a bare state dict; an optional
``module.`` prefix (DataParallel); the Jan-2020 ``mobile_inverted_conv`` block name
or the current ``conv``; dynamic (``.conv.conv.weight``, ``.bn.bn.``,
``.linear.linear.``) or static (``.conv.weight``, ``.bn.``, ``.linear.``) names;
``num_batches_tracked`` present or absent. Every key and shape is checked before
anything is copied: a mismatch raises :class:`CheckpointError` listing the first
offenders, and the network is left untouched. So does a tensor holding NaN or Inf
(a diverged run exports a network that outputs NaN, silently). A different class
count loads everything but the classifier and says so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from hwnas.errors import CheckpointError
from hwnas.supernet.elastic import ElasticMBV3
from hwnas.supernet.spaces import SearchSpace, get_space

log = logging.getLogger(__name__)

_ALIASES = ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"), (".linear.linear.", ".linear."))


def _read(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"Checkpoint '{p}' does not exist: give the path of the downloaded file.")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as exc:  # safetensors raises several types for a bad file
            raise CheckpointError(f"Checkpoint '{p}' is not a readable safetensors file ({exc}).") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise CheckpointError(
            f"Checkpoint '{p}' cannot be read as a weights-only torch file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}). Is it truncated or not a checkpoint?"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"Checkpoint '{p}' holds no state dict of tensors.")
    return obj


def normalize_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.``, map ``mobile_inverted_conv`` → ``conv``, drop ``num_batches_tracked``."""
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^module\.", "", k)
        k = k.replace(".mobile_inverted_conv.", ".conv.")
        out[k] = v
    return out


def match_state(model_keys: dict[str, torch.Size], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map file keys onto model keys, trying the dynamic ↔ static aliases; keys the model lacks stay as-is."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in model_keys:
            out[k] = v
            continue
        for a, b in _ALIASES:
            for src, dst in ((a, b), (b, a)):
                cand = k.replace(src, dst)
                if cand != k and cand in model_keys:
                    out[cand] = v
                    break
            else:
                continue
            break
        else:
            out[k] = v
    return out


def check_finite(state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Refuse a state dict with a NaN or Inf value, naming the first tensors (file names)."""
    bad = []
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n_nan, n_inf = int(torch.isnan(v).sum()), int(torch.isinf(v).sum())
            bad.append(f"{k} ({n_nan} NaN, {n_inf} Inf of {v.numel()})")
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite values in {len(bad)} tensor(s) (first: {'; '.join(bad[:3])}): the run that "
            "wrote it diverged or the file is corrupt; use an earlier checkpoint or retrain."
        )


def load_state_into(net: ElasticMBV3, state: dict[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
    """Check ``state`` against ``net`` and copy it in; return notes (e.g. the skipped classifier)."""
    check_finite(state, source)
    own = {k: v.shape for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = match_state(own, normalize_keys(state))
    notes: list[str] = []
    cls_keys = [k for k in own if k.startswith("classifier.")]
    head_mismatch = all(k in state and state[k].shape != own[k] for k in cls_keys)
    if head_mismatch:
        n_file = state["classifier.linear.weight"].shape[0]
        notes.append(
            f"{source} has {n_file} classes, this network {net.space.n_classes}: loaded everything "
            "but the classifier, which keeps its fresh initialisation (fine-tune it)."
        )
        state = {k: v for k, v in state.items() if k not in cls_keys}
    missing = [k for k in own if k not in state and not (head_mismatch and k in cls_keys)]
    foreign = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k])}"
             for k in state if k in own and state[k].shape != own[k]]
    if missing or foreign or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (first: {'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} keys missing (first: {', '.join(missing[:3])})")
        if foreign:
            parts.append(f"{len(foreign)} unexpected keys (first: {', '.join(foreign[:3])})")
        raise CheckpointError(
            f"{source} does not fit space '{net.space.name}': " + "; ".join(parts)
            + ". Check that the file and --space match (e.g. w1.0 vs w1.2)."
        )
    net.load_state_dict(state, strict=False)
    return notes


def load_file_into(net: ElasticMBV3, path: str | Path) -> list[str]:
    """Load checkpoint file ``path`` into an existing ``net`` (all-or-nothing); return the notes."""
    notes = load_state_into(net, _read(path), source=f"Checkpoint '{path}'")
    for n in notes:
        log.warning(n)
    return notes


def load_supernet(path: str | Path, space: str | SearchSpace) -> tuple[ElasticMBV3, list[str]]:
    """Build the super-network of ``space`` and load ``path`` into it (all-or-nothing)."""
    net = ElasticMBV3(get_space(space))
    notes = load_file_into(net, path)
    return net.eval(), notes
