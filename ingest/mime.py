"""One RFC 5322 / MIME message <-> one message record (fields + attachments).

`read_message` turns raw bytes into the fields of vault/events.py's message kind;
`write_message` turns those fields back into bytes that read back the same,
which is what makes the mbox round trip lossless. Real mail is messy, so reading
is forgiving: unknown or wrong charsets fall back (declared -> UTF-8 -> cp1252 ->
Latin-1), RFC 2047 words with bad encodings keep their raw text, and MIME with a
missing boundary still yields its text. Only a chunk with no mail headers at all,
or MIME nested absurdly deep, is refused (as MalformedMessage).
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.headerregistry
import email.policy
import email.utils
import hashlib
import json
import re
from datetime import datetime, timezone
from email.message import EmailMessage, Message
from typing import Any, Iterator

from vault.formats import Attachment

from .htmltext import html_to_text

MAX_MIME_DEPTH = 40
# How messages are written out (and forwarded messages re-serialized on reading).
_OUT_POLICY = email.policy.default.clone(linesep="\n", cte_type="7bit", max_line_length=78)
_RAW_HEADER = email.headerregistry.HeaderRegistry(use_default_map=False)  # headers kept as plain text
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")  # a field name is printable ASCII except ':'
_MSGID = re.compile(r"<[^<>\s]+>")
# Charset labels seen in the wild that Python does not know, or knows too narrowly.
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",  # Outlook's label for Korean
    "iso-8859-8-i": "iso-8859-8",  # Hebrew, logical order (Outlook, Thunderbird)
    "gb2312": "gb18030",  # many "gb2312" mails use GBK/GB18030 characters
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
_NO_CHARSET = {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "none", "8bit"}
_LATIN_LABELS = {"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "iso-8859-15"}


class MalformedMessage(ValueError):
    """A chunk of a mailbox that is not a message; the reason is one short phrase."""


# -- text and headers ------------------------------------------------------------
def decode_text(data: bytes, declared: str | None) -> str:
    """Bytes to text trusting the declared charset only as far as it fits the bytes."""
    label = (declared or "").strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label in _NO_CHARSET:
        label = ""
    if (not label or label in _LATIN_LABELS) and not data.isascii():
        # Mislabelled mail: valid UTF-8 with non-ASCII bytes is almost never really Latin-1.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    for codec in (label, "utf-8", "cp1252"):
        if not codec:
            continue
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def raw_header(value: Any) -> str:
    """A header unfolded, raw 8-bit bytes guessed, RFC 2047 words still encoded."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = value.encode()  # compat32 hands back Header objects for undecodable 8-bit headers
    text = re.sub(r"\r?\n[ \t]*", " ", str(value))
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit header bytes (surrogateescape)
        text = decode_text(text.encode("ascii", "surrogateescape"), None)
    return text


