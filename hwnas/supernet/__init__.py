"""Search spaces (torch-free), the elastic super-network, extraction, training and checkpoints.

``hwnas.supernet.spaces`` imports no torch; everything else here does.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "weights"


def shipped_weights(space: str) -> Path | None:
    """The super-network weights shipped with hwnas for ``space``, if any."""
    p = SHIPPED_DIR / f"{space}.safetensors"
    return p if p.is_file() else None


def load_supernet(space: str, checkpoint: str | Path | None = None, allow_random: bool = True):
    """The super-network of ``space`` with weights from ``checkpoint``.

    ``checkpoint``: a path (official OFA file, hwnas safetensors or torch file), or
    ``None`` for the weights shipped with hwnas for that space. Weights trained for a derived
    space (:mod:`hwnas.supernet.derive`) register that space when it is not known yet. Without either, a
    freshly initialised network is returned when ``allow_random`` (fine for
    latency work, meaningless for accuracy) and a ``CheckpointError`` otherwise.
    Returns ``(supernet, source)`` where ``source`` says where the weights came from.
    """
    from hwnas.errors import CheckpointError
    from hwnas.registry import SPACES
    from hwnas.supernet.elastic import ElasticMBV3
    from hwnas.supernet.ofa_checkpoint import load_supernet as _load
    from hwnas.supernet.spaces import get_space

    if isinstance(space, str) and space not in SPACES and checkpoint is not None:
        from hwnas.supernet.derive import space_from_checkpoint

        space_from_checkpoint(checkpoint)  # weights trained for a derived space carry its definition
    sp = get_space(space)
    name = str(checkpoint)
    if checkpoint is None:
        checkpoint = shipped_weights(sp.name)
        if checkpoint is None:
            if not allow_random:
                raise CheckpointError(
                    f"No trained weights for space '{sp.name}': pass --checkpoint PATH "
                    f"(e.g. the official OFA file, or one written by 'hwnas train-supernet')."
                )
            return ElasticMBV3(sp).eval(), "random initialisation (no checkpoint given)"
        # name the shipped file relative to the package, not by this machine's install path
        name = f"shipped hwnas/data/weights/{checkpoint.name}"
    net, notes = _load(checkpoint, sp)
    return net, name + (f" ({'; '.join(notes)})" if notes else "")
