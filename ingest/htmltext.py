"""HTML (and Evernote's ENML) to plain text, for bodies that only come as markup.

Deterministic and idempotent on its own output, so an HTML-only mail or an
Evernote note gets the same `body` every time it is imported.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Block boundaries: a line break (div, li, …) or a paragraph break (p, headings, lists, tables).
_LINE = {"div", "li", "tr", "dt", "dd", "en-note", "section", "article", "header", "footer"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre", "hr"}
_SOFT, _HARD = "\x00", "\x01"  # stand-ins, resolved once all text is in
_SKIP = {"script", "style", "head", "title"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _LINE or tag in _PARAGRAPH:
            self.out.append(_HARD if tag in _PARAGRAPH else _SOFT)
            if tag == "li":
                self.out.append("- ")
        elif tag == "en-todo":  # Evernote checkbox: <en-todo checked="true"/>
            self.out.append("[x] " if (a.get("checked") or "").lower() == "true" else "[ ] ")
        elif tag == "en-media":  # Evernote attachment anchor; the bytes come as a <resource>
            self.out.append(f"[attachment {a.get('type') or ''}]".replace(" ]", "]"))
        elif tag == "img":
            self.out.append(f"[image {a.get('alt') or ''}]".replace(" ]", "]"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP:
            self.skipping -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _LINE or tag in _PARAGRAPH:
            self.out.append(_HARD if tag in _PARAGRAPH else _SOFT)
        elif tag in ("td", "th"):
            self.out.append(" ")

    def unknown_decl(self, data: str) -> None:
        if data.startswith("CDATA["):  # a CDATA section inside XHTML/ENML: its text is text
            self.handle_data(data[6:])

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"[\s\x00\x01]+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of an HTML or ENML fragment: one line per block, no markup."""
    parser = _TextCollector()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    text = re.sub(f"[{_SOFT}{_HARD} ]*{_HARD}[{_SOFT}{_HARD} ]*", "\n\n", text)
    text = re.sub(f"[{_SOFT} ]*{_SOFT}[{_SOFT} ]*", "\n", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
