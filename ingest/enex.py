"""Evernote `.enex` exports, as notes.

The file streams through ingest/safexml.py: its DOCTYPE names an external DTD
on evernote.com, which is never fetched. A note's `<content>` is ENML (XHTML in
a CDATA section); the note keeps it as `enml` and gets a plain-text `body`
(checkboxes as [ ] / [x]). `<resource>` elements are the attachments (base64,
wrapped over lines). ENEX carries no note ids, so a note's source id is its
creation time and title (numbered if two notes share both).
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
from vault.events import Kind
from vault.formats import Attachment, BadRecord, SourceRecord
from vault.hookspecs import hookimpl

_ATTRIBUTES = {"author": "author", "source-url": "source_url", "source": "source_app"}


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
    for tag, key in _ATTRIBUTES.items():
        value = (el.findtext(f"note-attributes/{tag}") or "").strip()
        if value:
            fields[key] = value
    files = [_resource(res, n) for n, res in enumerate(el.findall("resource"), 1)]
    key = "\x00".join([fields.get("created", ""), title] if fields.get("created") else [title, enml])
    return "note:" + hashlib.sha256(key.encode()).hexdigest()[:32], fields, files


class EnexImporter:
    """Reads notes exported from Evernote as .enex (the legacy app and Evernote 10)."""

    name = "enex"
    version = "1"
    description = "Evernote notes from an .enex export"

    def detect(self, path: Path) -> bool:
        return path.is_file() and b"<en-export" in head(path, 4096)

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord]:
        check_text_file(path, "an Evernote .enex export")
        seen: dict[str, int] = {}
        for location, el in iter_records(path, "en-export", frozenset({"note"}), "an Evernote .enex export"):
            try:
                source_id, fields, files = note_record(el)
            except _Bad as e:
                yield BadRecord(location, str(e))
                continue
            seen[source_id] = seen.get(source_id, 0) + 1
            if seen[source_id] > 1:
                source_id += f"#{seen[source_id]}"
            yield SourceRecord(Kind.NOTE, source_id, fields, tuple(files), location)


@hookimpl
def register_importers(register):
    register(EnexImporter())
