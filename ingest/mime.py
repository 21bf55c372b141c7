"""One RFC 5322 / MIME message <-> one message record (fields + attachments).

`read_message` turns raw bytes into the fields of vault/events.py's message kind;
`write_message` turns those fields back into bytes that read back the same,
which is what makes the round trips lossless. Real mail is messy, so reading
is forgiving: wrong charsets fall back, undeclared 8-bit bytes are decoded by
ingest/mail_charsets.py (and reported), RFC 2047 words with bad encodings keep
their raw text, and MIME with a broken boundary still yields its text (with a
warning). Only a chunk with no mail headers at all, or MIME nested absurdly
deep, is refused (as MalformedMessage).

Every header is kept: the common ones as fields, all others whole, in order, in
`headers` ([name, value] pairs, folding and all), and written back verbatim.
"""

from __future__ import annotations

import email
import email.errors
import email.message
import email.header
import email.headerregistry
import email.policy
import email.utils
import hashlib
import io
import json
import re
from datetime import datetime, timedelta, timezone
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from typing import Any, Iterator, NamedTuple, cast

from vault.formats import Attachment

from ingest.htmltext import html_to_text
from ingest.mail_charsets import MessageCharsets, label_of, raw_bytes

MAX_MIME_DEPTH = 40
# How messages are written out.
_OUT_POLICY = email.policy.default.clone(linesep="\n", cte_type="7bit", max_line_length=78)
# Python's folder may fold a name between two encoded words where the name had a space, which RFC 2047 readers
# (ours) then drop; such a message's headers are written unfolded, as long as RFC 5322 allows.
_UNFOLDED_POLICY = _OUT_POLICY.clone(max_line_length=998)
_ADDRESS_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To")
# How a forwarded message is serialized on reading: compat32 writes its headers and parts back as they came
# (no refolding, no added quotes), so the attachment holds the message's own bytes.
_VERBATIM = email.policy.compat32.clone(linesep="\n", max_line_length=0)
_RAW_HEADER = email.headerregistry.HeaderRegistry(use_default_map=False)  # headers kept as plain text
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")  # a field name is printable ASCII except ':'
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_MSGID = re.compile(r"<[^<>\s]+>")
_LATIN_LABELS = {"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "iso-8859-15"}
# Mailman's archives hide addresses as `ada at example.org (Ada Lovelace)`.
_MAILMAN = re.compile(r'^\s*([^\s@<>(),;:"]+)\s+at\s+([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\s*(?:\((.*)\))?\s*$')
# Headers held as fields (or rebuilt from the body's structure); every other header goes to `headers`.
MAPPED_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "reply-to", "date", "subject", "message-id", "in-reply-to", "references",
    "x-gmail-labels", "x-lifevault-thread", "status", "x-status", "x-mozilla-status",
    "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
})
# Read flags, one vocabulary for every container: mbox Status/X-Status, Thunderbird's X-Mozilla-Status bits
# and Maildir's info letters. mbox's `O` (the client has listed it) is not a state of the message.
_STATUS = {"R": "seen"}
_X_STATUS = {"A": "answered", "F": "flagged", "D": "deleted", "T": "draft"}
_MOZILLA = {0x1: "seen", 0x2: "answered", 0x4: "flagged", 0x8: "deleted", 0x1000: "forwarded"}
MAILDIR_FLAGS = {"S": "seen", "R": "answered", "F": "flagged", "T": "deleted", "D": "draft", "P": "forwarded"}


class MalformedMessage(ValueError):
    """A chunk of a mailbox that is not a message; the reason is one short phrase."""


class ReadMessage(NamedTuple):
    """A message as read: its source id, fields, attachments, content fingerprint and warnings."""

    source_id: str
    fields: dict[str, Any]
    files: list[Attachment]
    identity: str
    warnings: list[str]


