"""Search spaces derived from a named one for the user's data (torch-free).

A derived space keeps the base space's block family — stem, stages, widths, kernel / expand /
depth choices — so a checkpoint of the base loads into it (all but the classifier when the class
count differs), and changes what the data decides: input channels, number of classes and the
resolution range. :func:`derive_space` registers it under a name an arch string can carry;
:func:`space_to_dict` / :func:`space_from_dict` round-trip its definition through JSON, so
weights trained for it record the space they need (:func:`register_space` is idempotent for an
identical definition and refuses a different one under the same name).

A registered derived space is also stored in the per-user cache (``$HWNAS_CACHE/spaces/NAME.json``),
where the space registry finds it in a later process (:func:`find_stored`): a space derived by
``hwnas train-supernet --data FOLDER`` is then a ``--space`` of every command, as a named one is.
Weights, which carry the definition, register it again wherever they are loaded.
"""

from __future__ import annotations

import json
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


_LABELS = ("description", "dataset")  # what a space says about itself, not what it is


def same_architecture(a: SearchSpace, b: SearchSpace) -> bool:
    """Whether two definitions describe the same networks (descriptions and data notes aside)."""
    da, db = space_to_dict(a), space_to_dict(b)
    return {k: v for k, v in da.items() if k not in _LABELS} == {k: v for k, v in db.items() if k not in _LABELS}


def register_space(sp: SearchSpace, derived_from: str = "", store: bool = True) -> SearchSpace:
    """Register ``sp`` by its name (and, with ``store``, keep its definition in the per-user space
    store); a space of the same architecture already registered under the name is returned as is,
    a different one is refused."""
    if not _NAME.match(sp.name):
        raise ConfigError(f"Space name '{sp.name}' may hold only letters, digits and . + @ - (no '/' or '_').")
    if sp.name in SPACES:
        old = SPACES.get(sp.name)
        if not same_architecture(old, sp):
            raise ConfigError(f"A different space is already registered as '{sp.name}': choose another name "
                              "(train-supernet --space-name NAME).")
        return old
    SPACES.register(sp.name, lambda: sp, sp.description, derived=True, derived_from=derived_from)
    if store:
        _store(sp, derived_from)
    return SPACES.get(sp.name)


def store_dir():
    from hwnas.fileio import cache_dir

    return cache_dir("spaces")


def _store(sp: SearchSpace, derived_from: str) -> None:
    from hwnas.fileio import atomic_write_json

    path = store_dir() / f"{sp.name}.json"
    if not path.exists():
        atomic_write_json(path, {**space_to_dict(sp), "derived_from": derived_from})


def find_stored(name: str | None) -> None:
    """Register the stored derived space ``name`` (every stored one for ``None``) — the space
    registry's finder. Unreadable files are passed over: a missing name then reports as unknown."""
    if name is not None and not _NAME.match(name):
        return
    d = store_dir()
    for path in ([d / f"{name}.json"] if name is not None else sorted(d.glob("*.json"))):
        try:
            raw = json.loads(path.read_text())
            sp = space_from_dict(raw)
        except (OSError, ValueError, ConfigError):
            continue
        if sp.name == path.stem and sp.name not in SPACES:
            register_space(sp, raw.get("derived_from", ""), store=False)


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



def space_to_train(base: str | SearchSpace, dataset, name: str | None = None) -> SearchSpace:
    """The space ``hwnas train-supernet`` trains on ``dataset``: ``base`` itself when the data fits
    it (same channels and classes and, for an image folder, images large enough for its
    resolutions) and no ``name`` is asked for; else a space derived for the data, named ``name``."""
    sp = get_space(base)
    res = tuple(sp.resolutions)
    if hasattr(dataset, "image_size"):
        w, h = dataset.image_size()
        res = resolutions_for_images(sp, min(w, h))
    fits = (sp.in_channels, sp.n_classes, tuple(sp.resolutions)) == (dataset.channels, len(dataset.classes), res)
    if fits and name is None:
        return sp
    return space_for_dataset(sp, dataset, name, res)
