"""vCard 2.1, 3.0 and 4.0 (`.vcf`) contacts, read and written with vobject.

The file is split into cards here (bounded memory, a location per card), the
vCard 2.1 quirks vobject does not handle are undone first (quoted-printable
soft line breaks, raw 8-bit text in a CHARSET), photos are decoded here
(base64 in 2.1/3.0, `data:` URIs in 4.0), and the rest goes to vobject.
Export writes vCard 3.0; fields vCard has no property for travel in
`X-LIFEVAULT-FIELD;X-NAME=<field>:<json>` lines so a round trip loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import vobject

import ingest
from ingest import bounded_lines, check_text_file, text_head
from vault.errors import IngestError
from vault.events import Kind
from vault.formats import Attachment, BadRecord, ExportRecord, Exporter, Importer, SourceRecord
from vault.hookspecs import hookimpl

_CHARSET = re.compile(rb";CHARSET=([A-Za-z0-9_.:-]+)", re.I)
_PHOTO = re.compile(r"^(?:[\w-]+\.)?PHOTO([;:])", re.I)
_ADR_PARTS = ("box", "extended", "street", "city", "region", "code", "country")
_ADR_KEYS = ("po_box", "extended", "street", "city", "region", "code", "country")
_IMAGE_TYPES = {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp"}
_KNOWN = {"uid", "name", "given_name", "family_name", "middle_name", "name_prefix", "name_suffix", "nickname",
          "emails", "phones", "addresses", "birthday", "organization", "org_units", "title", "urls", "groups",
          "note", "photo", "photo_url"}


def _decode_line(raw: bytes) -> str:
    """A physical line as text: UTF-8, else the CHARSET it names, else Windows-1252 (old phone exports)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        m = _CHARSET.search(raw)
        try:
            return raw.decode(m.group(1).decode() if m else "cp1252")
        except (LookupError, UnicodeDecodeError):
            return raw.decode("cp1252", errors="replace")


def split_cards(path: Path) -> Iterator[tuple[int, int, list[str]]]:
    """(card number, first line, physical lines) per BEGIN:VCARD … END:VCARD block."""
    card: list[str] | None = None
    depth, number, start = 0, 0, 0
    with path.open("rb") as f:
        for n, raw in enumerate(bounded_lines(f, path), 1):
            line = _decode_line(raw).rstrip("\r\n")
            word = line.strip().upper()
            if card is None:
                if word == "BEGIN:VCARD":
                    card, depth, number, start, size = [line], 1, number + 1, n, 0
                elif word and word != "\ufeff":
                    if number == 0:
                        raise IngestError(path, f"line {n}", "not a vCard file (it does not start with BEGIN:VCARD)")
                    raise IngestError(path, f"line {n}", "text outside any card")
                continue
            card.append(line)
            size += len(raw)
            if size > ingest.MAX_RECORD:
                raise IngestError(path, f"card {number} (line {start})", "the card is absurdly large")
            depth += (word == "BEGIN:VCARD") - (word == "END:VCARD")  # vCard 2.1 AGENT may nest a card
            if depth == 0:
                yield number, start, card
                card = None
    if card is not None:
        raise IngestError(path, f"card {number} (line {start})", "the file ends inside a card (truncated?)")
    if number == 0:
        raise IngestError(path, None, "no vCards in it")


def logical_lines(physical: list[str]) -> list[str]:
    """Unfold folded lines and quoted-printable soft line breaks (`=` at the end of a line)."""
    out: list[str] = []
    for line in physical:
        if out and line[:1] in (" ", "\t"):
            out[-1] += line[1:]
        elif out and out[-1].endswith("=") and "QUOTED-PRINTABLE" in out[-1].split(":", 1)[0].upper():
            out[-1] = out[-1][:-1] + line
        elif line.strip():
            out.append(line)
    return out


