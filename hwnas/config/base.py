"""The base of every config: a small frozen dataclass that round-trips through versioned JSON.

A config is what a command line means. The CLI builds one from its options (``--config FILE``
replays a saved one, options given on the command line override it; ``--save-config FILE``
writes it) and calls the library with it; the Python API takes the same object or the same
fields as keyword arguments. Every run, bundle and profile directory stores the config it ran
with. ``id()`` is the content hash of the config.

Fields carry their command-line help in ``metadata`` (see :func:`option`); units live in the
names, as everywhere in hwnas.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from hwnas.errors import ConfigError

C = TypeVar("C", bound="Config")
REQUIRED: Any = None
"""Default of a field the user must give (the CLI says which option is missing)."""


def option(default: Any = REQUIRED, help: str = "", *, flag: str | None = None, short: str | None = None,
           argument: bool = False, required: bool = False) -> Any:
    """A config field with its command-line form: ``help`` text, a ``flag`` other than ``--field-name``
    (and a ``short`` one), ``argument`` for a positional argument, ``required`` when there is no
    sensible default."""
    meta = {"help": help, "flag": flag, "short": short, "argument": argument, "required": required}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple, or option_factory, for container defaults")
    return field(default=default, metadata=meta)


def data_option() -> Any:
    """The ``--data-option KEY=VALUE`` field of every command that reads a dataset (see
    :func:`hwnas.datasets.parse_data_options`)."""
    return option(None, "Image-folder option KEY=VALUE (repeatable): on_bad_image=stop|skip, "
                        "on_non_rgb=convert|refuse, workers=N, val_fraction=F, split_seed=N, color_jitter=true|false.",
                  flag="--data-option")


@dataclass(frozen=True)
class Config:
    """Base class; subclasses set ``KIND`` (the command it configures) and ``VERSION``."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if {"kind", "version"} & {f.name for f in fields(self)}:
            raise TypeError(f"{type(self).__name__}: 'kind' and 'version' are the config file's own keys, not fields")
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name], self.KIND))

    # ------------------------------------------------------------------ checks
    def missing(self) -> list[str]:
        """Required fields left empty."""
        return [f.name for f in fields(self) if f.metadata.get("required") and getattr(self, f.name) in (None, (), "")]

    def check_complete(self) -> None:
        miss = self.missing()
        if miss:
            flags = ", ".join(_flag(f) for f in fields(self) if f.name in miss)
            raise ConfigError(f"'{self.KIND}' needs {flags} (or --config FILE holding them).")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.KIND, "version": self.VERSION}
        for f in fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{source} is not a JSON object.")
        if data.get("kind") != cls.KIND:
            raise ConfigError(f"{source} is a '{data.get('kind')}' config, not '{cls.KIND}': pass it to "
                              f"'hwnas {data.get('kind')}'.")
        if data.get("version") != cls.VERSION:
            raise ConfigError(f"{source} has config version {data.get('version')}; this hwnas reads version "
                              f"{cls.VERSION} of '{cls.KIND}'. Write it again with --save-config.")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"kind", "version"})
        if unknown:
            raise ConfigError(f"{source} has unknown field(s) {', '.join(unknown)} for '{cls.KIND}'; known: "
                              f"{', '.join(sorted(names))}.")
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: str | os.PathLike) -> Path:
        from hwnas.fileio import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise ConfigError(f"Cannot read config '{p}' ({exc.strerror or exc}).") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Config '{p}' is not JSON ({exc}).") from None
        return cls.from_dict(data, f"'{p}'")

    def replace(self: C, **changes: Any) -> C:
        names = {f.name for f in fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ConfigError(f"'{self.KIND}' has no setting {', '.join(bad)}; it has {', '.join(sorted(names))}.")
        return replace(self, **changes)

    def id(self) -> str:
        from hwnas.types import stable_hash

        return stable_hash(self.to_dict())


def _flag(f) -> str:
    if f.metadata.get("argument"):
        return f.name.upper()
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _coerce(name: str, v: Any, hint: Any, kind: str) -> Any:
    """JSON / command-line values to the field's type (paths, tuples, numbers), or a clear error."""
    if v is None or v is MISSING:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, v, inner[0], kind) if inner else v
    try:
        if hint is Path:
            return Path(v)
        if hint is bool:
            if isinstance(v, str):
                if v.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(v)
                return v.lower() in ("true", "1", "yes")
            return bool(v)
        if hint in (int, float, str):
            if hint is int and isinstance(v, float) and not v.is_integer():
                raise ValueError(v)
            return hint(v)
        if origin is tuple:
            items = v.split(",") if isinstance(v, str) else list(v)
            items = [x for y in items for x in (y.split(",") if isinstance(y, str) else [y]) if x != ""]
            return tuple(_coerce(name, x, args[0], kind) for x in items)
        if origin is dict:
            if isinstance(v, (list, tuple)):
                out = {}
                for item in v:
                    if "=" not in str(item):
                        raise ValueError(f"'{item}' is not KEY=VALUE")
                    k, val = str(item).split("=", 1)
                    out[k.strip()] = val.strip()
                return out
            return {str(k): x for k, x in dict(v).items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"'{kind}' setting {name}={v!r} is not a valid {getattr(hint, '__name__', hint)} "
                          f"({exc}).") from None
    return v
