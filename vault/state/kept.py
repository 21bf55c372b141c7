"""Answers kept under keys that name the state they were given in: a later state's key misses them, so nothing
kept is ever stale, and the least recently used go first past a bound."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class Kept:
    """A thread-safe LRU map bounded by the total `weigh` of its values (1 each unless told), keeping at least
    the newest one whatever it weighs."""

    def __init__(self, limit: int, weigh: Callable[[Any], int] = lambda _: 1) -> None:
        self.limit, self._weigh = limit, weigh
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()
        self._weight = 0
        self._guard = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._guard:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Any) -> None:
        with self._guard:
            if key in self._kept:
                self._weight -= self._weigh(self._kept.pop(key))
            self._kept[key] = value
            self._weight += self._weigh(value)
            while self._weight > self.limit and len(self._kept) > 1:
                self._weight -= self._weigh(self._kept.popitem(last=False)[1])
