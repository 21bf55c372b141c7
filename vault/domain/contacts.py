"""The contact field model: typed, labelled values, as vCard 4 and Google Contacts carry them.

Every importer and exporter of contacts (vCard, Google CSV, the demo, CardDAV later) reads and writes
this one shape; it is pure data (no I/O), beside the kinds' fields and types in kinds.py.

A *typed value* (each item of `phones`, `emails`, `urls`, `impps`, and of the extra lists `relations`,
`dates`, `custom_fields`) is a JSON object:

    {"value": "+44 20 7946 0000",   # the text as the source wrote it (a tel:/xmpp: URI stays a URI)
     "types": ["work", "voice"],    # vCard TYPE values, lower case, in source order ("pref" is not one)
     "label": "Boat",               # a free label: X-ABLabel, or Google's label column; null when none
     "pref": 1,                     # preference 1 (most) .. 100, vCard 4 PREF / 3.0 TYPE=pref; null when none
     "params": {"X-SERVICE-TYPE": ["Skype"]},  # optional: other parameters, verbatim (ALTID, PID, …)
     "group": "item1"}              # optional: the vCard group it came from (keeps companion lines beside it)

An *address* (each item of `addresses`) has the same `types`, `label`, `pref` (and optional `params`,
`group`) plus the parts that are not empty: `po_box`, `extended`, `street`, `city`, `region`, `code`,
`country`, and `formatted` (vCard 4 ADR LABEL, Google's "Formatted").

Vaults written before this model hold bare strings (`["+44 20 7946 0000"]`) and addresses with one
`"type": "home"`; the readers here accept both, and `upgraded` gives the new shape, which an import or
`lifevault upgrade` appends as an ordinary update event (history is never rewritten).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

TYPED_FIELDS = ("phones", "emails", "urls", "impps", "relations", "dates", "custom_fields")
ADDRESS_PARTS = ("po_box", "extended", "street", "city", "region", "code", "country")
_ADDRESS_KEYS = (*ADDRESS_PARTS, "formatted")


def typed(value: str, types: Iterable[str] = (), label: str | None = None, pref: int | None = None,
          params: dict[str, list[str]] | None = None, group: str | None = None) -> dict[str, Any]:
    """One typed value in the model's shape (optional keys only when they hold something)."""
    return _qualified({"value": value}, types, label, pref, params, group)


def typed_values(items: Any) -> list[dict[str, Any]]:
    """A stored list of either shape as typed values: a bare string becomes one with no type."""
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            out.append(typed(item))
        elif isinstance(item, dict) and isinstance(item.get("value"), str):
            out.append(typed(item["value"], [str(t) for t in item.get("types") or []], item.get("label"),
                             _pref(item.get("pref")), item.get("params"), item.get("group")))
    return out


def address(parts: dict[str, Any], types: Iterable[str] = (), label: str | None = None, pref: int | None = None,
            params: dict[str, list[str]] | None = None, group: str | None = None) -> dict[str, Any]:
    """One address in the model's shape; {} when it has no part at all."""
    out: dict[str, Any] = {k: str(parts[k]) for k in _ADDRESS_KEYS if str(parts.get(k) or "").strip()}
    return _qualified(out, types, label, pref, params, group) if out else {}


def _qualified(out: dict[str, Any], types: Iterable[str], label: str | None, pref: int | None,
               params: dict[str, list[str]] | None, group: str | None) -> dict[str, Any]:
    """`out` with what qualifies a value or an address: types, label, pref, and params and group if any."""
    out.update(types=list(types), label=label or None, pref=pref)
    if params:
        out["params"] = params
    if group:
        out["group"] = group
    return out


def addresses(items: Any) -> list[dict[str, Any]]:
    """Stored addresses of either shape (`"type": "home"` before, `"types": [...]` now)."""
    out = []
    for a in items if isinstance(items, list) else []:
        if isinstance(a, dict):
            types: list[Any] = a["types"] if isinstance(a.get("types"), list) else [a["type"]] if a.get("type") else []
            made = address(a, [str(t) for t in types], a.get("label"), _pref(a.get("pref")), a.get("params"),
                           a.get("group"))
            if made:
                out.append(made)
    return out


def address_text(a: Mapping[str, Any]) -> str:
    """An address as one line: the lines its source wrote (`formatted`), else its parts joined by commas."""
    return str(a.get("formatted") or ", ".join(str(a[k]) for k in ADDRESS_PARTS if a.get(k)))


def texts(items: Any) -> list[str]:
    """Just the values of a typed list of either shape, for display and search."""
    return [v["value"] for v in typed_values(items)]


def upgraded(fields: dict[str, Any]) -> dict[str, Any]:
    """A contact's fields in the current shape (the same dict's values when already current)."""
    out = dict(fields)
    for name in TYPED_FIELDS:
        if isinstance(fields.get(name), list):
            out[name] = typed_values(fields[name])
    if isinstance(fields.get("addresses"), list):
        out["addresses"] = addresses(fields["addresses"])
    return out


def _pref(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100 else None
