"""Email in and out: mbox, Maildir and .eml files (one, or a folder of them), each both ways.

All three read the same way (ingest/mime.py), so a message has the same source id
(its Message-ID, or a content hash when it has none) and the same fields whichever
container it came in: the importers share the `namespace` "mail".

mbox is read as a stream, one message at a time, never the whole file: the
splitter below reads bounded chunks and hands each message on as soon as the
next `From ` line appears. It reads and writes mboxrd: a body line `>From `
(any number of `>`) loses one `>` on reading and gains one on writing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ingest import check_text_file
from vault.errors import IngestError
from vault.domain.events import Kind
from vault.formats import BadRecord, ExportRecord, Input, SourceRecord, hookimpl

from ingest.mime import MAILDIR_FLAGS, MalformedMessage, read_message, write_message

MAX_MESSAGE_BYTES = 64 * 2**20  # one message larger than this is refused, not buffered
_CHUNK = 2**20  # the most read at once, even from a line with no end
# A From_ line: "From sender date", where the date has a time (mboxo bodies rarely do).
_FROM_LINE = re.compile(rb"^From \S*\s.*\d:\d\d")
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_SEPARATOR = re.compile(rb"\n\r?\nFrom ")  # a blank line, then what may be a From_ line
_HEADER = re.compile(rb"^[!-9;-~]+:")
_VCARD_BEGIN = re.compile(rb"^(?:[A-Za-z0-9-]+\.)?BEGIN:VCARD\s*$", re.I)
_MAIL_HEADERS = re.compile(
    rb"^(from|to|date|subject|message-id|received|return-path|mime-version|delivered-to|x-[a-z-]+):",
    re.IGNORECASE | re.MULTILINE,
)


def _record(raw: bytes, location: str, envelope: bytes | None = None,
            flags: Iterable[str] = ()) -> SourceRecord | BadRecord:
    """One message as a source record. Its identity is its content fingerprint, so two different messages
    that share a Message-ID (or have none) stay two records (vault/importing.py)."""
    try:
        read = read_message(raw, envelope)
    except MalformedMessage as e:
        return BadRecord(location, str(e))
    fields = read.fields
    if flags:
        fields["flags"] = sorted(set(fields.get("flags", ())) | set(flags))
    return SourceRecord(Kind.MESSAGE, read.source_id, fields, tuple(read.files), location,
                        identity=read.identity, warnings=tuple(read.warnings))


def _split_envelope(raw: bytes) -> tuple[bytes | None, bytes]:
    """A single message saved with its mbox `From ` line (some programs save .eml that way): (line, message)."""
    if _FROM_LINE.match(raw[:4096]):
        line, _, rest = raw.partition(b"\n")
        return line, rest
    return None, raw


def _too_big(path: Input | Path, location: str) -> IngestError:
    return IngestError(path, location, f"a message is larger than {MAX_MESSAGE_BYTES >> 20} MB, "
                                       "the most lifevault reads as one message")


def _first_from_line(path: Input, f: BinaryIO) -> tuple[bytearray, int, bytes]:
    """Skip leading blank lines and check the first From_ line; returns the rest of the buffer, its line
    number and the line."""
    buf, line = bytearray(), 1
    while True:
        nl = buf.find(b"\n")
        if nl < 0 and len(buf) < _CHUNK and _extend(buf, f):
            continue
        end = nl if nl >= 0 else len(buf)
        first = bytes(buf[:min(end + 1, 4096)])  # a From_ line is short; never copy a huge one
        if end >= 4096 or first.strip():
            if not _FROM_LINE.match(first):
                raise IngestError(path, f"line {line}", "text before the first 'From ' line, so this is not an mbox file")
            del buf[:end]  # keep the From_ line's own newline: a blank line may follow at once
            return buf, line, first.rstrip(b"\r\n")
        if not buf:
            raise IngestError(path, None, "has no 'From ' line, so it is not an mbox file")
        del buf[:end + 1]
        line += 1


def split_mbox(source: Input | Path) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Each message in an mbox file as (number from 1, line of its From_ line, the From_ line, raw bytes).

    Reads blocks, not lines, and looks for a blank line followed by a From_ line;
    `buf` always starts with the newline that ends the current message's From_ line.
    """
    path = Input.of(source)
    with path.open() as f:
        buf, start, envelope = _first_from_line(path, f)
        number, scan, eof = 1, 0, False
        while True:
            m = _SEPARATOR.search(buf, scan)
            if m:
                cand = m.end() - 5
                nl = buf.find(b"\n", cand)
                if nl < 0 and not eof:  # the From_ line is cut by the block: read on
                    eof = not _extend(buf, f)
                    continue
                end = nl if nl >= 0 else len(buf)
                if not _FROM_LINE.match(bytes(buf[cand:end + 1])):
                    scan = m.start() + 1
                    continue
                yield number, start, envelope, _unquote(buf[1:m.start() + 1])
                start += buf.count(b"\n", 0, cand)
                envelope = bytes(buf[cand:end]).rstrip(b"\r")
                del buf[:end]
                number, scan = number + 1, 0
            elif eof:
                yield number, start, envelope, _unquote(_drop_separator(buf[1:]))
                return
            else:
                if len(buf) > MAX_MESSAGE_BYTES:
                    raise _too_big(path, f"message {number} (line {start})")
                scan = max(0, len(buf) - 8)  # a separator may straddle the blocks
                eof = not _extend(buf, f)


