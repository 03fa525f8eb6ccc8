"""One generic name → factory registry, and the registries every stage shares.

Entries are registered with a factory and optional metadata; factories are only called on
lookup, so registering never imports a heavy library. ``list('*mbv3*')`` filters with
shell-style patterns (as timm's ``list_models``), and a lookup of an unknown name raises
:class:`~hwnas.errors.UnknownNameError` with a "did you mean" suggestion and the list of what is
available.

A registry may name a ``loader`` module that registers its entries when imported: the registry
imports it (by name) on first use. That is how :data:`SPACES` lives here while the spaces are
defined in :mod:`hwnas.supernet.spaces` — ``hwnas.types`` looks spaces up without importing the
module that defines them (which itself builds ``ArchConfig`` values), so there is no import circle.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hwnas.errors import ConfigError, UnknownNameError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of factories of one kind (``kind`` appears in errors).

    ``loader``: module imported on first use to fill the registry. ``singletons``: ``get(name)``
    builds each entry once (for immutable values such as search spaces). ``finder``:
    ``"module:function"`` called with a name not registered (or ``None`` before a listing) that may
    register it from elsewhere — how search spaces derived in an earlier process are found.
    """

    def __init__(self, kind: str, loader: str | None = None, singletons: bool = False,
                 finder: str | None = None, hint: str = "") -> None:
        self.kind = kind
        self._hint = hint
        self._loader = loader
        self._finder = finder
        self._finding = False
        self._singletons = singletons
        self._entries: dict[str, Entry[T]] = {}
        self._made: dict[str, T] = {}

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            importlib.import_module(loader)

    def _find(self, name: str | None) -> None:
        if self._finder is None or self._finding:
            return
        module, function = self._finder.split(":")
        self._finding = True
        try:
            getattr(importlib.import_module(module), function)(name)
        finally:
            self._finding = False

    def register(
        self, name: str, factory: Callable[..., T], description: str = "", **meta: Any
    ) -> Callable[..., T]:
        if name in self._entries:
            raise ConfigError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, factory, description, dict(meta))
        return factory

    def entry(self, name: str) -> Entry[T]:
        self._load()
        if name not in self._entries:
            self._find(name)
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'.{did_you_mean(name, names)} "
                f"Available: {', '.join(names)}.{' ' + self._hint if self._hint else ''}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.entry(name).factory(*args, **kwargs)

    def get(self, name: str) -> T:
        """The one instance of ``name`` (registries made with ``singletons=True``)."""
        if not self._singletons:
            return self.create(name)
        if name not in self._made:
            self._made[name] = self.create(name)
        return self._made[name]

    def list(self, pattern: str = "*") -> list[str]:
        self._load()
        self._find(None)
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.list()]

    def __contains__(self, name: object) -> bool:
        self._load()
        if name not in self._entries and isinstance(name, str):
            self._find(name)
        return name in self._entries


SPACES: Registry[Any] = Registry("search space", loader="hwnas.supernet.spaces", singletons=True,
                                 finder="hwnas.supernet.derive:find_stored",
                                 hint="A space derived by 'hwnas train-supernet --data' is known where it was "
                                      "trained, and wherever its weights are named (--checkpoint).")
"""Search spaces by name (filled by :mod:`hwnas.supernet.spaces`; derived spaces stored by
:mod:`hwnas.supernet.derive` are found on first use)."""
