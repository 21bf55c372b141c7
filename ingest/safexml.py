"""Streaming, hostile-input-safe XML reading for the XML exports (SMS Backup & Restore, Evernote).

The file is fed to expat in 1 MiB chunks; only the elements named as records
are built (as small ElementTree trees) and each is handed on and dropped as
soon as it closes, so a huge file streams in bounded memory. Refused with one
sentence naming the line: entity declarations (no "billion laughs", no external
entities: nothing is ever expanded or fetched), nesting deeper than MAX_DEPTH,
one text or attribute value longer than ingest.MAX_RECORD (checked on the raw
bytes, before expat buffers it), and XML that is not well formed (which
includes a truncated file).

Android apps write characters outside the BMP (emoji) as two character
references to UTF-16 surrogates, `&#55357;&#56832;`, which XML forbids; they
are joined into the one real character before expat sees them, and references
to characters XML cannot carry become U+FFFD.

Elements named as `raw_text` (Evernote's `<content>`, XHTML in CDATA) are
taken as text whatever their CDATA sections look like: everything from the
first `<![CDATA[` to the last `]]>`, adjacent sections joined (the correct
`]]]]><![CDATA[>` split of a `]]>` inside), so a section left nested or split
wrongly by the exporting app (Evernote 10 does both) comes in whole instead of
refusing the file. Their control characters, which XML cannot carry at all,
become U+FFFD.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator
from xml.etree.ElementTree import Element
from xml.parsers import expat

import ingest
from vault.errors import IngestError
from vault.formats import Input

MAX_DEPTH = 64
MAX_RECORD_BYTES = 256 * 2**20  # all the text of one record (a note with its attachments)
_CHUNK = 2**20
_CHARREF = re.compile(rb"&#(x[0-9a-fA-F]{1,6}|[0-9]{1,7});(?:&#(x[0-9a-fA-F]{1,6}|[0-9]{1,7});)?")


class _Refused(Exception):
    pass


def _code(text: bytes) -> int:
    return int(text[1:], 16) if text[:1] in (b"x", b"X") else int(text)


def _xml_char(cp: int) -> bool:
    return cp in (9, 10, 13) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or 0x10000 <= cp <= 0x10FFFF


def _fix_ref(m: re.Match[bytes]) -> bytes:
    first = _code(m.group(1))
    second = _code(m.group(2)) if m.group(2) else None
    if 0xD800 <= first <= 0xDBFF and second is not None and 0xDC00 <= second <= 0xDFFF:
        return b"&#%d;" % (0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
    out = b"&#%d;" % (first if _xml_char(first) else 0xFFFD)
    if second is not None:
        out += b"&#%d;" % (second if _xml_char(second) else 0xFFFD)
    return out


def fix_char_refs(data: bytes) -> bytes:
    """Join surrogate-pair character references; replace ones XML cannot carry by U+FFFD."""
    return _CHARREF.sub(_fix_ref, data) if b"&#" in data else data


_HIGH_REF_END = re.compile(rb"&#(?:5[5-6][0-9]{3}|x[dD][89abAB][0-9a-fA-F]{2});$")


def _split_tail(data: bytes) -> tuple[bytes, bytes]:
    """Hold back a character reference the chunk may have cut (with its pair's first half)."""
    cut = data.rfind(b"&")
    if cut < 0 or len(data) - cut > 24:
        return data, b""
    before = _HIGH_REF_END.search(data, max(0, cut - 12), cut)
    if before:
        cut = before.start()
    return data[:cut], data[cut:]


class _Builder:
    """expat handlers that build only the record elements and collect them as they close."""

    def __init__(self, parser: expat.XMLParserType, root: str, records: frozenset[str], what: str) -> None:
        self.parser, self.root, self.records, self.what = parser, root, records, what
        self.depth = 0
        self.stack: list[Element] = []
        self.texts: list[list[str]] = []
        self.size = 0
        self.start_line = 0
        self.counts: dict[str, int] = {}
        self.done: list[tuple[str, Element]] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"elements are nested more than {MAX_DEPTH} deep; this is not a real export")
        if self.depth == 1 and name != self.root:
            raise _Refused(f"its root element is <{name}>, not <{self.root}>, so it is not {self.what}")
        if not self.stack and name not in self.records:
            return
        element = Element(name, attrs)
        if self.stack:
            self.stack[-1].append(element)
        else:
            self.counts[name] = self.counts.get(name, 0) + 1
            self.start_line, self.size = self.parser.CurrentLineNumber, 0
        self.stack.append(element)
        self.texts.append([])

    def end(self, name: str) -> None:
        self.depth -= 1
        if not self.stack:
            return
        element = self.stack.pop()
        element.text = "".join(self.texts.pop())
        if not self.stack:
            where = f"{element.tag} {self.counts[element.tag]} (line {self.start_line})"
            self.done.append((where, element))

    def data(self, text: str) -> None:
        if self.stack:
            self.size += len(text)
            if self.size > MAX_RECORD_BYTES:
                raise _Refused(f"one record holds more than {MAX_RECORD_BYTES >> 20} MB of text")
            self.texts[-1].append(text)


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class _RawText:
    """Rewrites the content of the `raw_text` elements as escaped text, chunk by chunk (see the docstring)."""

    def __init__(self, path: Input, names: frozenset[str]) -> None:
        self.path = path
        self.opens = [b"<%s>" % n.encode() for n in sorted(names)]
        self.carry = b""
        self.inside: bytes | None = None  # the closing tag while inside one, else None
        self.held: list[bytes] = []
        self.size = 0

    def feed(self, chunk: bytes, final: bool) -> bytes:
        data, self.carry, out = self.carry + chunk, b"", []
        while data:
            if self.inside is None:
                hits = [(i, tag) for tag in self.opens if (i := data.find(tag)) >= 0]
                if not hits:  # hold back only what may be the start of a cut tag (no copy otherwise)
                    lt = -1 if final else data.rfind(b"<", max(0, len(data) - max(map(len, self.opens)) + 1))
                    out.append(data if lt < 0 else data[:lt])
                    self.carry = b"" if lt < 0 else data[lt:]
                    break
                i, tag = min(hits)
                out.append(data[:i + len(tag)])
                data, self.inside, self.held, self.size = data[i + len(tag):], b"</" + tag[1:], [], 0
            else:
                end = data.find(self.inside)
                if end < 0:
                    keep = 0 if final else len(self.inside) - 1
                    self._hold(data[:len(data) - keep])
                    self.carry = data[len(data) - keep:]
                    break
                self._hold(data[:end])
                out.append(_as_text(b"".join(self.held)) + self.inside)
                data, self.inside = data[end + len(self.inside):], None
        if final and self.inside is not None:  # cut off inside: hand on what there is, expat names the line
            out.append(b"".join(self.held))
        return out[0] if len(out) == 1 else b"".join(out)

    def _hold(self, part: bytes) -> None:
        self.size += len(part)
        if self.size > ingest.MAX_RECORD:
            raise IngestError(self.path, None, f"one value is longer than {ingest.MAX_RECORD >> 20} MB; "
                                               "this is not a real export")
        self.held.append(part)


