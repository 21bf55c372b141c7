"""Android "SMS Backup & Restore" XML <->: `<sms>` and `<mms>` elements, MMS parts and images.

The file streams through ingest/safexml.py (no entity expansion, bounded memory,
emoji written as surrogate-pair references repaired). The app writes absent
values as the string "null". An SMS has no id of its own, so its source id is
its address, its time (milliseconds) and its direction; an MMS uses its
`m_id` (an MMS Message-ID) when it has one. Export writes the same shape back,
so the app can restore it and lifevault re-imports it as the same records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from ingest import check_text_file, head
from ingest.safexml import iter_records
from vault.domain.events import Kind
from vault.formats import Attachment, BadRecord, ExportRecord, Input, SourceRecord, hookimpl

_BOX = {"1": "inbox", "2": "sent", "3": "draft", "4": "outbox", "5": "failed", "6": "queued"}
_BOX_CODE = {v: k for k, v in _BOX.items()}
_ADDR_TYPES = {"137": "from", "151": "to", "130": "cc", "129": "bcc"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class _Bad(ValueError):
    pass


def _attr(el: Element, name: str) -> str | None:
    value = el.get(name)
    return None if value in (None, "", "null") else value


def _instant(el: Element, name: str) -> str:
    """A milliseconds attribute as ISO 8601 UTC with milliseconds (exact, so it exports back unchanged)."""
    text = el.get(name) or ""
    if not text.isdigit():
        raise _Bad(f"its {name} {text!r} is not a time in milliseconds")
    return (_EPOCH + timedelta(milliseconds=int(text))).isoformat(timespec="milliseconds")


def _ms(iso: str) -> str:
    when = datetime.fromisoformat(iso)
    if when.tzinfo is None:  # a record from elsewhere without a zone: take it as UTC
        when = when.replace(tzinfo=timezone.utc)
    return str((when - _EPOCH) // timedelta(milliseconds=1))


def _has_date(fields: dict[str, Any]) -> bool:
    try:
        _ms(str(fields.get("date", "")))
        return True
    except ValueError:
        return False


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value or [])


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _common(el: Element, box_attr: str) -> dict[str, Any]:
    address = _attr(el, "address")
    if address is None:
        raise _Bad("it has no address")
    fields: dict[str, Any] = {"kind": "sms", "thread": address, "date": _instant(el, "date"),
                              "box": _BOX.get(el.get(box_attr) or "", "inbox")}
    name = _attr(el, "contact_name")
    if name and name != "(Unknown)":
        fields["contact_name"] = name
    fields["read"] = el.get("read") == "1"
    if el.get("locked") == "1":
        fields["locked"] = True
    return fields


def sms_record(el: Element) -> tuple[str, dict[str, Any]]:
    """An `<sms>` element -> (source id, fields)."""
    fields = _common(el, "type")
    address = fields["thread"]
    if fields["box"] == "inbox":
        fields["from"] = address
    else:
        fields["to"] = [address]
    for key, attr in (("body", "body"), ("subject", "subject"), ("service_center", "service_center")):
        value = _attr(el, attr)
        if value is not None:
            fields[key] = value
    if (el.get("date_sent") or "0") not in ("0", ""):
        fields["date_sent"] = _instant(el, "date_sent")
    direction = "in" if fields["box"] == "inbox" else "out"
    return "sms:" + _digest(address, el.get("date") or "", direction), fields


def _part_attachment(part: Element) -> Attachment:
    ctype = _attr(part, "ct") or "application/octet-stream"
    name = _attr(part, "cl") or _attr(part, "name") or _attr(part, "fn")
    data = _attr(part, "data")
    if data is not None:
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(f"its part {name or ctype} has data that is not base64") from None
    else:
        content = (_attr(part, "text") or "").encode("utf-8")
    return Attachment("attachments", content, name, ctype)


def mms_record(el: Element) -> tuple[str, dict[str, Any], list[Attachment]]:
    """An `<mms>` element -> (source id, fields, attachments): text parts make the body."""
    fields = _common(el, "msg_box")
    fields["mms"] = True
    texts: list[str] = []
    files: list[Attachment] = []
    for part in el.iterfind("parts/part"):
        ctype = (part.get("ct") or "").lower()
        if ctype == "application/smil":  # layout only; the app writes its own on restore
            continue
        if ctype == "text/plain" and _attr(part, "data") is None:
            texts.append(part.get("text") or "")
        else:
            files.append(_part_attachment(part))
    for addr in el.iterfind("addrs/addr"):
        role = _ADDR_TYPES.get(addr.get("type") or "")
        value = _attr(addr, "address")
        if role == "from" and value:
            fields.setdefault("from", value)
        elif role and value:
            fields.setdefault(role, []).append(value)
    body = "\n".join(t for t in texts if t)
    if body:
        fields["body"] = body
    subject = _attr(el, "sub")
    if subject:
        fields["subject"] = subject
    m_id = _attr(el, "m_id")
    if m_id:
        fields["message_id"] = m_id
        return "mms:" + m_id, fields, files
    return "mms:" + _digest(fields["thread"], el.get("date") or "", fields["box"]), fields, files


class SmsImporter:
    """Reads the XML that Android's "SMS Backup & Restore" app writes."""

    name = "sms"
    version = "1"
    description = "Android SMS and MMS from an \"SMS Backup & Restore\" XML file"

    streams = True

    def detect(self, source: Input | Path) -> bool:
        return Input.of(source).is_file() and b"<smses" in head(source, 4096)

    def read(self, source: Input | Path) -> Iterator[SourceRecord | BadRecord]:
        src = Input.of(source)
        check_text_file(src, "an SMS Backup & Restore XML file")
        what = "an SMS Backup & Restore export"
        for location, el in iter_records(src, "smses", frozenset({"sms", "mms"}), what):
            try:
                if el.tag == "sms":
                    source_id, fields = sms_record(el)
                    yield SourceRecord(Kind.MESSAGE, source_id, fields, (), location)
                else:
                    source_id, fields, files = mms_record(el)
                    yield SourceRecord(Kind.MESSAGE, source_id, fields, tuple(files), location)
            except _Bad as e:
                yield BadRecord(location, str(e))