def header_text(value: Any) -> str:
    """A header's display text: unfolded, RFC 2047 words decoded, raw 8-bit bytes guessed."""
    text = raw_header(value)
    try:
        chunks = email.header.decode_header(text)
    except (email.errors.HeaderParseError, ValueError):
        return text.strip()
    out = []
    for chunk, charset in chunks:
        out.append(chunk if isinstance(chunk, str) else decode_text(chunk, charset))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def show_address(name: str, addr: str) -> str:
    """`Name <addr>` (quoted when the name has specials), or the bare address."""
    if not name:
        return addr
    if re.search(r'[()<>@,;:\\".\[\]]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>" if addr else name


def addresses(value: Any) -> list[str]:
    """The addresses in a To/Cc/From header, each as `Name <addr>`.

    The list is split before encoded words are decoded (RFC 2047's order), so a
    decoded name holding `,` or `:` stays one name."""
    raw = raw_header(value)
    if not raw.strip():
        return []
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


# -- reading ---------------------------------------------------------------------
def _leaf_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    if depth > MAX_MIME_DEPTH:
        raise MalformedMessage(f"MIME parts are nested more than {MAX_MIME_DEPTH} deep")
    payload = msg.get_payload()
    if msg.get_content_maintype() == "multipart" and isinstance(payload, list):
        for part in payload:
            yield from _leaf_parts(part, depth + 1)
    else:
        yield msg


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if data is None:  # message/* parts and malformed multiparts without a boundary
        raw = part.get_payload()
        data = raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""
    return decode_text(data, part.get_content_charset())


def _normalize_body(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _attachment(part: Message) -> Attachment:
    name = header_text(part.get_filename()) or None
    ctype = part.get_content_type()
    if ctype == "message/rfc822" and isinstance(part.get_payload(), list):
        inner = part.get_payload(0)
        # Serialized the way write_message writes it, so the bytes survive a round trip.
        data = inner.as_bytes(policy=_OUT_POLICY)
        name = name or (header_text(inner["Subject"]) or "message") + ".eml"
    else:
        data = part.get_payload(decode=True) or b""
    return Attachment("attachments", data, name, ctype)


def _body_and_attachments(msg: Message) -> tuple[str, str, list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    files: list[Attachment] = []
    for part in _leaf_parts(msg):
        ctype = part.get_content_type()
        is_file = part.get_content_disposition() == "attachment" or part.get_filename() is not None
        if ctype == "text/plain" and not is_file:
            plain.append(_part_text(part))
        elif ctype == "text/html" and not is_file:
            html.append(_part_text(part))
        elif part.get_content_maintype() == "multipart":  # no boundary found: keep its raw text
            plain.append(_part_text(part))
        else:
            files.append(_attachment(part))
    return "\n".join(plain), "\n".join(html), files


def content_id(fields: dict[str, Any]) -> str:
    """The stable id of a message without a Message-ID: a hash of what identifies it."""
    key = {k: fields.get(k) for k in ("from", "to", "cc", "date", "date_raw", "subject", "body")}
    return "sha256:" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def read_message(raw: bytes) -> tuple[str, dict[str, Any], list[Attachment]]:
    """Raw message bytes -> (source id, fields, attachments); MalformedMessage if it is not mail."""
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first):
        raise MalformedMessage("does not start with mail headers (a damaged mailbox?)")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    try:
        body, html, files = _body_and_attachments(msg)
    except RecursionError:
        raise MalformedMessage("MIME parts are nested too deep") from None
    fields: dict[str, Any] = {"kind": "email"}
    sender = addresses(msg["From"])
    if sender:
        fields["from"] = sender[0]
    for name in ("to", "cc"):
        values = [a for v in msg.get_all(name, []) for a in addresses(v)]
        if values:
            fields[name] = values
    date_header = header_text(msg["Date"])
    received = [header_text(v).rpartition(";")[2] for v in msg.get_all("Received", [])]
    date = parse_date(date_header) or next((d for d in map(parse_date, reversed(received)) if d), None)
    if date:
        fields["date"] = date
    elif date_header:
        fields["date_raw"] = date_header
    subject = header_text(msg["Subject"])
    if subject:
        fields["subject"] = subject
    body = _normalize_body(body) if body else (html_to_text(html) if html else "")
    if body:
        fields["body"] = body
    if html:
        fields["html"] = _normalize_body(html)
    own = message_ids(header_text(msg["Message-ID"]))
    if own:
        fields["message_id"] = own[0]
    reply = message_ids(header_text(msg["In-Reply-To"]))
    if reply:
        fields["in_reply_to"] = reply[0]
    refs = message_ids(header_text(msg["References"]))
    if refs:
        fields["references"] = refs
    labels = header_text(msg["X-Gmail-Labels"])  # Google Takeout's mbox carries Gmail labels here
    if labels:
        fields["labels"] = [label.strip() for label in labels.split(",") if label.strip()]
    source_id = own[0][1:-1] if own else content_id(fields)
    thread = header_text(msg["X-Lifevault-Thread"]) or header_text(msg["X-GM-THRID"])
    fields["thread"] = thread or derived_thread(fields, source_id)
    return source_id, fields, files


def derived_thread(fields: dict[str, Any], source_id: str) -> str:
    """A thread key from the headers alone: the first Reference, else In-Reply-To, else itself."""
    refs = fields.get("references") or []
    return refs[0] if refs else fields.get("in_reply_to") or fields.get("message_id") or source_id


# -- writing ---------------------------------------------------------------------


def _set_address_header(msg: EmailMessage, name: str, values: list[str]) -> None:
    text = ", ".join(values)
    try:
        msg[name] = text
        str(msg[name])
    except (ValueError, TypeError, IndexError, email.errors.HeaderParseError):
        del msg[name]
        msg[name] = email.header.Header(text, "utf-8").encode()


def write_message(fields: dict[str, Any], files: list[tuple[bytes, str | None, str | None]]) -> bytes:
    """Fields (+ attachment bytes, name, type) -> message bytes that `read_message` maps back."""
    msg = EmailMessage(policy=_OUT_POLICY)
    if fields.get("from"):
        _set_address_header(msg, "From", [fields["from"]])
    for name in ("to", "cc"):
        if fields.get(name):
            values = fields[name]
            _set_address_header(msg, name.capitalize(), [values] if isinstance(values, str) else list(values))
    if fields.get("date"):
        try:
            msg["Date"] = email.utils.format_datetime(datetime.fromisoformat(str(fields["date"])))
        except ValueError:  # a date typed by hand, not ISO 8601: keep the text
            msg["Date"] = _RAW_HEADER("Date", str(fields["date"]))
    elif fields.get("date_raw"):
        msg["Date"] = _RAW_HEADER("Date", fields["date_raw"])  # as read: the Date parser would empty it
    if fields.get("subject"):
        msg["Subject"] = fields["subject"]
    for header, key in (("Message-ID", "message_id"), ("In-Reply-To", "in_reply_to")):
        if fields.get(key):  # as text: the policy's Message-ID parser would trim odd ids like <a@b@c>
            msg[header] = _RAW_HEADER(header, str(fields[key]))
    if fields.get("references"):
        msg["References"] = _RAW_HEADER("References", " ".join(fields["references"]))
    if fields.get("labels"):
        msg["X-Gmail-Labels"] = ",".join(fields["labels"])
    source_id = fields["message_id"][1:-1] if fields.get("message_id") else content_id(fields)
    if fields.get("thread") and fields["thread"] != derived_thread(fields, source_id):
        msg["X-Lifevault-Thread"] = fields["thread"]
    msg.set_content(fields.get("body", ""))
    if fields.get("html"):
        msg.add_alternative(fields["html"], subtype="html")
    for data, name, ctype in files:
        maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
        if ctype == "message/rfc822":  # a forwarded message goes back in as a message part
            inner = email.message_from_bytes(data, policy=email.policy.compat32)
            msg.add_attachment(inner, filename=name)
        elif maintype == "text":
            msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
            msg.get_payload()[-1].replace_header("Content-Type", ctype)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    _fix_boundaries(msg)
    return msg.as_bytes(policy=_OUT_POLICY)


def _fix_boundaries(msg: EmailMessage) -> None:
    """Boundaries from the content instead of random ones, so one vault state exports to one file."""
    for n, part in enumerate(reversed([p for p in msg.walk() if p.is_multipart()])):  # innermost first
        content = b"".join(sub.as_bytes(policy=_OUT_POLICY) for sub in part.iter_parts())
        digest = hashlib.sha256(content).hexdigest()[:24]
        part.set_boundary(f"=_lv{n}_{digest}")