def _extend(buf: bytearray, f: BinaryIO) -> bool:
    chunk = f.read(_CHUNK)
    buf += chunk
    return bool(chunk)


def _drop_separator(raw: bytearray) -> bytearray:
    """The blank line that ends an mbox belongs to the mbox, not the last message."""
    if raw.endswith(b"\r\n\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith(b"\n\n") else raw


def _unquote(raw: bytearray) -> bytes:
    """mboxrd: a body line `>From ` (any number of `>`) loses one `>`."""
    return _QUOTED_FROM.sub(rb"\1", raw) if b">From " in raw else bytes(raw)


def _looks_like_message(head: bytes) -> bool:
    top = head.lstrip(b"\r\n").split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    first = top.split(b"\n", 1)[0]
    if _VCARD_BEGIN.match(first):  # a vCard's `X-…:` lines look like headers
        return False
    return bool(_HEADER.match(first)) and len(_MAIL_HEADERS.findall(top)) >= 2


class MboxImporter:
    """Reads an mbox file (mboxo, mboxrd; Thunderbird, Apple Mail, Google Takeout) as a stream."""

    name = "mbox"
    version = "2"  # 2: identity by content, every header, flags (issue 12)
    namespace = "mail"
    description = "Email from an mbox file (Thunderbird, Apple Mail, Google Takeout)"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        src = Input.of(source)
        return src.is_file() and bool(_FROM_LINE.match(src.head(4096).lstrip(b"\r\n")))

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        check_text_file(src, "an mbox file")
        found = False
        for number, line, envelope, raw in split_mbox(src):
            found = True
            yield _record(raw, f"message {number} (line {line})", envelope)
        if not found:
            raise IngestError(src, None, "has no 'From ' line, so it is not an mbox file")


class MaildirImporter:
    """Reads a Maildir folder (cur/ and new/, and Maildir++ subfolders like .Sent/): a Path, never bytes."""

    name = "maildir"
    version = "2"  # 2: identity by content, every header, flags (issue 12)
    namespace = "mail"
    description = "Email from a Maildir folder (cur/, new/)"

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord]:
        if not self.detect(path):
            raise IngestError(path, None, "is not a Maildir folder (it needs cur/ and new/ subfolders)")
        folders = [path] + sorted(p for p in path.iterdir() if p.name.startswith(".") and self.detect(p))
        for folder in folders:
            for sub in ("new", "cur"):
                for file in sorted((folder / sub).iterdir()):
                    if file.name.startswith(".") or not file.is_file():
                        continue
                    location = str(file.relative_to(path))
                    if file.stat().st_size > MAX_MESSAGE_BYTES:
                        raise _too_big(path, location)
                    envelope, raw = _split_envelope(file.read_bytes())
                    yield _record(raw, location, envelope, _maildir_flags(file.name))


def _maildir_flags(name: str) -> list[str]:
    """The flags in a Maildir file name's info part (`…:2,RS`; `;2,` on file systems that forbid `:`)."""
    for sep in (":2,", ";2,", "!2,"):
        if sep in name:
            return [MAILDIR_FLAGS[c] for c in name.rpartition(sep)[2] if c in MAILDIR_FLAGS]
    return []


class EmlImporter:
    """Reads messages saved as .eml files: one file, or a folder of them (as dragged out of a mail program)."""

    name = "eml"
    version = "2"  # 2: identity by content, every header, flags (issue 12)
    namespace = "mail"
    description = "Email saved as .eml: one file or a folder of them"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        src = Input.of(source)
        if src.is_dir() and src.path is not None:
            return any(src.path.glob("*.eml")) and not MaildirImporter().detect(src.path)
        if not src.is_file():
            return False
        head = src.head(4096)
        return not _FROM_LINE.match(head) and _looks_like_message(head)

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        if src.is_dir() and src.path is not None:
            files = sorted(p for p in src.path.glob("*.eml") if p.is_file())
            if not files:
                raise IngestError(src, None, "holds no .eml files")
            for file in files:
                yield self._one(src, Input.from_path(file))
            return
        record = self._one(src, src)
        if isinstance(record, BadRecord):
            raise IngestError(src, None, record.reason)
        yield record

    def _one(self, root: Input, file: Input) -> SourceRecord | BadRecord:
        location = file.name
        if file.size() > MAX_MESSAGE_BYTES:
            raise _too_big(root, location)
        if file is root:
            check_text_file(file, "an email (.eml) file")
        _, head = _split_envelope(file.head(65536))
        if not _looks_like_message(head):  # before reading it all: a huge non-mail file
            if file is root:
                raise IngestError(file, "line 1", "does not start with mail headers, so it is not an email")
            return BadRecord(location, "does not start with mail headers, so it is not an email")
        with file.open() as f:
            envelope, raw = _split_envelope(f.read())
        return _record(raw, location, envelope)


