"""One generic name → factory registry.

Entries are registered with a factory and optional metadata; factories are only
called on lookup, so registering never imports a heavy library. ``list('*mbv3*')``
filters with shell-style patterns (as timm's ``list_models``), and a lookup of
an unknown name raises :class:`~hwnas.errors.UnknownNameError` with a
"did you mean" suggestion and the list of what is available.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hwnas.errors import UnknownNameError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of factories of one kind (``kind`` appears in errors)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, factory: Callable[..., T], description: str = "", **meta: Any
    ) -> Callable[..., T]:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, factory, description, dict(meta))
        return factory

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'.{did_you_mean(name, names)} "
                f"Available: {', '.join(names)}."
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.entry(name).factory(*args, **kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.list()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries
