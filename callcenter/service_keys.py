"""Typed per-process services held by the context, in place of a bag of string keys.

The package that owns a service declares its key next to the code that makes it
(``ROUTING: Service[Routing] = Service("routing")`` in ``cti/services.py``); the context only
holds values by key, so the kernel never imports a domain package and every reader gets the
type the owner declared. Keys compare by identity: declare each once, as a module constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry

T = TypeVar("T")


class Service(Generic[T]):
    """The key of one process-wide object of type ``T``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Service({self.name!r})"


class Services:
    """The services of one process (one per ``AppContext``)."""

    def __init__(self) -> None:
        self._values: dict[Service[Any], Any] = {}

    def get(self, key: Service[T]) -> T | None:
        value: T | None = self._values.get(key)
        return value

    def set(self, key: Service[T], value: T) -> T:
        self._values[key] = value
        return value

    def get_or_make(self, key: Service[T], make: Callable[[], T]) -> T:
        """The service, made by ``make`` the first time it is asked for."""
        if key not in self._values:
            self._values[key] = make()
        value: T = self._values[key]
        return value

    def pop(self, key: Service[T]) -> T | None:
        value: T | None = self._values.pop(key, None)
        return value


REGISTRY: Service[CollectorRegistry] = Service("prometheus registry")  # what /metrics serves
