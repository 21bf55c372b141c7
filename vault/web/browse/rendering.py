"""Turning record fields into safe HTML: Markdown notes and attachment links.

Notes are Markdown written by anyone who could import a file, so raw HTML in
them is shown as text and links keep only harmless schemes.
"""

from __future__ import annotations

import json
import mimetypes
import re
from typing import Any
from urllib.parse import quote, urlencode

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup

from vault.domain.contacts import TYPED_FIELDS, address_text, addresses, typed_values

SAFE_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}  # never svg: it can carry script


def safe_url(url: str) -> bool:
    """Relative links and http(s)/mailto only; `javascript:`, `data:` and friends are dropped."""
    cleaned = _CONTROL.sub("", url)
    m = _SCHEME.match(cleaned)
    return m is None or m.group(1).lower() in SAFE_SCHEMES


class _StripUnsafeUrls(Treeprocessor):
    def run(self, root: Any) -> None:
        for el in root.iter():
            for attr in ("href", "src"):
                if el.get(attr) is not None and not safe_url(el.get(attr)):
                    del el.attrib[attr]


class _NoRawHtml(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_StripUnsafeUrls(md), "lifevault_safe_urls", 0)


def render_markdown(text: str) -> Markup:
    """Markdown to HTML with raw HTML escaped and unsafe link schemes removed."""
    md = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists", _NoRawHtml()])
    return Markup(md.convert(text))


def blob_url(blob: str, name: str | None, *, download: bool = False) -> str:
    args = {"name": name} if name else {}
    if download:
        args["download"] = "1"
    return f"/-/blob/{quote(blob)}" + (f"?{urlencode(args)}" if args else "")


def content_type(name: str | None) -> str:
    return (mimetypes.guess_type(name or "")[0]) or "application/octet-stream"


def attachment_refs(value: Any) -> list[dict[str, str]]:
    """[{blob, name}] from a field value (JSON text or parsed) holding attachment objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    items = value if isinstance(value, list) else [value]
    return [{"blob": i["blob"], "name": str(i.get("name") or i["blob"][:12])}
            for i in items if isinstance(i, dict) and isinstance(i.get("blob"), str)]


def render_attachments(value: Any) -> Markup | None:
    """Links to view and download each attachment; images shown small inline."""
    refs = attachment_refs(value)
    if not refs:
        return None
    parts = []
    for ref in refs:
        view, down = blob_url(ref["blob"], ref["name"]), blob_url(ref["blob"], ref["name"], download=True)
        thumb = (Markup('<img src="{}" alt="{}" style="max-height:4em;vertical-align:middle"> ').format(view, ref["name"])
                 if content_type(ref["name"]) in INLINE_TYPES else "")
        parts.append(Markup('<span class="attachment">{}<a href="{}">{}</a> (<a href="{}">download</a>)</span>')
                     .format(thumb, view, ref["name"], down))
    return Markup("<br>").join(parts)


TYPED_COLUMNS = {*TYPED_FIELDS, "addresses"}  # a contact's typed values (vault/contacts.py), either stored shape


def render_typed_values(column: str, value: Any) -> Markup | None:
    """A contact's phones, emails, … one a line: the value, then its label or types, `(preferred)` for pref 1."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if column == "addresses":
        items = [(address_text(a), a) for a in addresses(value)]
    else:
        items = [(v["value"], v) for v in typed_values(value)]
    if not items:
        return None
    lines = []
    for text, v in items:
        kinds = v["label"] or ", ".join(v["types"])
        lines.append(Markup("{}{}{}").format(text, f" ({kinds})" if kinds else "", " (preferred)" if v["pref"] == 1 else ""))
    return Markup("<br>").join(lines)
