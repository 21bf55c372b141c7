"""Evernote `.enex` exports, as notes.

The file streams through ingest/safexml.py: its DOCTYPE names an external DTD
on evernote.com, which is never fetched. A note's `<content>` is ENML (XHTML in
a CDATA section); the note keeps it as `enml` and gets a plain-text `body`
(checkboxes as [ ] / [x]). `<content>` is read whatever its CDATA sections
look like (safexml's raw_text: Evernote 10 nests and splits them wrongly).
`<resource>` elements are the attachments (base64, wrapped over lines); what
describes each (mime, size, hash, its resource-attributes) is kept in
`resources`, in the same order. Every `<note-attributes>` child is kept as a
field of its own, named as Evernote names it with `_` for `-` (subject_date,
latitude, reminder_time, source_application, …; `source` stays `source_app`),
`<application-data key=…>` as the mapping `application_data`, and every other
element of a note (Evernote 10's `<task>` with its `<reminder>`s, …) as
`tasks` / a field of its own, nested as written. Evernote times become ISO
8601 UTC; every other value stays the text as written. ENEX carries no note
ids, so a note's source id is its creation time and title (numbered if two
notes share both).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from xml.etree.ElementTree import Element

from ingest import check_text_file, head
from ingest.htmltext import html_to_text
from ingest.safexml import iter_records
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, Input, Notice, SourceRecord, hookimpl

_RENAMED = {"source": "source_app"}  # the name version 1 gave it
_KNOWN = {"title", "content", "created", "updated", "tag", "note-attributes", "resource"}
_ENEX_TIME = re.compile(r"\d{8}T\d{6}Z")
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}")


class _Bad(ValueError):
    pass


def _time(el: Element, name: str) -> str | None:
    """ENEX time (20240301T101500Z) as ISO 8601 UTC."""
    text = (el.findtext(name) or "").strip()
    if not text:
        return None
    try:
        when = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise _Bad(f"its <{name}> {text!r} is not an Evernote time like 20240301T101500Z") from None
    return when.isoformat()


def _value(el: Element) -> Any:
    """An element as JSON: its text (an Evernote time as ISO 8601), or its children by name, nested."""
    if len(el) == 0:
        text = (el.text or "").strip()
        if _ENEX_TIME.fullmatch(text):
            return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).isoformat()
        return text
    out: dict[str, Any] = {}
    for child in el:
        value = _value(child)
        if child.tag in out:  # repeated: a list
            out[child.tag] = (out[child.tag] if isinstance(out[child.tag], list) else [out[child.tag]]) + [value]
        else:
            out[child.tag] = value
    return out


def _attributes(el: Element, fields: dict[str, Any]) -> None:
    """Every <note-attributes> child, and every note element this module does not read itself, as fields."""
    attrs = el.find("note-attributes")
    for child in list(attrs if attrs is not None else []) + [c for c in el if c.tag not in _KNOWN]:
        value = _value(child)
        if value in ("", {}):
            continue
        if child.tag == "application-data":
            fields.setdefault("application_data", {})[child.get("key") or ""] = value
            continue
        name = "tasks" if child.tag == "task" else _RENAMED.get(child.tag, child.tag.replace("-", "_").lower())
        if not _FIELD.fullmatch(name):
            fields.setdefault("other_attributes", {})[child.tag] = value
        elif child.tag == "task" or name in fields:
            fields[name] = (fields[name] if isinstance(fields.get(name), list) else
                            [fields[name]] if name in fields else []) + [value]
        else:
            fields[name] = value


def _description(res: Element) -> dict[str, Any]:
    """What describes a resource besides its bytes (the OCR index and alternate data are Evernote's own)."""
    out = {c.tag: _value(c) for c in res if c.tag not in ("data", "recognition", "alternate-data")}
    return {k: v for k, v in out.items() if v not in ("", {})}


def _resource(res: Element, n: int) -> Attachment:
    name = (res.findtext("resource-attributes/file-name") or "").strip() or None
    data = re.sub(r"\s+", "", res.findtext("data") or "")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"its attachment {name or n} is not valid base64") from None
    return Attachment("attachments", content, name, (res.findtext("mime") or "").strip() or None)


def note_record(el: Element) -> tuple[str, dict[str, Any], list[Attachment]]:
    """A `<note>` element -> (source id without the duplicate number, fields, attachments)."""
    fields: dict[str, Any] = {}
    title = (el.findtext("title") or "").strip()
    if title:
        fields["title"] = title
    enml = (el.findtext("content") or "").strip()
    if enml:
        fields["enml"] = enml
        body = html_to_text(enml)
        if body:
            fields["body"] = body
    tags = [t.text.strip() for t in el.findall("tag") if t.text and t.text.strip()]
    if tags:
        fields["tags"] = tags
    for name in ("created", "updated"):
        when = _time(el, name)
        if when:
            fields[name] = when
    _attributes(el, fields)
    files = [_resource(res, n) for n, res in enumerate(el.findall("resource"), 1)]
    if files:
        fields["resources"] = [_description(res) for res in el.findall("resource")]
    key = "\x00".join([fields.get("created", ""), title] if fields.get("created") else [title, enml])
    return "note:" + hashlib.sha256(key.encode()).hexdigest()[:32], fields, files


class EnexImporter:
    """Reads notes exported from Evernote as .enex (the legacy app and Evernote 10)."""

    name = "enex"
    version = "2"  # 2: every note attribute, task and resource description; CDATA read as Evernote 10 writes it
    description = "Evernote notes from an .enex export"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        return Input.of(source).is_file() and b"<en-export" in head(source, 4096)

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord | Notice]:
        src = Input.of(source)
        check_text_file(src, "an Evernote .enex export")
        seen: dict[str, int] = {}
        for location, el in iter_records(src, "en-export", frozenset({"note"}), "an Evernote .enex export",
                                           raw_text=frozenset({"content", "recognition"})):
            try:
                source_id, fields, files = note_record(el)
            except _Bad as e:
                yield BadRecord(location, str(e))
                continue
            seen[source_id] = seen.get(source_id, 0) + 1
            if seen[source_id] > 1:
                source_id += f"#{seen[source_id]}"
            if "\ufffd" in fields.get("enml", ""):
                yield Notice(location, "its content holds characters XML cannot carry (control characters); "
                             "they were read as U+FFFD")
            yield SourceRecord(Kind.NOTE, source_id, fields, tuple(files), location)


@hookimpl
def register_importers(register):
    register(EnexImporter())
