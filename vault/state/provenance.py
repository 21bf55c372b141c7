"""Where each value of a record came from, read from the record's history.

Provenance is derived, not stored: every event already records its source (an import's format, file and
import id; the CLI; an API token's name; a fork), so the version in which a value last appeared names where
it came from. A list (phones, emails, tags, attachments…) is followed item by item, so a phone one import
brought and an email another added each name their own source, whatever their order in the list.
"""

from __future__ import annotations

import json
from typing import Any, Iterable



def _key(value: Any) -> str:
    """One spelling per value, so an item is recognised again in a later version of its list."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _items(data: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(field, spelling) -> value for every scalar field and every item of every list field."""
    out: dict[tuple[str, str], Any] = {}
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            out[(name, _key(item))] = item
    return out


def trace(versions: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """For each field of the last version, in its order: `{"value", "seq", "at", "source"}` per item (one for
    a scalar), naming the version since which the item has been there without a break."""
    since: dict[tuple[str, str], dict[str, Any]] = {}
    last: dict[str, Any] = {}
    for v in versions:
        last = v["data"] or {}
        now = _items(last)
        since = {k: since.get(k) or {"seq": v["seq_from"], "at": v["valid_from"], "source": v["source"]}
                 for k in now}
    out: dict[str, list[dict[str, Any]]] = {}
    for name, value in last.items():
        items = value if isinstance(value, list) else [value]
        out[name] = [{"value": item, **since[(name, _key(item))]} for item in items]
    return out
