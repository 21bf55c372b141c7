"""What a person calls a record: a contact's name, a message's subject, a note's title, and its date.

Pages, search hits and any other front end show these instead of record ids.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from vault.domain.contacts import texts
from vault.domain.events import Kind

_LENGTH = 80  # characters of a body's first line used as a title


def first_line(text: Any) -> str:
    """The first non-empty line of a text, without Markdown heading marks, shortened to a title's length."""
    for line in str(text or "").splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= _LENGTH else line[:_LENGTH - 1].rstrip() + "…"
    return ""


def name_of(kind: Kind, fields: Mapping[str, Any] | None) -> str:
    """The record's name, subject or title, else the words that best stand for it; '' when nothing does."""
    f = fields or {}
    if kind is Kind.CONTACT:
        parts = " ".join(str(f[k]) for k in ("given_name", "family_name") if isinstance(f.get(k), str) and f[k])
        return _text(f.get("name")) or parts or _text(f.get("organization")) or next(
            iter(texts(_listed(f.get("emails"))) + texts(_listed(f.get("phones")))), "")
    if kind is Kind.MESSAGE:
        return _text(f.get("subject")) or first_line(f.get("body")) or _text(f.get("from"))
    if kind is Kind.NOTE:
        return _text(f.get("title")) or first_line(f.get("body"))
    named = next((_text(f.get(n)) for n in kind.spec.title_fields if _text(f.get(n))), "")  # a plugin's kind
    return named or first_line(f.get("body"))


def record_title(kind: Kind, fields: Mapping[str, Any] | None) -> str:
    """What a heading shows: the record's name (`name_of`), or words saying it has none."""
    return name_of(kind, fields) or {Kind.CONTACT: "(no name)", Kind.MESSAGE: "(no subject)"}.get(kind, "(untitled)")


def record_when(kind: Kind, fields: Mapping[str, Any] | None) -> str | None:
    """The date a person knows the record by (ISO text): a message's date, a note's last change
    (its own `updated`, else when the vault last changed it); None for contacts."""
    f = fields or {}
    if kind is Kind.MESSAGE:
        return _text(f.get("date")) or None
    if kind is Kind.NOTE:
        return _text(f.get("updated")) or _text(f.get("updated_at")) or _text(f.get("created")) or None
    return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _listed(value: Any) -> Any:
    """A list field as stored in a record, or as JSON text in a state view's column."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return []
    return value