def _photo(line: str) -> tuple[Attachment | None, str | None]:
    """A PHOTO line as an attachment (inline data) or a URL (a link)."""
    head, _, value = line.partition(":")
    params = {p.split("=", 1)[0].upper(): p.split("=", 1)[-1].upper() for p in head.split(";")[1:]}
    bare = {p.upper() for p in head.split(";")[1:] if "=" not in p}
    value = value.strip()
    if value.lower().startswith("data:"):  # vCard 4.0: data:image/png;base64,....
        meta, _, data = value[5:].partition(",")
        ctype = meta.split(";")[0] or None
        return Attachment("photo", base64.b64decode(data, validate=False), content_type=ctype), None
    if params.get("ENCODING") in ("B", "BASE64") or "BASE64" in bare:
        kind = params.get("TYPE") or next((b for b in bare if b in _IMAGE_TYPES), None)
        ctype = _IMAGE_TYPES.get(kind or "", f"image/{kind.lower()}" if kind else None)
        return Attachment("photo", base64.b64decode(re.sub(r"\s+", "", value), validate=True), content_type=ctype), None
    return None, value or None


def _text(v: Any) -> str:
    return " ".join(x for x in v if x) if isinstance(v, list) else str(v or "")


def _values(card: Any, name: str) -> list[Any]:
    return [line.value for line in card.contents.get(name, [])]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(x.strip() for x in items if x and x.strip()))


def _addr_type(line: Any) -> str | None:
    types = [t.lower() for t in line.params.get("TYPE", []) + list(line.singletonparams) if t.upper() != "PREF"]
    return types[0] if types else None


def card_fields(card: Any) -> dict[str, Any]:
    """The vault fields a parsed vCard holds (photo excluded)."""
    f: dict[str, Any] = {}
    if "n" in card.contents:
        n = card.n.value
        for key, part in (("family_name", n.family), ("given_name", n.given), ("middle_name", n.additional),
                          ("name_prefix", n.prefix), ("name_suffix", n.suffix)):
            if _text(part).strip():
                f[key] = _text(part).strip()
    f["emails"] = _unique(_values(card, "email"))
    f["phones"] = _unique(re.sub(r"^tel:", "", str(v), flags=re.I) for v in _values(card, "tel"))
    f["urls"] = _unique(str(v) for v in _values(card, "url"))
    f["groups"] = _unique(g for v in _values(card, "categories") for g in (v if isinstance(v, list) else [v]))
    f["addresses"] = [a for a in (_address(line) for line in card.contents.get("adr", [])) if a]
    org = [x for x in (_values(card, "org") or [[]])[0] if x] if "org" in card.contents else []
    if org:
        f["organization"], f["org_units"] = org[0], org[1:]
    for key, prop in (("nickname", "nickname"), ("title", "title"), ("birthday", "bday"), ("note", "note")):
        vals = _values(card, prop)
        if vals and _text(vals[0]).strip():
            f[key] = _text(vals[0]).strip().replace("\r\n", "\n")  # export writes \n; keep the round trip exact
    for line in card.contents.get("x-lifevault-field", []):
        name = (line.params.get("X-NAME") or [""])[0]
        f[name] = json.loads(line.value)
    names = _values(card, "fn")
    parts = [f.get(k) for k in ("name_prefix", "given_name", "middle_name", "family_name", "name_suffix")]
    f["name"] = (_text(names[0]).strip() if names else "") or " ".join(p for p in parts if p) or \
        f.get("organization") or next(iter(f["emails"] + f["phones"]), "")
    return {k: v for k, v in f.items() if v not in ("", [], None)}


def _address(line: Any) -> dict[str, str]:
    a = line.value
    out = {key: _text(getattr(a, part, "")).strip() for key, part in zip(_ADR_KEYS, _ADR_PARTS)}
    out = {k: v for k, v in out.items() if v}
    if out and _addr_type(line):
        out["type"] = _addr_type(line)
    return out


