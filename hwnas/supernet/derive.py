"""Search spaces derived from a named one for the user's data (torch-free).

A derived space keeps the base space's block family — stem, stages, widths, kernel / expand /
depth choices — so a checkpoint of the base loads into it (all but the classifier when the class
count differs), and changes what the data decides: input channels, number of classes and the
resolution range. :func:`derive_space` registers it under a name an arch string can carry;
:func:`space_to_dict` / :func:`space_from_dict` round-trip its definition through JSON, so
weights trained for it record the space they need (:func:`register_space` is idempotent for an
identical definition and refuses a different one under the same name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from typing import Any

from hwnas.errors import ConfigError
from hwnas.registry import SPACES
from hwnas.supernet.spaces import SearchSpace, StageSpec, get_space

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+@-]*$")


def space_to_dict(sp: SearchSpace) -> dict[str, Any]:
    """The space's full definition as plain JSON values."""
    d = asdict(sp)
    d["stages"] = [asdict(s) for s in sp.stages]
    return d


def space_from_dict(d: dict[str, Any]) -> SearchSpace:
    """Inverse of :func:`space_to_dict` (not registered; see :func:`register_space`)."""
    try:
        kw = {f.name: d[f.name] for f in fields(SearchSpace) if f.name in d}
        kw["stages"] = tuple(StageSpec(**s) for s in d["stages"])
        for k in ("kernel_choices", "expand_choices", "depth_choices", "resolutions"):
            kw[k] = tuple(kw[k])
        return SearchSpace(**kw)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"Not a search-space definition ({type(exc).__name__}: {exc}).") from None


def register_space(sp: SearchSpace, derived_from: str = "") -> SearchSpace:
    """Register ``sp`` by its name; an identical definition already registered is returned as is."""
    if not _NAME.match(sp.name):
        raise ConfigError(f"Space name '{sp.name}' may hold only letters, digits and . + @ - (no '/' or '_').")
    if sp.name in SPACES:
        old = SPACES.get(sp.name)
        if space_to_dict(old) != space_to_dict(sp):
            raise ConfigError(f"A different space is already registered as '{sp.name}': choose another name.")
        return old
    SPACES.register(sp.name, lambda: sp, sp.description, derived_from=derived_from)
    return SPACES.get(sp.name)


def resolutions_for_images(base: str | SearchSpace, short_side_px: int) -> tuple[int, ...]:
    """The base space's resolutions when the images are large enough for its largest one under
    the evaluation crop (``r ≤ 0.875 × shorter side``); otherwise the same step and the same
    lo/hi ratio, scaled down so the largest fits (at least 16 px)."""
    sp = get_space(base)
    res = sorted(sp.resolutions)
    lo, hi = res[0], res[-1]
    step = min((b - a for a, b in zip(res, res[1:])), default=4)
    fit = int(short_side_px * 0.875)
    if fit >= hi:
        return tuple(res)
    new_hi = max(16, fit // step * step)
    new_lo = max(16, int(round(new_hi * lo / hi / step)) * step)
    return tuple(range(min(new_lo, new_hi), new_hi + 1, step))


def derive_space(base: str | SearchSpace, in_channels: int | None = None, n_classes: int | None = None,
                 resolutions: Sequence[int] | None = None, name: str | None = None,
                 dataset: str = "") -> SearchSpace:
    """A space of ``base``'s block family for other data, registered under ``name``.

    ``None`` keeps the base's value. The default name says what changed, e.g.
    ``ofa-mbv3-w1.0-10c-r32-56``. ``dataset`` records what the space is for (e.g. an image
    folder's fingerprint).
    """
    sp = get_space(base)
    in_channels = sp.in_channels if in_channels is None else int(in_channels)
    n_classes = sp.n_classes if n_classes is None else int(n_classes)
    res = tuple(sorted({int(r) for r in (resolutions or sp.resolutions)}))
    if in_channels < 1 or n_classes < 2:
        raise ConfigError(f"A derived space needs >= 1 input channel and >= 2 classes, got {in_channels} and "
                          f"{n_classes}.")
    if not res or res[0] < 8:
        raise ConfigError(f"Resolutions must be >= 8 px, got {list(res)}.")
    if name is None:
        tag = [f"{n_classes}c"] + ([f"{in_channels}ch"] if in_channels != sp.in_channels else [])
        name = f"{sp.name}-{'-'.join(tag)}-r{res[0]}" + (f"-{res[-1]}" if len(res) > 1 else "")
    desc = (f"{sp.name} blocks for {in_channels}x{res[0]}..{res[-1]} images, {n_classes} classes"
            + (f" ({dataset})" if dataset else ""))
    new = replace(sp, name=name, description=desc, in_channels=in_channels, n_classes=n_classes, resolutions=res,
                  dataset=dataset or sp.dataset)
    return register_space(new, derived_from=sp.name)


def space_for_dataset(base: str | SearchSpace, dataset, name: str | None = None,
                      resolutions: Sequence[int] | None = None) -> SearchSpace:
    """:func:`derive_space` with channels and classes from ``dataset`` and, unless given, the
    resolutions from its images' median shorter side (image folders; others keep the base's)."""
    sp = get_space(base)
    if resolutions is None and hasattr(dataset, "image_size"):
        w, h = dataset.image_size()
        resolutions = resolutions_for_images(sp, min(w, h))
    desc = dataset.describe()
    tag = desc["name"] + (f" {desc['fingerprint']}" if "fingerprint" in desc else "")
    return derive_space(sp, dataset.channels, len(dataset.classes), resolutions, name, dataset=tag)


def space_from_checkpoint(path) -> SearchSpace | None:
    """Register and return the space recorded in hwnas safetensors weights (``space_def``
    metadata, written by training), or ``None`` when the file records none."""
    import json
    from pathlib import Path

    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(p), "np") as fh:
            meta = dict(fh.metadata() or {})
    except Exception:  # not readable as safetensors: the loader reports it with the fix
        return None
    if "space_def" not in meta:
        return None
    return register_space(space_from_dict(json.loads(meta["space_def"])))