# -- export ---------------------------------------------------------------------
def _q(value: Any) -> str:
    text = "null" if value is None else str(value)
    return quoteattr(_NOT_XML.sub("\ufffd", text))


def _element(tag: str, attrs: dict[str, Any], inner: str = "") -> str:
    text = " ".join(f"{k}={_q(v)}" for k, v in attrs.items())
    return f"<{tag} {text}>{inner}</{tag}>" if inner else f"<{tag} {text} />"


def _readable(iso: str) -> str:
    when = datetime.fromisoformat(iso)
    return f"{when.day} {when:%b %Y %H:%M:%S}"


def _flags(f: dict[str, Any]) -> dict[str, str]:
    return {"read": "1" if f.get("read") else "0", "locked": "1" if f.get("locked") else "0"}


def _sms_xml(f: dict[str, Any]) -> str:
    address = f.get("thread") or f.get("from") or (_as_list(f.get("to")) or [""])[0]
    return _element("sms", {
        "protocol": "0", "address": address, "date": _ms(f["date"]), "type": _BOX_CODE.get(f.get("box", ""), "1"),
        "subject": f.get("subject"), "body": f.get("body", ""), "toa": None, "sc_toa": None,
        "service_center": f.get("service_center"), **_flags(f), "status": "-1",
        "date_sent": _ms(f["date_sent"]) if f.get("date_sent") else "0",
        "readable_date": _readable(f["date"]), "contact_name": f.get("contact_name", "(Unknown)"),
    })


def _mms_xml(f: dict[str, Any], get_blob: Callable[[str], bytes]) -> str:
    parts = []
    if f.get("body"):
        parts.append(_element("part", {"seq": "0", "ct": "text/plain", "name": None, "chset": "106",
                                       "cl": "text_0.txt", "text": f["body"]}))
    for ref in f.get("attachments") or []:
        data = base64.b64encode(get_blob(ref["blob"])).decode("ascii")
        parts.append(_element("part", {"seq": "0", "ct": ref.get("type") or "application/octet-stream",
                                       "name": ref.get("name"), "chset": None, "cl": ref.get("name"),
                                       "text": None, "data": data}))
    addrs = [_element("addr", {"address": f["from"], "type": "137", "charset": "106"})] if f.get("from") else []
    for role, code in (("to", "151"), ("cc", "130"), ("bcc", "129")):
        addrs += [_element("addr", {"address": a, "type": code, "charset": "106"}) for a in _as_list(f.get(role))]
    inner = f"\n    <parts>{''.join(parts)}</parts>\n    <addrs>{''.join(addrs)}</addrs>\n  "
    return _element("mms", {
        "date": _ms(f["date"]), "msg_box": _BOX_CODE.get(f.get("box", ""), "1"), "address": f.get("thread", ""),
        "m_id": f.get("message_id"), "sub": f.get("subject"), **_flags(f),
        "ct_t": "application/vnd.wap.multipart.related", "text_only": "0" if f.get("attachments") else "1",
        "m_type": "132" if f.get("box", "inbox") == "inbox" else "128",
        "readable_date": _readable(f["date"]), "contact_name": f.get("contact_name", "(Unknown)"),
    }, inner)


class SmsExporter:
    """Writes SMS/MMS records as an XML file "SMS Backup & Restore" can restore."""

    name = "sms"
    description = "SMS and MMS as \"SMS Backup & Restore\" XML"
    kinds = (Kind.MESSAGE,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        chosen = [r for r in records if r.fields.get("kind") == "sms" and _has_date(r.fields)]
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            f.write("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n"
                    "<!--File Created By lifevault-->\n"
                    f'<smses count="{len(chosen)}" type="full">\n')
            for r in chosen:
                xml = _mms_xml(r.fields, get_blob) if r.fields.get("mms") else _sms_xml(r.fields)
                f.write("  " + xml + "\n")
            f.write("</smses>\n")
        return len(chosen)


@hookimpl
def register_importers(register):
    register(SmsImporter())


@hookimpl
def register_exporters(register):
    register(SmsExporter())
