"""A tiny plugin registry: `@REG.register("name")` on a class or function, then `REG.get(name)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fteforge.errors import FteforgeError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if not (obj.__doc__ or "").strip():
                raise ValueError(f"{self.kind} {name!r} needs a docstring: it is shown in `fteforge list`")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise FteforgeError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._items.items())