# -- export ---------------------------------------------------------------------
def _attachment_files(refs: list[Any], get_blob: Callable[[str], bytes]) -> list[tuple[bytes, Any, Any]]:
    """(bytes, name, type) for each blob reference (vault.store.blobs.blob_ref's shape)."""
    return [(get_blob(ref["blob"]), ref.get("name"), ref.get("type")) for ref in refs if isinstance(ref, dict)]


def _emails(records: Iterable[ExportRecord], get_blob: Callable[[str], bytes]) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(fields, message bytes) for each email record; SMS, chats and other kinds are not mail."""
    for record in records:
        if record.kind != Kind.MESSAGE or record.fields.get("kind", "email") != "email":
            continue
        fields = {k: v for k, v in record.fields.items() if k != "attachments"}
        yield fields, write_message(fields, _attachment_files(record.fields.get("attachments") or [], get_blob))


def _from_line(fields: dict[str, Any]) -> bytes:
    sender = re.findall(r"[^\s<>]+@[^\s<>]+", fields.get("from", "")) or ["MAILER-DAEMON"]
    try:
        when = datetime.fromisoformat(fields["date"]).timetuple()
    except (KeyError, ValueError):
        when = time.gmtime(0)
    return f"From {sender[0]} {time.strftime('%a %b %d %H:%M:%S %Y', when)}\n".encode()


def _single(fields: dict[str, Any], raw: bytes) -> bytes:
    """A message for a file of its own: with its `From ` line only when that line is where its date came from."""
    return _from_line(fields) + raw if fields.get("date_source") == "envelope" else raw


def _escape_from(raw: bytes) -> bytes:
    return re.sub(rb"(?m)^(>*From )", rb">\1", raw)


def _stamp(fields: dict[str, Any]) -> int:
    try:
        return max(0, int(datetime.fromisoformat(str(fields.get("date"))).timestamp()))
    except ValueError:
        return 0


def _safe_name(text: str) -> str:
    """A file name part from a subject: no separators or control characters, not hidden, not too long."""
    name = re.sub(r"[\x00-\x1f/\\:*?\"<>|]+", "_", text).strip(" .")[:80]
    return name or "message"


class MboxExporter:
    """Writes email records as an mboxrd file any mail program can open."""

    name = "mbox"
    description = "Email records as an mbox file (mboxrd)"
    kinds = (Kind.MESSAGE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        written = 0
        with open(out, "wb") as f:
            for fields, raw in _emails(records, get_blob):
                raw = _escape_from(raw)
                f.write(_from_line(fields) + raw + (b"" if raw.endswith(b"\n") else b"\n") + b"\n")
                written += 1
        return written


_FLAG_LETTERS = {name: letter for letter, name in MAILDIR_FLAGS.items()}


class MaildirExporter:
    """Writes email records as a Maildir folder (cur/, new/, tmp/), read flags in each file's name."""

    name = "maildir"
    description = "Email records as a Maildir folder (Dovecot, mutt, offlineimap)"
    kinds = (Kind.MESSAGE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        for sub in ("cur", "new", "tmp"):
            (out / sub).mkdir(parents=True)
        written = 0
        for fields, raw in _emails(records, get_blob):
            written += 1
            letters = "".join(sorted(_FLAG_LETTERS[f] for f in fields.get("flags") or () if f in _FLAG_LETTERS))
            # Unique by the running number, ordered by date as Maildir readers expect of the time part.
            (out / "cur" / f"{_stamp(fields)}.M{written}.lifevault:2,{letters}").write_bytes(_single(fields, raw))
        return written


class EmlExporter:
    """Writes each email record as an .eml file in a folder, named by number and subject."""

    name = "eml"
    description = "Email records as a folder of .eml files"
    kinds = (Kind.MESSAGE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        out.mkdir()
        written = 0
        for fields, raw in _emails(records, get_blob):
            written += 1
            (out / f"{written:05d} {_safe_name(fields.get('subject', ''))}.eml").write_bytes(_single(fields, raw))
        return written


@hookimpl
def register_importers(register):
    register(MboxImporter())
    register(MaildirImporter())
    register(EmlImporter())


@hookimpl
def register_exporters(register):
    register(MboxExporter())
    register(MaildirExporter())
    register(EmlExporter())
