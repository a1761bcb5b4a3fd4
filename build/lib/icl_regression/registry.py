"""Name -> entry tables for everything a researcher extends: task families, models, baselines,
evaluation settings, experiments, figures. An entry is registered where it is defined; a stable
`stream_id` (never a position in a tuple) keys its random stream, so adding or reordering
entries never changes another entry's prompts."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """`registry.get(name)` of a name nobody registered; the message lists the allowed ones."""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._stream_ids: dict[str, int] = {}

    def register(self, name: str, entry: T | None = None, *, stream_id: int | None = None):
        """`registry.register("name", entry)`, or as a decorator `@registry.register("name")`."""
        if entry is None:
            return lambda fn: self.register(name, fn, stream_id=stream_id) or fn
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if stream_id is not None:
            if stream_id in self._stream_ids.values():
                owner = next(k for k, v in self._stream_ids.items() if v == stream_id)
                raise ValueError(f"{self.kind} {name!r}: stream_id {stream_id} is {owner!r}'s")
            self._stream_ids[name] = stream_id
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownName(f"{self.kind} {name!r} is unknown; allowed: {', '.join(self)}")
        return self._entries[name]

    def stream_id(self, name: str) -> int:
        self.get(name)
        if name not in self._stream_ids:
            raise ValueError(f"{self.kind} {name!r} was registered without a stream_id")
        return self._stream_ids[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())




def import_submodules(package: str, skip: Iterable[str] = ()) -> None:
    """Import every module of `package` but `skip` (each registers its entries on import), so a
    new file in the package is found by being there; cheap after the first call."""
    module = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda m: m.name):
        if info.name not in skip and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