def parse_card(lines: list[str], number: int, start: int, seen: dict[str, int]) -> SourceRecord | BadRecord:
    where = f"card {number} (line {start})"
    photo, photo_url, rest = None, None, []
    try:
        for line in logical_lines(lines):
            if _PHOTO.match(line):
                photo, photo_url = _photo(line)
            else:
                rest.append(line)
        card = vobject.readOne("\r\n".join(rest) + "\r\n")
        fields = card_fields(card)
    except (binascii.Error, ValueError) as e:
        return BadRecord(where, f"cannot parse the card ({e})")
    except Exception as e:  # vobject raises its own ParseError and assorted others on broken cards
        return BadRecord(where, f"cannot parse the card ({type(e).__name__}: {e})")
    if photo_url:
        fields["photo_url"] = photo_url
    if not fields.get("name"):
        return BadRecord(where, "the card has no name, organization, email or phone")
    uids = _values(card, "uid")
    uid = str(uids[0]).strip() if uids and str(uids[0]).strip() else ""
    if not uid:  # no UID: the name identifies it (numbered when a file repeats a name)
        seen[fields["name"]] = seen.get(fields["name"], 0) + 1
        key = fields["name"] + (f"#{seen[fields['name']]}" if seen[fields["name"]] > 1 else "")
        uid = "name-" + hashlib.sha256(key.encode()).hexdigest()[:24]
    fields["uid"] = uid
    ids = _values(card, "x-lifevault-id")
    return SourceRecord(Kind.CONTACT, uid, fields, (photo,) if photo else (), where,
                        record_id=str(ids[0]).strip() if ids else None)


class VcardImporter:
    name = "vcard"
    version = "1"
    description = "vCard 2.1, 3.0 and 4.0 contacts (.vcf)"

    def detect(self, path: Path) -> bool:
        return text_head(path, 512).lstrip().upper().startswith("BEGIN:VCARD")

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord]:
        check_text_file(path, "a vCard file")
        seen: dict[str, int] = {}
        for number, start, lines in split_cards(path):
            yield parse_card(lines, number, start, seen)


def build_card(r: ExportRecord, get_blob: Callable[[str], bytes]) -> Any:
    """A vobject vCard 3.0 for an exported contact."""
    f, c = r.fields, vobject.vCard()
    c.add("fn").value = f.get("name") or r.record_id
    c.add("n").value = vobject.vcard.Name(family=f.get("family_name", ""), given=f.get("given_name", ""),
                                          additional=f.get("middle_name", ""), prefix=f.get("name_prefix", ""),
                                          suffix=f.get("name_suffix", ""))
    for prop, key in (("nickname", "nickname"), ("title", "title"), ("bday", "birthday"), ("note", "note"),
                      ("uid", "uid")):
        if isinstance(f.get(key), str):
            c.add(prop).value = f[key]
    for prop, key in (("email", "emails"), ("tel", "phones"), ("url", "urls")):
        for v in f.get(key) or []:
            c.add(prop).value = str(v)
    if f.get("groups"):
        c.add("categories").value = [str(g) for g in f["groups"]]
    if f.get("organization"):
        c.add("org").value = [f["organization"], *f.get("org_units", [])]
    for a in f.get("addresses") or []:
        line = c.add("adr")
        line.value = vobject.vcard.Address(**{p: a.get(k, "") for k, p in zip(_ADR_KEYS, _ADR_PARTS)})
        if a.get("type"):
            line.type_param = a["type"]
    _add_photo(c, f.get("photo"), f.get("photo_url"), get_blob)
    for name in sorted(set(f) - _KNOWN):
        x = c.add("x-lifevault-field")
        x.params["X-NAME"] = [name]
        x.value = json.dumps(f[name], ensure_ascii=False, sort_keys=True)
    c.add("x-lifevault-id").value = r.record_id
    return c


def _add_photo(c: Any, ref: Any, url: Any, get_blob: Callable[[str], bytes]) -> None:
    if isinstance(ref, dict) and isinstance(ref.get("blob"), str):
        p = c.add("photo")
        p.encoding_param = "b"
        if ref.get("type", "").startswith("image/"):
            p.type_param = ref["type"].split("/", 1)[1].upper()
        p.value = get_blob(ref["blob"])
    elif isinstance(url, str):
        c.add("photo").value = url


class VcardExporter:
    name = "vcard"
    description = "vCard 3.0 (.vcf), one card per contact"
    kinds = (Kind.CONTACT,)

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        n = 0
        with out.open("w", encoding="utf-8", newline="") as f:
            for r in records:
                f.write(build_card(r, get_blob).serialize())
                n += 1
        return n


@hookimpl
def register_importers(register: Callable[[Importer], None]) -> None:
    register(VcardImporter())


@hookimpl
def register_exporters(register: Callable[[Exporter], None]) -> None:
    register(VcardExporter())
