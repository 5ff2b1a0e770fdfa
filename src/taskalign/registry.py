"""One small registry class; each kind (encoders, tasks, data sources, pretrainers) owns one."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from taskalign.errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory. Registering a name twice is an error, so plugins cannot shadow silently."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered; pick another name")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
