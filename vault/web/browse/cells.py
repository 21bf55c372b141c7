"""Record values as a person reads them: dates in one style, phones and mail as links, lists as words.

Nothing here shows raw JSON: a list becomes its items, an object its
`key: value` lines. Every function returns escaped Markup.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any, Callable
from urllib.parse import quote, quote_plus

from markupsafe import Markup, escape

from vault.domain.instants import day_words, minute_words
from vault.domain.contacts import ADDRESS_PARTS, address_text, addresses, typed_values
from vault.state.people import Directory
from vault.web.browse.rendering import INLINE_TYPES, blob_url, safe_url

_TEL = re.compile(r"[^0-9+*#]")
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
_SNIPPET = 120  # characters of a body shown in a list
_MARKS = re.compile(r"[*_`]+")


def parsed(value: Any) -> Any:
    """A field as stored: JSON text from a state view's column decoded, other values as they are."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def when_text(value: Any) -> str | None:
    """`3 Mar 2025, 14:05` (in this machine's time zone) for an ISO instant, `3 Mar 2025` for a date; else None."""
    if not isinstance(value, str) or not _ISO_START.match(value):
        return None
    try:
        if len(value) == 10:
            return day_words(date.fromisoformat(value))
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return minute_words(dt.astimezone() if dt.tzinfo is not None else dt)


def when(value: Any) -> Markup | None:
    """A timestamp as a <time> element: readable text, the exact ISO value in `datetime` and `title`."""
    text = when_text(value)
    if text is None:
        return None
    stamp = escape(value)  # built by hand: Markup.format costs three times as much, on every date of a list
    return Markup(f'<time datetime="{stamp}" title="{stamp}">{escape(text)}</time>')


def record_url(record_id: str, seq: int | None = None) -> str:
    return f"/-/record/{quote(record_id)}" + (f"?at=seq:{seq}" if seq is not None else "")


def thread_url(database: str, thread: str) -> str:
    """A conversation: its messages in date order (the thread page)."""
    return f"/-/thread?db={quote_plus(database)}&key={quote_plus(thread)}"  # as urlencode spells it


def link(href: str, text: Any) -> Markup:
    """`text` (escaped unless it is Markup) linking to `href`."""
    return Markup(f'<a href="{escape(href)}">{escape(text)}</a>')


def _kinds(v: dict[str, Any]) -> Markup:
    words = v.get("label") or ", ".join(v.get("types") or [])
    if v.get("pref") == 1:
        words = f"{words}, preferred" if words else "preferred"
    return Markup(f' <span class="lv-kind">{escape(words)}</span>') if words else Markup("")


def tel_href(value: str) -> str:
    return "tel:" + _TEL.sub("", value.removeprefix("tel:"))


def typed_list(column: str, value: Any) -> Markup | None:
    """Phones, emails, urls, … one a line, each a link where it can be one, with its label or types."""
    items = typed_values(parsed(value))
    if not items:
        return None
    lines = []
    for v in items:
        text = v["value"]
        if column == "phones":
            shown = link(tel_href(text), text.removeprefix("tel:"))
        elif column == "emails":
            shown = link("mailto:" + text.removeprefix("mailto:"), text.removeprefix("mailto:"))
        elif column == "urls" and safe_url(text) and text.lower().startswith(("http://", "https://")):
            shown = link(text, text)
        else:
            shown = escape(text)
        lines.append(Markup(f'<span class="lv-value">{shown}{_kinds(v)}</span>'))
    return Markup("<br>").join(lines)


def address_list(value: Any) -> Markup | None:
    items = addresses(parsed(value))
    if not items:
        return None
    lines = []
    for a in items:
        lines.append(Markup(f'<span class="lv-value">{escape(address_text(a))}{_kinds(a)}</span>'))
    return Markup("<br>").join(lines)


