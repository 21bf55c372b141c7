"""HTML (and Evernote's ENML) to plain text, for bodies that only come as markup.

Deterministic and idempotent on its own output, so an HTML-only mail or an
Evernote note gets the same `body` every time it is imported.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "section", "article", "header", "footer", "en-note", "dl", "dt", "dd",
}
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
        elif tag in _BLOCK:
            self.out.append("\n")
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
        elif tag in _BLOCK and tag != "li":
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of an HTML or ENML fragment: one line per block, no markup."""
    parser = _TextCollector()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
