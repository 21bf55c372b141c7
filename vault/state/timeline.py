"""A record's history in plain words: who changed what, and when, one sentence per change.

Any front end (the web pages, the CLI, a CardDAV server's notes) shows a timeline the same way, so the words
are made here from the versions `Vault.history` returns: "Phone +44 20 7946 0000 added by import of
contacts.vcf, 3 Mar 2025", "Renamed from Ada to Ada Lovelace in the browser, 4 Mar 2025", "Deleted by undo of
the import of contacts.vcf, 5 Mar 2025". Values are shown as text (a phone's number, an address's lines, an
attachment's name), never as JSON.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from vault.domain.contacts import ADDRESS_PARTS, address_text
from vault.domain.events import Kind, kind_of
from vault.domain.instants import human_date, human_time
from vault.domain.titles import name_of

# How a field is named in a sentence: one item of a list field, or the field itself.
FIELD_WORDS = {
    "phones": "phone", "emails": "email", "addresses": "address", "urls": "web address", "impps": "chat address",
    "groups": "group", "tags": "tag", "attachments": "attachment", "photo": "photo", "given_name": "given name",
    "family_name": "family name", "body": "text", "from": "sender", "to": "recipient", "cc": "copy to",
    "bcc": "blind copy to", "reply_to": "reply-to", "message_id": "message id", "in_reply_to": "reply to message",
    "custom_fields": "custom field", "relations": "relation", "dates": "date",
}
SHORT = 80  # longer text is summarised ("text changed") in sentences; the diff shows it whole


def field_word(name: str) -> str:
    return FIELD_WORDS.get(name, name.replace("_", " "))


def record_label(record_id: str, data: Mapping[str, Any] | None) -> str:
    """What a person calls the record: a contact's name, a note's title, a message's subject, else its id."""
    return name_of(kind_of(record_id), data or {}) or record_id


def _renames(kind: Kind, name: str) -> bool:
    """Whether changing field `name` renames the record: it is the first of the kind's title fields."""
    return kind.spec.title_fields[:1] == (name,)


def item_text(value: Any) -> str:
    """A value as a person reads it: a typed value's text, an address's lines, an attachment's name; a list's
    items one after another."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("value"), str):
            return value["value"]
        if value.get("formatted") or any(value.get(k) for k in ADDRESS_PARTS):
            return address_text(value)
        if isinstance(value.get("blob"), str):
            return str(value.get("name") or value["blob"][:12])
        return "; ".join(f"{k}: {item_text(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, list):
        return ", ".join(item_text(v) for v in value)
    return "" if value is None else str(value)


def source_words(source: Mapping[str, Any], *, revert: bool = True) -> str:
    """Who made a change, to follow the change's words: `by import of contacts.vcf`, `in the browser`,
    `by a revert in the browser` (unless `revert` is False), …"""
    via, name, file = source.get("via"), source.get("name"), source.get("file")
    detail = source.get("detail") or {}
    if revert and detail.get("revert_to") is not None:
        return "by a revert " + source_words(source, revert=False).removeprefix("by ")
    if via == "import":
        what = file or name or "a file"
        if detail.get("undo_of"):
            return f"by undo of the import of {what}"
        return f"by import of {what}" + (" (no longer in the file)" if detail.get("mirror") else "")
    if via == "web":
        return "in the browser"
    if via == "cli":
        return "from the command line" + (f" ({name})" if name else "")
    if via == "api":
        return "through the API" + (f" (token {name})" if name else "")
    if via == "demo":
        return "by the demo"
    if via == "fork":
        return f"from the fork {name}" if name else "from a fork"
    return f"by {via}" + (f" {name}" if name else "")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The diff between two versions as rows of text: a list field item by item, other fields whole."""
    before, after = before or {}, after or {}
    out: list[dict[str, str]] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, list) or isinstance(new, list):
            olds = old if isinstance(old, list) else [] if old is None else [old]
            news = new if isinstance(new, list) else [] if new is None else [new]
            kept = {_key(v) for v in olds} & {_key(v) for v in news}
            out += [{"field": name, "change": "removed", "before": item_text(v), "after": ""}
                    for v in olds if _key(v) not in kept]
            out += [{"field": name, "change": "added", "before": "", "after": item_text(v)}
                    for v in news if _key(v) not in kept]
            if not any(r["field"] == name for r in out):  # same items, another order
                out.append({"field": name, "change": "reordered", "before": item_text(olds), "after": item_text(news)})
        else:
            change = "added" if name not in before else "removed" if name not in after else "changed"
            out.append({"field": name, "change": change, "before": item_text(old), "after": item_text(new)})
    return out


def _short(text: str) -> str | None:
    return text if len(text) <= SHORT and "\n" not in text else None


def change_words(kind: Kind, row: Mapping[str, str]) -> str:
    """One diff row as words (without who and when): `phone +44 … added`, `renamed from A to B`."""
    name, change, before, after = row["field"], row["change"], row["before"], row["after"]
    word = field_word(name)
    if _renames(kind, name) and change == "changed":
        if _short(before) is not None and _short(after) is not None:
            return f"renamed from {before} to {after}"
        return "renamed"
    if change == "changed":
        if _short(before) is not None and _short(after) is not None:
            return f"{word} changed from {before} to {after}"
        return f"{word} changed"
    if change == "reordered":
        return f"{word}s put in another order" if not word.endswith("s") else f"{word} put in another order"
    text = after if change == "added" else before
    return f"{word} {text} {change}" if _short(text) is not None and text else f"{word} {change}"


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe(record_id: str, versions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each version (oldest first, as `Vault.history` gives them) with its words: `summary` (what happened,
    who, when), `sentences` (one per change), `changes` (the diff as text rows), `when` and `by`."""
    kind = kind_of(record_id)
    out: list[dict[str, Any]] = []
    prev: Mapping[str, Any] | None = None  # the last live version's fields: a revival is compared with them
    for v in versions:
        source = v["source"] if isinstance(v["source"], Mapping) else json.loads(v["source"])
        data = v["data"]
        by, when, day = source_words(source), human_time(v["valid_from"]), human_date(v["valid_from"])
        rows = [] if v["deleted"] else changes(prev, data)  # a deletion keeps the fields, in history
        detail = source.get("detail") or {}
        if v["event"] == "created":
            summary = f"Created as {record_label(record_id, data)} {by}, {when}"
        elif v["event"] == "deleted":
            summary = f"Deleted {by}, {when}"
        elif detail.get("revert_to") is not None:
            then = human_time(detail["revert_to_at"]) if detail.get("revert_to_at") else "before it existed"
            again = "Brought back" if v["event"] == "revived" else "Reverted"
            summary = f"{again} to how it was on {then} {source_words(source, revert=False)}, {when}"
        elif v["event"] == "revived":
            summary = f"Brought back {by}, {when}"
        else:
            summary = f"Changed {by}, {when}"
        sentences = ([] if v["event"] in ("created", "deleted")
                     else [_first_upper(f"{change_words(kind, r)} {by}, {day}") for r in rows])
        out.append({**v, "source": source, "summary": summary, "sentences": sentences, "changes": rows,
                    "when": when, "by": by})
        prev = data if data is not None else prev
    return out