def photo(value: Any, size: str = "3em") -> Markup | None:
    """A contact's photo (an attachment reference) as a thumbnail; None if it is not an image we show inline."""
    ref = parsed(value)
    if not isinstance(ref, dict) or not isinstance(ref.get("blob"), str):
        return None
    ctype = str(ref.get("type") or "")
    name = str(ref.get("name") or f"photo.{ctype.split('/')[-1] or 'jpg'}")
    if ctype and ctype not in INLINE_TYPES:
        return None
    return Markup('<img class="lv-photo" src="{}" alt="photo" style="max-height:{};max-width:{};border-radius:4px">'
                  ).format(blob_url(ref["blob"], name), size, size)


def people(value: Any, directory: Directory | None, seq: int | None = None) -> Markup | None:
    """Senders and recipients: the contact's name (a link to it) where one is known, else the text as written."""
    items = parsed(value)
    items = items if isinstance(items, list) else [items]
    shown = []
    for item in items:
        if not isinstance(item, str) or not item:
            continue
        person = directory.lookup(item) if directory else None
        if person and person.name:
            shown.append(Markup(f'<a href="{escape(record_url(person.id, seq))}" title="{escape(item)}">'
                                f'{escape(person.name)}</a>'))
        else:
            shown.append(escape(item))
    return Markup(", ").join(shown) if shown else None


def tags(value: Any, filter_url: Callable[[str], str] | None = None) -> Markup | None:
    """Tags as small labels, each a link to the notes holding it when `filter_url` is given."""
    items = [t for t in (parsed(value) if isinstance(parsed(value), list) else [value]) if isinstance(t, str) and t]
    if not items:
        return None
    out = [link(filter_url(t), t) if filter_url else escape(t) for t in items]
    return Markup('<span class="lv-tags">{}</span>').format(Markup(" · ").join(out))


def snippet(text: Any) -> str:
    """A body as one short line of plain words (Markdown marks and line breaks dropped)."""
    text = str(text or "")
    head = 4 * _SNIPPET
    while True:
        # Only the start of a body is shown: its first lines are enough (a 20 KB mail took 270 us whole). The
        # last line of a cut is left out, so what is kept reads as it would in the whole text.
        cut = len(text) > head
        lines = text[:head].splitlines()[:-1] if cut else text.splitlines()
        words = _MARKS.sub("", " ".join(line.strip().lstrip("#>-*").strip() for line in lines if line.strip()))
        if len(words) > _SNIPPET or not cut:
            break
        head *= 4
    return words if len(words) <= _SNIPPET else words[:_SNIPPET - 1].rstrip() + "…"


def plain_text(value: Any) -> str:
    """Any stored value as one line of words (for diffs and titles): no JSON, typed values with their labels."""
    value = parsed(value)
    if isinstance(value, list):
        return "; ".join(t for t in (plain_text(v) for v in value) if t)
    if isinstance(value, dict):
        if isinstance(value.get("value"), str):  # a typed value (contacts.py)
            kinds = value.get("label") or ", ".join(str(t) for t in value.get("types") or [])
            return value["value"] + (f" ({kinds})" if kinds else "")
        if any(k in value for k in ADDRESS_PARTS + ("formatted",)):
            return address_text(value)
        if isinstance(value.get("blob"), str):  # an attachment
            return str(value.get("name") or "attachment")
        return "; ".join(f"{k}: {plain_text(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else when_text(value) or str(value)


def plain(value: Any) -> Markup:
    """Any stored value without JSON: lists as their items, pairs as `name: value`, objects as lines."""
    value = parsed(value)
    if isinstance(value, list):
        if all(isinstance(v, (str, int, float)) for v in value):
            return escape(", ".join(str(v) for v in value))
        if all(isinstance(v, list) and len(v) == 2 for v in value):
            return Markup("<br>").join(Markup("{}: {}").format(k, v) for k, v in value)
        return Markup("<br>").join(plain(v) for v in value)
    if isinstance(value, dict):
        return Markup("<br>").join(Markup("{}: {}").format(k, plain(v)) for k, v in value.items() if v not in (None, ""))
    if isinstance(value, bool):
        return escape("yes" if value else "no")
    return when(value) or escape("" if value is None else str(value))

