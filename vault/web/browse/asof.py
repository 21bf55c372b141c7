"""Routes for the vault as it stood after event N (`asof_N`), and the few of them a server keeps open.

A past state costs nothing to make (TEMP views over the state file's history,
web/site/state_db.py), but Datasette keeps a connection per thread for each
database it knows, so only the most recently used few stay registered.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, unquote

from vault.domain.instants import human_time, typed_time

KEEP = 4  # past states kept registered with Datasette


_NAME = re.compile(r"^asof_(\d+)(?:_b\d+)?$")


def database_name(seq: int) -> str:
    """The Datasette route (URL segment) of the state after event `seq`."""
    return f"asof_{seq}"


def seq_of(database: str) -> int | None:
    """The seq an as-of route (`asof_N`) or Datasette name (`asof_N_bK`, one per registration) stands for, else None."""
    m = _NAME.match(database)
    return int(m.group(1)) if m else None


class AsOfStates:
    """Which past states are registered, least recently used first."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._seqs: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()
        self.registrations = 0  # a fresh Datasette name each time: it keeps each thread's connection under the name

    def use(self, seq: int) -> tuple[bool, list[int]]:
        """Mark `seq` used; returns whether it is new and the seqs to drop."""
        with self._lock:
            new = seq not in self._seqs
            self._seqs[seq] = None
            self._seqs.move_to_end(seq)
            evicted = []
            while len(self._seqs) > self.keep:
                evicted.append(self._seqs.popitem(last=False)[0])
            return new, evicted

    def forget(self, seq: int) -> None:
        with self._lock:
            self._seqs.pop(seq, None)

    def close(self) -> None:
        with self._lock:
            self._seqs.clear()


# What the owner typed into the "as of" box (a date stays a date), remembered with the seq it chose.
TYPED_COOKIE = "lv_asof_typed"


def typed_cookie(seq: int, text: str) -> str:
    return quote(f"{seq}:{text}", safe="")


def typed_text(cookie: str | None, seq: int) -> str | None:
    """The text that chose `seq`, if the cookie remembers it."""
    kept, _, text = unquote(cookie or "").partition(":")
    return text if kept == str(seq) and text else None


def banner(seq: int | None, head: int, at: str | None, typed: str | None, *, known: bool = True) -> dict[str, Any]:
    """What the "as of" control shows: the date and time first, the event number as a detail, and the box's
    text (what was typed, else the state's date and time as one would type it). `known` is False when the
    instant could not be looked up in time (the vault busy with a long write): then the event number leads."""
    when = human_time(at) if at else None
    if seq is None:
        detail = f"last change {when}, event {head}" if when else f"event {head}" if head else "nothing stored yet"
        return {"seq": None, "head": head, "when": when, "box": typed or "", "detail": detail}
    if not known:
        return {"seq": seq, "head": head, "when": f"event {seq}", "box": typed or f"seq:{seq}", "detail": f"of {head}"}
    box = typed or (typed_time(at) if at else "seq:0")
    return {"seq": seq, "head": head, "when": when or "the start, before anything was stored", "box": box,
            "detail": f"event {seq} of {head}"}


class EventTimes:
    """When each event shown in a banner was recorded, remembered (a seq's instant never changes), and looked
    up without waiting long for the vault's lock: a long import through the API holds it, and a page would
    rather show the event number alone than wait for the import to end."""

    WAIT_S = 0.2
    KEEP = 256

    def __init__(self) -> None:
        self._known: OrderedDict[int, str | None] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, lock: Any, seq: int, lookup: Any) -> tuple[bool, str | None]:
        """(found, ISO instant or None for seq 0) of event `seq`; `lookup(seq)` runs under `lock` on a miss."""
        with self._guard:
            if seq in self._known:
                return True, self._known[seq]
        if not lock.acquire(timeout=self.WAIT_S):
            return False, None
        try:
            at = lookup(seq)
        finally:
            lock.release()
        with self._guard:
            self._known[seq] = at
            while len(self._known) > self.KEEP:
                self._known.popitem(last=False)
        return True, at