def _as_text(region: bytes) -> bytes:
    """An element's content with CDATA sections made plain escaped text; line breaks kept where they were."""
    start = region.find(b"<![CDATA[")
    if start < 0:
        return _CONTROL.sub("\ufffd".encode(), region)  # already escaped text
    end = region.rfind(b"]]>")
    end = end if end > start else len(region)
    body = region[start + 9:end].replace(b"]]><![CDATA[", b"")
    text = b"".join(_escape(part) for part in (region[:start], body, region[end + 3:]))
    return _CONTROL.sub("\ufffd".encode(), text)


def _escape(data: bytes) -> bytes:
    return data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


def _refuse_entities(*_args: object) -> None:
    raise _Refused("it declares XML entities, which lifevault refuses to expand")


def iter_records(source: Input | Path, root: str, records: frozenset[str], what: str,
                 raw_text: frozenset[str] = frozenset()) -> Iterator[tuple[str, Element]]:
    """Each record element under <root> as (location like "sms 3 (line 12)", element), streamed."""
    path = Input.of(source)
    raw = _RawText(path, raw_text) if raw_text else None
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    builder = _Builder(parser, root, records, what)
    parser.StartElementHandler, parser.EndElementHandler = builder.start, builder.end
    parser.CharacterDataHandler = builder.data
    parser.EntityDeclHandler = _refuse_entities
    parser.UnparsedEntityDeclHandler = _refuse_entities
    parser.SkippedEntityHandler = lambda name, is_param: None  # an undeclared entity: drop, never fetch
    carry, run, line, run_line = b"", 0, 1, 1
    with path.open() as f:
        while True:
            chunk = f.read(_CHUNK)
            data = carry + (raw.feed(chunk, not chunk) if raw else chunk)
            carry = b""
            if chunk:
                data, carry = _split_tail(data)
            data = fix_char_refs(data)
            lt = data.rfind(b"<")  # a value (text or attribute) never contains a raw '<'
            if lt >= 0:
                run, run_line = len(data) - lt - 1, line + data.count(b"\n", 0, lt)
            else:
                run += len(data)
            if run > ingest.MAX_RECORD:
                raise IngestError(path, f"line {run_line}", f"one value is longer than {ingest.MAX_RECORD >> 20} MB; "
                                               "this is not a real export")
            line += data.count(b"\n")
            try:
                parser.Parse(data, not chunk)
            except _Refused as e:
                raise IngestError(path, f"line {parser.CurrentLineNumber}", str(e)) from None
            except expat.ExpatError as e:
                reason = expat.ErrorString(e.code)
                raise IngestError(path, f"line {e.lineno}", f"it is not well-formed XML ({reason})") from None
            yield from builder.done
            builder.done.clear()
            if not chunk:
                return