# -- text and headers ------------------------------------------------------------
def decode_text(data: bytes, declared: str | None, charsets: MessageCharsets | None = None,
                what: str = "the text") -> str:
    """Bytes to text trusting the declared charset only as far as it fits the bytes."""
    label = label_of(declared)
    if (not label or label in _LATIN_LABELS) and not data.isascii():
        # Mislabelled mail: valid UTF-8 with non-ASCII bytes is almost never really Latin-1.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if label:
        try:
            return data.decode(label)
        except (LookupError, UnicodeDecodeError):
            pass
    if charsets is not None:
        return charsets.text(data, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def raw_header(value: Any, charsets: MessageCharsets | None = None, what: str = "a header") -> str:
    """A header unfolded, raw 8-bit bytes decoded, RFC 2047 words still encoded."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = value.encode()
    text = re.sub(r"\r?\n[ \t]*", " ", str(value))
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit header bytes (surrogateescape)
        text = decode_text(raw_bytes(text), None, charsets, what)
    return text


def header_text(value: Any, charsets: MessageCharsets | None = None, what: str = "a header") -> str:
    """A header's display text: unfolded, RFC 2047 words decoded, raw 8-bit bytes decoded."""
    text = raw_header(value, charsets, what)
    try:
        chunks = email.header.decode_header(text)
    except (email.errors.HeaderParseError, ValueError):
        return text.strip()
    out = []
    for chunk, charset in chunks:
        out.append(chunk if isinstance(chunk, str) else decode_text(chunk, charset, charsets, what))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def show_address(name: str, addr: str) -> str:
    """`Name <addr>` (quoted when the name has specials), the bare address, or `Name <>` for a null sender."""
    if not name:
        return addr
    if re.search(r'[()<>@,;:\\".\[\]]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def addresses(value: Any, charsets: MessageCharsets | None = None, what: str = "an address") -> list[str]:
    """The addresses in a To/Cc/From header, each as `Name <addr>`.

    The list is split before encoded words are decoded (RFC 2047's order), so a
    decoded name holding `,` or `:` stays one name."""
    raw = raw_header(value, charsets, what)
    if not raw.strip():
        return []
    mailman = _MAILMAN.match(raw)
    if mailman:
        user, domain, name = mailman.groups()
        return [show_address(header_text(name or ""), f"{user}@{domain}")]
    found = [show_address(header_text(n), a.strip()) for n, a in email.utils.getaddresses([raw])]
    found = [f for f in found if f]
    return found or [header_text(raw)]  # an unparseable header is kept as written rather than lost


def message_ids(value: str) -> list[str]:
    return _MSGID.findall(value or "")


def parse_date(value: str) -> str | None:
    """RFC 5322 date text to ISO 8601 with its offset (`-0000` counts as UTC); None if unreadable."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


def _date_without_offset(value: str) -> str | None:
    """The date and time of a Date header whose offset is impossible (beyond ±24 h), read as UTC."""
    parts = email.utils.parsedate_tz(value) if value else None
    if not parts or parts[9] is None or abs(parts[9]) < 86400:
        return None
    try:
        return datetime(*parts[:6], tzinfo=timezone.utc).isoformat()
    except ValueError:
        return None


def envelope_date(line: bytes | None) -> str | None:
    """The date of an mbox `From sender date` line (asctime, no zone: read as UTC)."""
    if not line:
        return None
    text = line.decode("ascii", "replace").split(None, 2)
    if len(text) < 3:
        return None
    m = re.search(r"(\w{3}\s+\w{3}\s+\d{1,2}\s+\d{1,2}:\d\d(?::\d\d)?)\s+(?:([+-]\d{4})\s+)?(\d{4})", text[2])
    if not m:
        return None
    try:
        when = datetime.strptime(f"{' '.join(m.group(1).split())} {m.group(3)}",
                                 "%a %b %d %H:%M:%S %Y" if m.group(1).count(":") == 2 else "%a %b %d %H:%M %Y")
    except ValueError:
        return None
    zone = timezone.utc
    if m.group(2):
        sign = -1 if m.group(2)[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(m.group(2)[1:3]), minutes=int(m.group(2)[3:])))
    return when.replace(tzinfo=zone).isoformat()


def _pick_date(msg: Message, charsets: MessageCharsets, envelope: bytes | None) -> tuple[str | None, str]:
    """(date, where it came from): the Date header, else its date with an impossible offset dropped, else the
    first Received hop, else Resent-Date, else the mbox envelope line."""
    header = header_text(_one(msg, "Date"), charsets, "Date")
    if (date := parse_date(header)):
        return date, "date"
    if (date := _date_without_offset(header)):
        return date, "date without its impossible offset"
    received = [header_text(v, charsets, "Received").rpartition(";")[2] for v in _all(msg, "Received")]
    if (date := next((d for d in map(parse_date, reversed(received)) if d), None)):
        return date, "received"
    resent = [header_text(v, charsets, "Resent-Date") for v in _all(msg, "Resent-Date")]
    if (date := next((d for d in map(parse_date, resent) if d), None)):
        return date, "resent-date"
    if (date := envelope_date(envelope)):
        return date, "envelope"
    return None, ""


_DATE_WARNINGS = {"": "no date in its headers or envelope; it has none in the vault",
                  "date without its impossible offset": "the Date header's offset is impossible; read as UTC"}


def _flags(msg: Message) -> set[str]:
    flags = {_STATUS[c] for c in str(_one(msg, "Status") or "") if c in _STATUS}
    flags |= {_X_STATUS[c] for c in str(_one(msg, "X-Status") or "") if c in _X_STATUS}
    try:
        bits = int(str(_one(msg, "X-Mozilla-Status") or "0").strip(), 16)
    except ValueError:
        bits = 0
    return flags | {name for bit, name in _MOZILLA.items() if bits & bit}


def _other_headers(msg: Message, charsets: MessageCharsets) -> list[list[str]]:
    """Every header not held as a field, as [name, value] with its folding (line ends as LF)."""
    out = []
    for name, value in msg.raw_items():
        if name.lower() in MAPPED_HEADERS:
            continue
        text = str(value.encode() if isinstance(value, email.header.Header) else value)
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            text = decode_text(raw_bytes(text), None, charsets, name)
        out.append([name, text.replace("\r\n", "\n").replace("\r", "\n")])
    return out


# -- reading ---------------------------------------------------------------------
def _all(msg: Message, name: str) -> list[str]:
    """A header's values as read: raw 8-bit bytes as surrogate escapes, never compat32's unknown-8bit
    Header objects (whose encoded words would hide a name, or a whole address, from the parsers)."""
    return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]


def _one(msg: Message, name: str) -> str | None:
    values = _all(msg, name)
    return values[0] if values else None


def _leaf_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    if depth > MAX_MIME_DEPTH:
        raise MalformedMessage(f"MIME parts are nested more than {MAX_MIME_DEPTH} deep")
    payload = msg.get_payload()
    if msg.get_content_maintype() == "multipart" and isinstance(payload, str):
        recovered = _with_boundary_found(msg.get_content_type(), payload)
        if recovered is not None:
            payload = recovered.get_payload()
    if msg.get_content_maintype() == "multipart" and isinstance(payload, list):
        for part in payload:  # the parser puts only Messages in a multipart's list; typeshed allows str
            yield from _leaf_parts(cast(Message, part), depth + 1)
    else:
        yield msg


_DELIMITER = re.compile(r"(?m)^--([^\s\"]{1,70}?)(?:--)?[ \t]*\r?$")


def _with_boundary_found(ctype: str, text: str) -> Message | None:
    """A multipart whose declared boundary never appears, parsed again with the one its parts do use."""
    found = _DELIMITER.search(text)
    if not found:
        return None
    again = email.message_from_string(f'Content-Type: {ctype}; boundary="{found.group(1)}"\n\n{text}',
                                      policy=email.policy.compat32)
    return again if isinstance(again.get_payload(), list) else None


def _part_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()  # None above: message/* parts and malformed multiparts without a boundary
    return raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""


def _part_text(part: Message, charsets: MessageCharsets) -> str:
    return decode_text(_part_bytes(part), part.get_content_charset(), charsets, "the text")


def _normalize_body(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _filename(part: Message, charsets: MessageCharsets, what: str) -> str | None:
    """An attachment's file name in whatever charset it came: RFC 2231 (with or without its charset),
    RFC 2047 words, or raw 8-bit bytes."""
    scratch = Message()  # the two headers with raw 8-bit bytes decoded, so the parameter parser sees text
    for header in ("Content-Disposition", "Content-Type"):
        raw = _one(part, header)
        if raw is not None:
            scratch[header] = raw_header(raw, charsets, what)
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = scratch.get_param(param, header=header)
        if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded text as Latin-1)
            charset, _, text = value
            return decode_text(text.encode("latin-1", "replace"), charset, charsets, what) or None
        if value:
            return header_text(email.utils.unquote(str(value)), charsets, what) or None
    return None


def _nested_bytes(inner: Message) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_VERBATIM).flatten(inner)
    return out.getvalue().replace(b"\r\n", b"\n")


def _attachment(part: Message, charsets: MessageCharsets, number: int) -> Attachment:
    name = _filename(part, charsets, f"attachment {number}'s name")
    ctype = part.get_content_type()
    if ctype == "message/rfc822" and isinstance(part.get_payload(), list):
        inner = cast(Message, part.get_payload(0))
        data = _nested_bytes(inner)
        name = name or (header_text(_one(inner, "Subject"), charsets, "a forwarded Subject") or "message") + ".eml"
    else:
        data = cast(bytes, part.get_payload(decode=True) or b"")
    return Attachment("attachments", data, name, ctype)


def _broken_boundaries(msg: Message) -> bool:
    kinds = (email.errors.StartBoundaryNotFoundDefect, email.errors.CloseBoundaryNotFoundDefect,
             email.errors.NoBoundaryInMultipartDefect, email.errors.MultipartInvariantViolationDefect)
    return any(isinstance(d, kinds) for part in msg.walk() for d in part.defects)


def _body_and_attachments(msg: Message, charsets: MessageCharsets) -> tuple[str, str, list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    files: list[Attachment] = []
    for part in _leaf_parts(msg):
        ctype = part.get_content_type()
        is_file = part.get_content_disposition() == "attachment" or part.get_filename() is not None
        if ctype == "text/plain" and not is_file:
            plain.append(_part_text(part, charsets))
        elif ctype == "text/html" and not is_file:
            html.append(_part_text(part, charsets))
        elif part.get_content_maintype() == "multipart":  # no boundary found: keep its raw text
            plain.append(_part_text(part, charsets))
        else:
            files.append(_attachment(part, charsets, len(files) + 1))
    return "\n".join(plain), "\n".join(html), files


def content_id(fields: dict[str, Any]) -> str:
    """The stable id of a message without a Message-ID: a hash of what identifies it."""
    key = {k: fields.get(k) for k in ("from", "to", "cc", "date", "subject", "body")}
    key["date_raw"] = None if fields.get("date") else fields.get("date_raw")  # as before date_raw was kept beside date
    return "sha256:" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


# Fields that make a message what it is; flags, labels, transport headers and the thread may change.
_IDENTIFYING = ("from", "to", "cc", "bcc", "reply_to", "date", "date_raw", "subject", "body", "html")


def fingerprint(fields: dict[str, Any], files: list[Attachment]) -> str:
    """What tells two messages apart when their Message-IDs are equal or absent: what they say, who to,
    when, and every attachment. Built from the fields as read, so a message exported and read back, or
    saved as CRLF .eml and in an mbox, keeps it; a change to how lifevault reads these fields must change
    the `mail1:` scheme, which the import engine then treats as unknown rather than as a different message."""
    key = {k: fields.get(k) for k in _IDENTIFYING}
    key["attachments"] = [[hashlib.sha256(a.data).hexdigest(), a.name, a.content_type] for a in files]
    return "mail1:" + hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def read_message(raw: bytes, envelope: bytes | None = None) -> ReadMessage:
    """Raw message bytes (and its mbox `From ` line, if any) -> a ReadMessage; MalformedMessage if not mail."""
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first):
        raise MalformedMessage("does not start with mail headers (a damaged mailbox?)")
    try:  # the stdlib walks nested parts recursively: absurd nesting must cost one message, not the mailbox
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        charsets = MessageCharsets(msg)
        body, html, files = _body_and_attachments(msg, charsets)
    except RecursionError:
        raise MalformedMessage("MIME parts are nested too deep") from None
    fields: dict[str, Any] = {"kind": "email"}
    warnings: list[str] = []
    sender = addresses(_one(msg, "From"), charsets, "From")
    if sender:
        fields["from"] = sender[0]
    for name, key in (("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"), ("Reply-To", "reply_to")):
        values = [a for v in _all(msg, name) for a in addresses(v, charsets, name)]
        if values:
            fields[key] = values
    date, used = _pick_date(msg, charsets, envelope)
    date_header = header_text(_one(msg, "Date"), charsets, "Date")
    if date:
        fields["date"] = date
    if used != "date":
        if date_header:
            fields["date_raw"] = date_header  # what the Date header said, since the date is not from it
        if date:
            fields["date_source"] = used
        warnings.append(_DATE_WARNINGS.get(used, f"no usable Date header; the date is from {used}"))
    subject = header_text(_one(msg, "Subject"), charsets, "Subject")
    if subject:
        fields["subject"] = subject
    body = _normalize_body(body) if body else (html_to_text(html) if html else "")
    if body:
        fields["body"] = body
    if html:
        fields["html"] = _normalize_body(html)
    own = message_ids(header_text(_one(msg, "Message-ID"), charsets, "Message-ID"))
    if own:
        fields["message_id"] = own[0]
    reply = message_ids(header_text(_one(msg, "In-Reply-To"), charsets, "In-Reply-To"))
    if reply:
        fields["in_reply_to"] = reply[0]
    refs = message_ids(header_text(_one(msg, "References"), charsets, "References"))
    if refs:
        fields["references"] = refs
    labels = header_text(_one(msg, "X-Gmail-Labels"), charsets, "X-Gmail-Labels")  # Google Takeout's Gmail labels
    if labels:
        fields["labels"] = [label.strip() for label in labels.split(",") if label.strip()]
    flags = _flags(msg)
    if flags:
        fields["flags"] = sorted(flags)
    others = _other_headers(msg, charsets)
    if others:
        fields["headers"] = others
    source_id = own[0][1:-1] if own else content_id(fields)
    thread = header_text(_one(msg, "X-Lifevault-Thread")) or header_text(_one(msg, "X-GM-THRID"))
    fields["thread"] = thread or derived_thread(fields, source_id)
    if _broken_boundaries(msg):
        warnings.append("its MIME boundaries are broken; the text is kept (parts found by the boundary they use, "
                        "or as one text)")
    guessed = charsets.warning()
    if guessed:
        warnings.insert(0, guessed)
    return ReadMessage(source_id, fields, files, fingerprint(fields, files), warnings)


def derived_thread(fields: dict[str, Any], source_id: str) -> str:
    """A thread key from the headers alone: the first Reference, else In-Reply-To, else itself."""
    refs = fields.get("references") or []
    return refs[0] if refs else fields.get("in_reply_to") or fields.get("message_id") or source_id


# -- writing ---------------------------------------------------------------------
def _set_address_header(msg: EmailMessage, name: str, values: list[str]) -> None:
    text = ", ".join(values)
    if text.isascii() and any(v.endswith("<>") for v in values):  # a null sender: the parser would drop words
        msg[name] = _RAW_HEADER(name, text)
        return
    try:
        msg[name] = text
        str(msg[name])
    except (ValueError, TypeError, IndexError, email.errors.HeaderParseError):
        del msg[name]
        msg[name] = email.header.Header(text, "utf-8").encode()


def _status_headers(flags: set[str]) -> list[tuple[str, str]]:
    out = []
    if "seen" in flags:
        out.append(("Status", "RO"))
    x_status = "".join(c for c, name in _X_STATUS.items() if name in flags)
    if x_status:
        out.append(("X-Status", x_status))
    if "forwarded" in flags:  # only Thunderbird's bits can say it in an mbox
        out.append(("X-Mozilla-Status", f"{sum(b for b, name in _MOZILLA.items() if name in flags):04x}"))
    return out


def _verbatim_headers(headers: Any) -> bytes:
    """The `headers` field back as header lines, exactly as read; a value's bare line break gets the
    leading space that keeps it one header (a value edited in the vault must not forge another)."""
    out = []
    for item in headers if isinstance(headers, list) else []:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            continue
        name, value = item
        if _HEADER_NAME.match(name):
            value = re.sub(r"\n(?![ \t])", "\n ", value.replace("\r", ""))
            out.append(f"{name}: {value}\n".encode("utf-8", "surrogateescape"))
    return b"".join(out)


def _nested_part(data: bytes, name: str | None) -> EmailMessage:
    """A message/rfc822 part holding the forwarded message's bytes as they are, not re-serialized."""
    part = EmailMessage(policy=_OUT_POLICY)
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "attachment"
    if name:
        part.set_param("filename", name, header="Content-Disposition")
    part.set_payload(data.decode("ascii", "surrogateescape"))
    return part


def write_message(fields: dict[str, Any], files: list[tuple[bytes, str | None, str | None]]) -> bytes:
    """Fields (+ attachment bytes, name, type) -> message bytes that `read_message` maps back."""
    msg = EmailMessage(policy=_OUT_POLICY)
    if fields.get("from"):
        _set_address_header(msg, "From", [fields["from"]])
    for name, key in (("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"), ("Reply-To", "reply_to")):
        if fields.get(key):
            values = fields[key]
            _set_address_header(msg, name, [values] if isinstance(values, str) else list(values))
    if fields.get("date_raw"):
        msg["Date"] = _RAW_HEADER("Date", fields["date_raw"])  # as read: the Date parser would empty it
    elif fields.get("date") and fields.get("date_source") in (None, "date"):
        try:
            msg["Date"] = email.utils.format_datetime(datetime.fromisoformat(str(fields["date"])))
        except ValueError:  # a date typed by hand, not ISO 8601: keep the text
            msg["Date"] = _RAW_HEADER("Date", str(fields["date"]))
    if fields.get("subject"):
        msg["Subject"] = fields["subject"]
    for header, key in (("Message-ID", "message_id"), ("In-Reply-To", "in_reply_to")):
        if fields.get(key):  # as text: the policy's Message-ID parser would trim odd ids like <a@b@c>
            msg[header] = _RAW_HEADER(header, str(fields[key]))
    if fields.get("references"):
        msg["References"] = _RAW_HEADER("References", " ".join(fields["references"]))
    if fields.get("labels"):
        msg["X-Gmail-Labels"] = ",".join(fields["labels"])
    for name, value in _status_headers(set(fields.get("flags") or ())):
        msg[name] = value
    source_id = fields["message_id"][1:-1] if fields.get("message_id") else content_id(fields)
    if fields.get("thread") and fields["thread"] != derived_thread(fields, source_id):
        msg["X-Lifevault-Thread"] = fields["thread"]
    msg.set_content(fields.get("body", ""))
    if fields.get("html"):
        msg.add_alternative(fields["html"], subtype="html")
    for data, filename, ctype in files:
        maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
        if ctype == "message/rfc822":  # a forwarded message goes back in as a message part, byte for byte
            if msg.get_content_type() != "multipart/mixed":
                msg.make_mixed()
            msg.attach(_nested_part(data, filename))
        elif ctype and maintype == "text":  # (a text type is always given, never the default)
            msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
            parts = cast(list[Message], msg.get_payload())  # multipart now: a list of parts
            parts[-1].replace_header("Content-Type", ctype)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    _fix_boundaries(msg)
    return _verbatim_headers(fields.get("headers")) + msg.as_bytes(policy=_out_policy(msg))


def _out_policy(msg: EmailMessage) -> email.policy.EmailPolicy[EmailMessage]:
    """The usual 78-character folding, unless it would change an address as a reader decodes it."""
    for name in _ADDRESS_HEADERS:
        for value in msg.get_all(name) or ():
            folded, unfolded = (p.fold(name, value).split(":", 1)[1] for p in (_OUT_POLICY, _UNFOLDED_POLICY))
            if addresses(folded) != addresses(unfolded):
                return _UNFOLDED_POLICY
    return _OUT_POLICY


def _fix_boundaries(msg: EmailMessage) -> None:
    """Boundaries from the content instead of random ones, so one vault state exports to one file."""
    for n, part in enumerate(reversed([p for p in msg.walk() if p.is_multipart()])):  # innermost first
        content = b"".join(sub.as_bytes(policy=_OUT_POLICY) for sub in part.iter_parts())
        digest = hashlib.sha256(content).hexdigest()[:24]
        part.set_boundary(f"=_lv{n}_{digest}")
